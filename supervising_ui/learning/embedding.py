"""The quick model's features of a project's images, computed before any retrain needs them.

A quick retrain trains and predicts over the frozen backbone's features of every image, cached
by content hash (ml.embeddings). They are computed once: by the "embed" job that an import
queues for its new images (embed_new_images, through the images-added hook that create_app
registers; EMBED_AT_IMPORT 0 switches it off), and, for whatever is still missing, at the start
of a quick retrain (embed_project, a step of the job's progress with its count and time). The
work runs on ONNX Runtime (ml.precompute); with every feature cached, a quick retrain reads
features only.
"""
from __future__ import annotations

import logging
import threading
import time

from flask import current_app
from sqlalchemy import select

from .. import storage
from ..extensions import db
from ..jobs import queue as jobs
from ..models import Image, Job, Project
from ..throttled import throttled
from .predictions import embedding_cache_dir
from .triggers import TRAINING_MODES

log = logging.getLogger(__name__)

JOB_KIND = "embed"
# Held while the worker's warm-up imports run: a job that needs torch waits for them rather
# than import the same modules from a second thread at once.
_WARMING = threading.Lock()


def training_config(kind: str, params: dict, classes: list[str], color_input: bool):
    """The ML package's TrainConfig of a retrain of this kind, with the job's parameters
    (after the worker's warm-up: the first import of torch is then done once, in one thread)."""
    with _WARMING:
        pass
    from ..ml import TrainConfig
    return TrainConfig(mode=TRAINING_MODES[kind], classes=classes, epochs=params.get("epochs"),
                       tta_views=params.get("tta_views"),
                       stretch="color" if color_input else None,  # None: the mode's default
                       backbone=current_app.config["RETRAIN_BACKBONE"],
                       top_blocks=current_app.config["RETRAIN_TOP_BLOCKS"])


def embed_project(project_id: int, config, progress=None) -> tuple[int, int]:
    """Cache the features of every image of the project that config's quick model lacks;
    return (images computed, images of the project). Opens no transaction while it computes."""
    from ..ml import Record
    from ..ml.precompute import precompute_features
    store = current_app.config["IMAGE_STORE"]
    rows = db.session.execute(select(Image.storage_key, Image.content_hash).where(
        Image.project_id == project_id).order_by(Image.id)).all()
    db.session.commit()
    records = [Record(str(storage.path_for_key(store, key)), content_hash=digest)
               for key, digest in rows]
    computed = precompute_features(records, config, embedding_cache_dir(), progress,
                                   threads=current_app.config["CLASSIFY_THREADS"])
    return computed, len(records)


def run_embed(job: Job, reporter) -> dict:
    """The embed job: cache the quick model's features of the project's images that lack them."""
    project = db.session.get(Project, job.project_id)
    if project is None:
        db.session.commit()
        return {"embedded": 0, "summary": "the project no longer exists: nothing embedded"}
    config = training_config("quick", {}, project.class_names, project.color_input)
    db.session.commit()
    started = time.perf_counter()
    reporter.progress(0.0, "embedding images")

    def report(stage: str, done: int, total: int) -> None:
        reporter.progress(done / max(total, 1), f"embedding images {done}/{total}")
    computed, total = embed_project(job.project_id, config, throttled(report))
    summary = (f"embedded {computed} of the project's {total} images in "
               f"{time.perf_counter() - started:.1f} s ({total - computed} were cached)")
    reporter.log(summary)
    return {"embedded": computed, "images": total, "summary": summary}


def embed_new_images(project_id: int, added: int, created_by_id: int | None = None) -> Job | None:
    """After an import added images: queue an embed job (EMBED_AT_IMPORT); never fail the import."""
    if added < 1 or not current_app.config["EMBED_AT_IMPORT"]:
        return None
    try:
        return jobs.submit(JOB_KIND, project_id, {"trigger": "import", "added": added},
                           created_by_id)
    except Exception:  # the images are stored; a queue hiccup must not fail what stored them
        log.exception("could not queue the embedding of project %s's images", project_id)
        db.session.rollback()
        return None


def warm_up() -> None:
    """Import what a retrain needs (torch and its compiler front end, which the optimizers load
    on first use, ONNX Runtime, matplotlib): run by a starting worker (jobs.queue.WARM_UPS), so
    that its first retrain does not spend seconds importing."""
    with _WARMING:
        _import_heavy_modules()


def _import_heavy_modules() -> None:
    """Import torch, ONNX Runtime, matplotlib and the ML modules; log (never raise) a failure."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot  # noqa: F401
        import onnxruntime  # noqa: F401
        import torch._dynamo  # noqa: F401

        from ..ml import metrics, precompute, train  # noqa: F401
    except Exception:  # a missing extra fails the job that needs it, with its own message
        log.exception("the worker's warm-up imports failed")
