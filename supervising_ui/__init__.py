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

    from . import (
        admin,
        auth,
        cli,
        database,
        errors,
        export,
        job_views,
        jobs,
        minutely,
        models_page,
        pages,
        request_guards,
        search_views,
        security_headers,
    )
    from .importing import runner
    from .labeling import snapshots as labeling_snapshots
    from .labeling import views as labeling_views
    from .learning import classify, retrain, triggers
    from .search import index as search_index
    # Request checks first: the id converter must exist before the blueprints' routes, and
    # the size limits must run before the login guard reads a form.
    request_guards.init_app(app)
    security_headers.init_app(app)
    errors.init_app(app)
    # Extensions next: the blueprints' views and the commands need the database and login.
    database.init_app(app)
    auth.init_app(app)
    labeling_snapshots.init_app(app)  # settings and images kept between labeling requests
    jobs.init_app(app)
    jobs.register_handler("import", runner.run_import_job)
    jobs.register_handler("retrain", retrain.run_retrain, discard=retrain.discard_unfinished)
    minutely.register(triggers.queue_idle_finetunes)
    jobs.register_handler(classify.JOB_KIND, classify.run_classify)

    app.register_blueprint(auth.blueprint)
    app.register_blueprint(pages.blueprint)
    app.register_blueprint(admin.blueprint)
    app.register_blueprint(labeling_views.blueprint)
    app.register_blueprint(export.blueprint)
    app.register_blueprint(models_page.blueprint)
    app.register_blueprint(job_views.blueprint)
    app.register_blueprint(search_views.blueprint)
    search_index.init_app(app)  # new images, labels and predictions reach the search index

    cli.init_app(app)
    return app
