"""The "classify" job: the serving model predicts the images that lack its predictions.

Queued after an import that added images to a project with a serving model
(classify_new_images: the import job calls it through the images-added hook that create_app
registers, and the console import calls it itself) and by
`supervising-ui classify NAME` (request_classify); run_classify is registered in create_app.
The job predicts with the model that serves when it runs, so images imported during a
retrain (the worker runs one job at a time) get the new model's predictions.

The job splits the images into chunks (CLASSIFY_CHUNK_IMAGES), each a "classify_chunk" job on
the queue that any worker, on this host or another, takes; the classify job takes chunks
itself and follows the others (chunks.py): a chunk whose worker died is queued again by the
reaper (or, dying twice, submitted anew), and progress counts the chunks of every worker.
A prediction is written once per image and version (write_in_batches skips stored keys), so
a chunk run twice changes nothing. Each pass of a chunk goes into the search index (Core
inserts pass the ORM listener by). With SQLite, one worker takes every chunk, the same way.
"""
from __future__ import annotations

import logging

from flask import current_app
from sqlalchemy import func, select

from ..extensions import db
from ..jobs import queue as jobs
from ..models import Image, Job, ModelVersion, Prediction, Project
from ..search import index as search_index
from . import chunks
from .predictions import predictor_for, serving_version, store_predictions

log = logging.getLogger(__name__)

JOB_KIND = "classify"
# The kind of a classify job's chunks: jobs that any worker takes (CLASSIFY_CHUNK_IMAGES images).
CHUNK_KIND = "classify_chunk"
# Images a chunk predicts per pass: each pass stores its predictions, indexes them, reports.
PASS = 500


class ClassifyError(ValueError):
    """A classification that cannot be queued, for a reason the user can act on."""


def lacking_predictions(project_id: int, model_version_id: int):
    """Return a query of the ids of the project's images without a prediction of this version."""
    predicted = select(Prediction.id).where(Prediction.model_version_id == model_version_id,
                                            Prediction.image_id == Image.id).exists()
    return select(Image.id).where(Image.project_id == project_id, ~predicted)


def count_lacking(project_id: int, model_version_id: int) -> int:
    """Return how many of the project's images lack a prediction of this version."""
    return db.session.scalar(select(func.count()).select_from(
        lacking_predictions(project_id, model_version_id).subquery()))


def request_classify(project: Project, created_by_id: int | None = None) -> Job | None:
    """Queue a classify job for the images lacking the serving model's predictions.

    Returns None when every image has one; raises ClassifyError when no model serves.
    """
    version = serving_version(project.id)
    if version is None:
        raise ClassifyError(f"no model serves project {project.name!r}: retrain it first "
                            "(supervising-ui retrain NAME)")
    lacking = count_lacking(project.id, version.id)
    if lacking == 0:
        db.session.commit()
        return None
    return jobs.submit(JOB_KIND, project.id, {"trigger": "request", "version": version.version,
                                              "lacking": lacking}, created_by_id)


def classify_new_images(project_id: int, added: int, created_by_id: int | None = None) -> Job | None:
    """After an import added images: queue a classify job if a model serves; never fail the import.

    The job reads which images lack predictions when it starts, so a job whose images an
    earlier one predicted ends at once.
    """
    if added < 1:
        return None
    return _queue_quietly(project_id, {"trigger": "import", "added": added}, created_by_id)


def recent_jobs(project: Project, limit: int = 5) -> list[Job]:
    """Return the project's latest classify jobs, newest first."""
    return list(db.session.scalars(select(Job).where(
        Job.project_id == project.id, Job.kind == JOB_KIND).order_by(Job.id.desc()).limit(limit)))


def run_classify(job: Job, reporter) -> dict:
    """Predict the project's images that lack a prediction of the serving model: split them into
    chunk jobs, take chunks here while other workers take the rest, and follow them to the end."""
    version = serving_version(job.project_id)
    if version is None:
        db.session.commit()
        reporter.log("no model serves this project: nothing to classify")
        return {"predictions": 0, "summary": "no model serves: nothing classified"}
    _class_ids_in_model_order(version)  # refuse a model the project outgrew before any chunk
    version_id, number = version.id, version.version
    image_ids = list(db.session.scalars(lacking_predictions(job.project_id, version_id)
                                        .order_by(Image.id)))
    db.session.commit()  # end the read transaction before minutes of prediction
    reporter.progress(0.0, f"v{number} predicts {len(image_ids)} images")
    stored = 0
    if image_ids:
        size = max(1, int(current_app.config["CLASSIFY_CHUNK_IMAGES"]))
        chunk_ids = [_submit_chunk(job, version_id, image_ids[start:start + size])
                     for start in range(0, len(image_ids), size)]
        stored = chunks.follow(job.id, chunk_ids, reporter, f"v{number}", len(image_ids),
                               lambda old: _submit_chunk(job, version_id, old.params))
    summary = f"model v{number} classified {stored} images"
    reporter.log(summary)
    return {"model_version_id": version_id, "version": number, "predictions": stored,
            "summary": summary}


def run_classify_chunk(job: Job, reporter) -> dict:
    """One chunk of a classify job: predict its images still lacking a prediction of the version,
    store (once per image and version), index; any worker runs it, a second run changes nothing."""
    params = job.params
    version = db.session.get(ModelVersion, params["version_id"])
    if version is None or not version.is_serving:
        db.session.commit()
        return {"predictions": 0, "summary": "the version no longer serves: nothing classified"}
    class_ids = _class_ids_in_model_order(version)
    version_id, path = version.id, version.path
    image_ids = list(db.session.scalars(lacking_predictions(job.project_id, version_id).where(
        Image.id.between(params["first_image_id"], params["last_image_id"])).order_by(Image.id)))
    db.session.commit()
    predictor = predictor_for(path)
    stored = 0
    for start in range(0, len(image_ids), PASS):
        stored += _classify_pass(job.project_id, predictor, version_id,
                                 image_ids[start:start + PASS], class_ids)
        done = min(start + PASS, len(image_ids))
        reporter.progress(done / len(image_ids), f"{done} of {len(image_ids)} images")
    return {"model_version_id": version_id, "predictions": stored,
            "summary": f"classified {stored} of the chunk's {params['images']} images"}


def _submit_chunk(job: Job, version_id: int, image_ids_or_params) -> int:
    """Queue one chunk of job (image ids, or the params of a failed chunk to run again); its id."""
    if isinstance(image_ids_or_params, dict):
        params = dict(image_ids_or_params, attempt=image_ids_or_params.get("attempt", 1) + 1)
    else:
        ids = image_ids_or_params
        params = {"parent": job.id, "version_id": version_id, "first_image_id": ids[0],
                  "last_image_id": ids[-1], "images": len(ids), "attempt": 1}
    return jobs.submit(CHUNK_KIND, job.project_id, params, job.created_by_id).id


def _queue_quietly(project_id: int, params: dict, created_by_id: int | None) -> Job | None:
    """Queue a classify job when a model serves; log (never raise) a failure to queue it."""
    try:
        if serving_version(project_id) is None:
            db.session.commit()
            return None
        return jobs.submit(JOB_KIND, project_id, params, created_by_id)
    except Exception:  # the images are stored; a queue hiccup must not fail what stored them
        log.exception("could not queue the classification of project %s's images", project_id)
        db.session.rollback()
        return None


def _classify_pass(project_id: int, predictor, version_id: int, image_ids: list[int],
                   class_ids: list[int]) -> int:
    """Predict the images of one pass that still lack a prediction, store and index them."""
    rows = db.session.execute(select(Image.id, Image.storage_key, Image.content_hash).where(
        Image.id.in_(image_ids), lacking_predictions(project_id, version_id).whereclause)
        .order_by(Image.id)).all()
    db.session.commit()
    if not rows:
        return 0
    stored = store_predictions(predictor, version_id, rows, class_ids)
    search_index.refresh_predictions(project_id, [row.id for row in rows])
    db.session.commit()
    return stored


def _class_ids_in_model_order(version: ModelVersion) -> list[int]:
    """Return the project's class ids in the model's class order; refuse classes it lost since."""
    from ..ml import read_model_dir
    try:
        model_classes = read_model_dir(version.path).classes
    except FileNotFoundError as error:
        raise jobs.JobRefused(f"the serving model v{version.version} has no model files "
                              f"({error}): retrain the project") from error
    project = db.session.get(Project, version.project_id)
    ids = {label_class.name: label_class.id for label_class in project.classes}
    missing = [name for name in model_classes if name not in ids]
    if missing:
        raise jobs.JobRefused(f"the serving model v{version.version} predicts classes the project "
                              f"no longer has ({', '.join(missing)}): retrain the project")
    return [ids[name] for name in model_classes]
