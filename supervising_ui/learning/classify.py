"""The "classify" job: the serving model predicts the images that lack its predictions.

Queued after an import that added images to a project with a serving model
(classify_new_images: the import job calls it through the images-added hook that create_app
registers, and the console import calls it itself) and by
`supervising-ui classify NAME` (request_classify); run_classify is registered in create_app.
The job predicts with the model that serves when it runs, so images imported during a
retrain (the worker runs one job at a time) get the new model's predictions. It works in
chunks and puts each chunk into the search index (Core inserts pass the ORM listener by).
"""
from __future__ import annotations

import logging

from sqlalchemy import func, select

from ..extensions import db
from ..jobs import queue as jobs
from ..models import Image, Job, ModelVersion, Prediction, Project
from ..search import index as search_index
from .predictions import serving_version, store_predictions

log = logging.getLogger(__name__)

JOB_KIND = "classify"
# Images predicted per pass: each pass stores its predictions and reports progress.
CHUNK = 250


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
    """Predict the project's images that lack a prediction of the serving model; store and index them."""
    version = serving_version(job.project_id)
    if version is None:
        db.session.commit()
        reporter.log("no model serves this project: nothing to classify")
        return {"predictions": 0, "summary": "no model serves: nothing classified"}
    class_ids = _class_ids_in_model_order(version)
    version_id, number, path = version.id, version.version, version.path
    image_ids = list(db.session.scalars(lacking_predictions(job.project_id, version_id)
                                        .order_by(Image.id)))
    db.session.commit()  # end the read transaction before minutes of prediction
    reporter.progress(0.0, f"v{number} predicts {len(image_ids)} images")
    stored = 0
    if image_ids:
        from ..ml import load_model  # the ML package loads torch: only where a model runs
        model, info = load_model(path)
        for start in range(0, len(image_ids), CHUNK):
            stored += _classify_chunk(job.project_id, model, info, version_id,
                                      image_ids[start:start + CHUNK], class_ids)
            done = min(start + CHUNK, len(image_ids))
            reporter.progress(done / len(image_ids), f"v{number}: {done} of {len(image_ids)} images")
    summary = f"model v{number} classified {stored} images"
    reporter.log(summary)
    return {"model_version_id": version_id, "version": number, "predictions": stored,
            "summary": summary}


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


def _classify_chunk(project_id: int, model, info, version_id: int, image_ids: list[int],
                    class_ids: list[int]) -> int:
    """Predict the images of one chunk that still lack a prediction, store and index them."""
    rows = db.session.execute(select(Image.id, Image.storage_key, Image.content_hash).where(
        Image.id.in_(image_ids), lacking_predictions(project_id, version_id).whereclause)
        .order_by(Image.id)).all()
    db.session.commit()
    if not rows:
        return 0
    stored = store_predictions(model, info, version_id, rows, class_ids)
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
