"""The "predict_batch" job: the serving model's predictions for a new import batch.

A retrain predicts every image of a project, but images imported after it have no prediction
until the next one. An import that adds images to a project with a serving model therefore
queues this job, so that the drift panel can show the batch's confidence and predicted class
mix and the serving order can rank the batch's images by uncertainty at once.
"""
from __future__ import annotations

import logging

from flask import current_app
from sqlalchemy import exists, select
from sqlalchemy.exc import IntegrityError

from .. import jobs, storage
from ..extensions import db
from ..importing import batches
from ..models import Image, Job, Prediction, Project
from .predictions import (
    PREDICT_CHUNK,
    embedding_cache_dir,
    prediction_rows,
    serving_version,
    write_in_batches,
)

JOB_KIND = "predict_batch"
log = logging.getLogger(__name__)


def unpredicted_images(model_version_id: int, batch_id: int) -> list[tuple[int, str, str]]:
    """(id, storage key, content hash) of the batch's images this version has not predicted."""
    predicted = exists().where(Prediction.model_version_id == model_version_id,
                               Prediction.image_id == Image.id)
    return [tuple(row) for row in db.session.execute(
        select(Image.id, Image.storage_key, Image.content_hash).where(
            Image.import_batch_id == batch_id, ~predicted).order_by(Image.id))]


def queue_batch_predictions(project_id: int, batch_id: int, created_by_id: int | None = None
                            ) -> Job | None:
    """Queue the serving model's predictions of a batch; None where no model serves.

    Never fails its caller (an import that has already committed its images): a queue that
    is down is logged, and the drift panel offers the job again.
    """
    if serving_version(project_id) is None:
        return None
    try:
        return jobs.submit(JOB_KIND, project_id, {"batch_id": batch_id}, created_by_id)
    except Exception:
        log.exception("could not queue the predictions of import batch %s", batch_id)
        db.session.rollback()
        return None


def run_predict_batch(job: Job, reporter) -> dict:
    """Predict the images of job.params["batch_id"] that the serving model has not predicted."""
    from ..ml import Record, load_model  # torch loads only where a model runs
    from ..ml.predict import proba_from_model
    project = db.session.get(Project, job.project_id)
    serving = serving_version(project.id)
    if serving is None:
        raise jobs.JobRefused("no model serves in this project: retrain first")
    batch_id = int(job.params["batch_id"])
    version_id, path = serving.id, serving.path
    class_ids = [label_class.id for label_class in project.classes]
    images = unpredicted_images(version_id, batch_id)
    db.session.commit()  # end the read transaction before the model runs
    model, info = load_model(path)
    store, stored = current_app.config["IMAGE_STORE"], 0
    for start in range(0, len(images), PREDICT_CHUNK):
        chunk = images[start:start + PREDICT_CHUNK]
        records = [Record(str(storage.path_for_key(store, key)), content_hash=digest)
                   for _, key, digest in chunk]
        proba = proba_from_model(model, info.config, records, cache_dir=embedding_cache_dir())
        stored += _store(version_id, [image_id for image_id, _, _ in chunk], proba, class_ids,
                         info.classes)
        reporter.progress((start + len(chunk)) / len(images), f"{start + len(chunk)} of "
                          f"{len(images)} images")
    reporter.log(f"v{serving.version} predicted {stored} images of import batch {batch_id}")
    return {"batch_id": batch_id, "model_version_id": version_id, "predictions": stored}


def _store(version_id: int, image_ids: list[int], proba, class_ids: list[int],
           class_names: list[str]) -> int:
    """Write prediction rows; where another job stored some first, write only the rest."""
    rows = prediction_rows(version_id, image_ids, proba, class_ids, class_names)
    try:
        return write_in_batches(Prediction, rows)
    except IntegrityError:
        db.session.rollback()
        done = set(db.session.scalars(select(Prediction.image_id).where(
            Prediction.model_version_id == version_id, Prediction.image_id.in_(image_ids))))
        return write_in_batches(Prediction, [row for row in rows if row["image_id"] not in done])



def request_batch_predictions(project: Project, batch_id: int, created_by_id: int | None) -> Job:
    """Queue the serving model's predictions of a batch (the drift panel's button)."""
    batch = batches.get_batch(project, batch_id)
    if serving_version(project.id) is None:
        raise batches.BatchError("no model serves in this project yet: retrain first")
    return jobs.submit(JOB_KIND, project.id, {"batch_id": batch.id}, created_by_id)
