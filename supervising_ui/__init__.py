"""Supervising UI: label Mars images in the browser and train classifiers from the labels.

Flask is imported inside create_app, so that the ML package (supervising_ui.ml) and the
image and manifest helpers it uses import without the web stack (on a GPU machine, say).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .config import instance_path_from_env, load_config

if TYPE_CHECKING:
    from flask import Flask


def create_app(test_config=None) -> Flask:
    """Build the Flask application; see config.py for where each setting comes from."""
    from flask import Flask

    app = Flask(
        __name__,
        instance_path=instance_path_from_env(),
        instance_relative_config=True,
        template_folder="../templates",
        static_folder="../static",
    )
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    load_config(app, test_config)

    from . import cli, database
    from .accounts import guard as account_guard
    from .accounts import views as account_views
    from .boxes import merging as box_merging
    from .boxes import proposals as box_proposals
    from .boxes import review as box_review
    from .boxes import views as box_views
    from .importing import orphans, runner
    from .importing import views as importing_views
    from .jobs import minutely
    from .jobs import queue as jobs
    from .jobs import views as job_views
    from .labeling import snapshots as labeling_snapshots
    from .labeling import views as labeling_views
    from .learning import classify, embedding, retrain, triggers
    from .learning import views as learning_views
    from .observations import tiling as observation_tiling
    from .observations import views as observation_views
    from .projects import views as project_views
    from .review import consensus_jobs, finder
    from .review import landmarks as review_landmarks
    from .review import views as review_views
    from .search import index as search_index
    from .search import views as search_views
    from .web import errors, guards, headers
    from .web import views as web_views
    # Request checks first: the id converter must exist before the blueprints' routes, and
    # the size limits must run before the login guard reads a form.
    guards.init_app(app)
    guards.trust_proxies(app)  # TRUSTED_PROXY_HOPS: the client's address behind a proxy
    headers.init_app(app)
    errors.init_app(app)
    # Extensions next: the blueprints' views and the commands need the database and login.
    database.init_app(app)
    account_guard.init_app(app)
    labeling_snapshots.init_app(app)  # settings and images kept between labeling requests
    jobs.init_app(app)
    # Job handlers and hooks: the lower domains learn here what the higher ones do.
    # can_run_twice: a run again after a dead worker's does what one run would (an import adds
    # only what is missing, a classify predicts only what lacks a prediction, a retrain
    # discards the half-made version first), so such a job is queued again once.
    jobs.register_handler("import", runner.run_import_job, can_run_twice=True)
    jobs.register_handler("retrain", retrain.run_retrain, discard=retrain.discard_unfinished,
                          exclusive=True, can_run_twice=True)
    jobs.register_handler(classify.JOB_KIND, classify.run_classify, can_run_twice=True)
    jobs.register_handler(classify.CHUNK_KIND, classify.run_classify_chunk, can_run_twice=True)
    minutely.register(triggers.queue_idle_finetunes)
    minutely.register(jobs.reap_stale_jobs)  # a dead worker's job runs again with no page open
    minutely.register(orphans.sweep_orphan_files)  # files of imports that were cut off
    runner.on_images_added(classify.classify_new_images)
    # The quick model's features of new images, cached before the first retrain needs them
    # (a rerun computes only what is missing).
    jobs.register_handler(embedding.JOB_KIND, embedding.run_embed, can_run_twice=True)
    runner.on_images_added(embedding.embed_new_images)
    if embedding.warm_up not in jobs.WARM_UPS:  # a starting worker imports what retrains need
        jobs.WARM_UPS.append(embedding.warm_up)
    # Consensus (majority or Dawid-Skene) refits in the worker, after labels and reviews.
    # can_run_twice: a run recomputes everything from the stored labels and writes it in one
    # transaction, so a second run after a dead worker does what one run would.
    jobs.register_handler(consensus_jobs.JOB_KIND, consensus_jobs.run_consensus, exclusive=True,
                          can_run_twice=True)
    triggers.on_label_recorded(consensus_jobs.consensus_after_label)
    # Observations: deep-zoom tiles made in the worker (a rerun writes the same pyramid).
    jobs.register_handler(observation_tiling.JOB_KIND, observation_tiling.run_tiling,
                          can_run_twice=True)
    minutely.register(consensus_jobs.queue_stale_consensus)
    # Landmarks: merged again after box changes (a rerun recomputes from the stored boxes).
    jobs.register_handler(box_merging.JOB_KIND, box_merging.run_merge, can_run_twice=True)
    jobs.register_handler(box_proposals.JOB_KIND, box_proposals.run_proposals,
                          exclusive=True, can_run_twice=True)
    # A reviewer's accept or fix of a landmark settles its crop (an image) to its class.
    box_review.on_landmark_reviewed(review_landmarks.settle_crop)
    minutely.register(box_merging.queue_stale_merges)  # a minimum changed, a merge not queued
    # The label-error finder (a rerun ranks the same labels again, stored in one transaction).
    jobs.register_handler(finder.JOB_KIND, finder.run_finder, exclusive=True, can_run_twice=True)
    minutely.register(finder.queue_finder_after_retrains)

    for views in (account_views, web_views, project_views, importing_views, labeling_views,
                  learning_views, job_views, search_views, review_views,
                  observation_views, box_views):
        app.register_blueprint(views.blueprint)
    search_index.init_app(app)  # new images, labels and predictions reach the search index

    cli.init_app(app)
    return app
