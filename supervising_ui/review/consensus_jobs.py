"""The consensus job: refit a project's consensus (majority or Dawid-Skene) in the worker and
store each image's class and posterior (image_consensus) and the labelers' estimated confusion
matrices (consensus_run), so that reads stay cheap and no labeling request ever refits.

When it runs: after labels arrive (the labeling code's after-label hook, at most once per
DEBOUNCE_SECONDS per process and project, and only for Dawid-Skene projects: the majority is
computed where it is read), after every review and change of method, and from the worker's
minutely check for any project whose stored run is older than its labels or reviews (what a
label that came while a job ran leaves behind).
"""
from __future__ import annotations

import logging
import time

from sqlalchemy import delete, func, insert, select

from ..consensus import settled_class_ids
from ..extensions import db
from ..jobs import queue as jobs
from ..models import CONSENSUS_METHODS, ConsensusRun, ImageConsensus, Label, Project, Review, utcnow
from .aggregate import aggregate

log = logging.getLogger(__name__)

JOB_KIND = "consensus"
# A project's consensus job is queued at most once per this many seconds per process.
DEBOUNCE_SECONDS = 10.0
_last_queued: dict[int, float] = {}


def recompute(project_id: int) -> dict:
    """Refit the project's consensus with its method, store it, and return what it did."""
    method = db.session.scalar(select(Project.consensus_method).where(Project.id == project_id))
    if method not in CONSENSUS_METHODS:
        method = "majority"
    votes = db.session.execute(select(Label.image_id, Label.user_id, Label.label_class_id, Label.id)
                               .where(Label.project_id == project_id)).all()
    last_review = db.session.scalar(select(func.max(Review.id)).where(
        Review.project_id == project_id)) or 0
    result = aggregate(method, [(image, user, label) for image, user, label, _id in votes],
                       settled_class_ids(project_id))
    rows = [{"project_id": project_id, "image_id": int(image_id),
             "label_class_id": None if class_id is None else int(class_id),
             "posterior": float(result.posteriors[image_id]), "n_labels": result.counts[image_id],
             "method": method} for image_id, class_id in result.classes.items()]
    db.session.execute(delete(ImageConsensus).where(ImageConsensus.project_id == project_id))
    if rows:
        db.session.execute(insert(ImageConsensus), rows)
    run = db.session.scalar(select(ConsensusRun).where(ConsensusRun.project_id == project_id)) \
        or ConsensusRun(project_id=project_id)
    run.method, run.computed_at, run.label_total = method, utcnow(), len(votes)
    run.last_label_id = max((label_id for *_rest, label_id in votes), default=0)
    run.last_review_id = last_review
    run.confusions = None if result.confusions is None else {
        str(worker): {str(true): {str(given): p for given, p in row.items()}
                      for true, row in by_true.items()}
        for worker, by_true in result.confusions.items()}
    db.session.add(run)
    db.session.commit()
    return {"method": method, "images": len(rows), "labels": len(votes)}


def run_consensus(job, reporter) -> dict:
    """Job handler: recompute the consensus of the job's project."""
    return recompute(job.project_id)


def request_consensus(project_id: int) -> None:
    """Queue a consensus job for the project unless one is queued or running already."""
    try:
        jobs.submit(JOB_KIND, project_id, {"trigger": "change"})
    except jobs.JobBusy:  # the running one may miss this change: the minutely check sees it
        pass


def consensus_after_label(project) -> None:
    """After-label hook: queue a Dawid-Skene project's consensus job, debounced; never raises."""
    now = time.monotonic()
    if now - _last_queued.get(project.id, -DEBOUNCE_SECONDS) < DEBOUNCE_SECONDS:
        return
    _last_queued[project.id] = now
    try:
        method = db.session.scalar(select(Project.consensus_method).where(
            Project.id == project.id))
        if method == "dawid-skene":
            request_consensus(project.id)
        else:
            db.session.commit()  # end the read
    except Exception:  # the label is stored; the minutely check catches up
        log.exception("could not queue the consensus job of project %s", project.id)
        db.session.rollback()


def queue_stale_consensus() -> list[int]:
    """Minutely check: queue the consensus job of every Dawid-Skene project whose run is stale."""
    queued = []
    for project_id in db.session.scalars(select(Project.id).where(
            Project.consensus_method == "dawid-skene").order_by(Project.id)).all():
        if is_stale(project_id):
            request_consensus(project_id)
            queued.append(project_id)
    db.session.commit()
    return queued


def is_stale(project_id: int) -> bool:
    """Whether labels or reviews changed since the project's last consensus run (or none ran)."""
    run = db.session.scalar(select(ConsensusRun).where(ConsensusRun.project_id == project_id))
    method = db.session.scalar(select(Project.consensus_method).where(Project.id == project_id))
    last_label, total = db.session.execute(select(func.coalesce(func.max(Label.id), 0),
                                                  func.count(Label.id))
                                           .where(Label.project_id == project_id)).one()
    last_review = db.session.scalar(select(func.coalesce(func.max(Review.id), 0)).where(
        Review.project_id == project_id))
    return run is None or (run.method, run.last_label_id, run.label_total, run.last_review_id) \
        != (method, last_label, total, last_review)
