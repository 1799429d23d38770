"""The consensus job: refit a project's consensus (majority or Dawid-Skene) in the worker and
store each image's class and posterior (image_consensus) and the labelers' estimated confusion
matrices (consensus_run), so that reads stay cheap and no labeling request ever refits.

The search rows take the stored classes too (search/consensus_rows.py), so that the search's
class facet follows the project's method. Adaptive redundancy: the job also marks the images
that want one more label (their posterior below the project's target_posterior, fewer than
labels_max labels): image.labels_wanted, which the picker reads (labeling/picking.py). Gold answers and reviewers' decisions go into
the fit as known truth.

When it runs: after labels arrive (the labeling code's after-label hook, at most once per
DEBOUNCE_SECONDS per process and project, and only for Dawid-Skene projects or those with
adaptive redundancy: the majority is computed where it is read), after every review and change of method, and from the worker's
minutely check for any project whose stored run is older than its labels or reviews (what a
label that came while a job ran leaves behind).
"""
from __future__ import annotations

import logging
import time
from collections import defaultdict

from sqlalchemy import delete, func, insert, or_, select, true, update

from ..consensus import known_class_ids
from ..extensions import db
from ..jobs import queue as jobs
from ..models import (
    CONSENSUS_METHODS,
    ConsensusRun,
    Image,
    ImageConsensus,
    Label,
    Project,
    Review,
    utcnow,
)
from ..search import consensus_rows as search_rows
from .aggregate import aggregate

log = logging.getLogger(__name__)

JOB_KIND = "consensus"
# A project's consensus job is queued at most once per this many seconds per process.
DEBOUNCE_SECONDS = 10.0
# Ids per IN list of the adaptive marks' updates.
IN_LIST_LIMIT = 500
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
                       known_class_ids(project_id))
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
    search_rows.set_consensus_classes(project_id, {row["image_id"]: row["label_class_id"]
                                                   for row in rows})
    wanting = _want_more_labels(project_id, result)
    db.session.commit()
    return {"method": method, "images": len(rows), "labels": len(votes),
            "wanting_more_labels": wanting}


def _want_more_labels(project_id: int, result) -> int:
    """Adaptive redundancy: mark the images that want one more label (image.labels_wanted):
    at least labels_per_image labels, fewer than labels_max, not settled by a reviewer or a
    gold answer, posterior below the target; clear the mark everywhere else. Return how many."""
    project = db.session.get(Project, project_id)
    wanted: dict[int, list[int]] = defaultdict(list)
    if _adaptive(project):
        for image_id, count in result.counts.items():
            if project.labels_per_image <= count < project.labels_max \
                    and result.posteriors[image_id] < project.target_posterior:
                wanted[count + 1].append(int(image_id))
    marked = [image_id for ids in wanted.values() for image_id in ids]
    # A mark stays while a labeler holds the image's lease: the label they were handed it
    # for must still count (the next run clears it once the lease has ended).
    not_leased = or_(Image.leased_to_id.is_(None), Image.lease_expires_at.is_(None),
                     Image.lease_expires_at <= utcnow())
    db.session.execute(update(Image).where(
        Image.project_id == project_id, Image.labels_wanted.is_not(None), not_leased,
        Image.id.not_in(marked) if len(marked) < IN_LIST_LIMIT else true())
        .values(labels_wanted=None).execution_options(synchronize_session=False))
    for count, ids in wanted.items():
        for start in range(0, len(ids), IN_LIST_LIMIT):
            db.session.execute(update(Image).where(Image.id.in_(ids[start:start + IN_LIST_LIMIT]))
                               .values(labels_wanted=count)
                               .execution_options(synchronize_session=False))
    return len(marked)


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
    """After-label hook: queue the consensus job of a Dawid-Skene project or one with adaptive
    redundancy, debounced; never raises. project: a Project or labeling's ProjectSettings."""
    if not needs_consensus_job(project):
        return
    now = time.monotonic()
    if now - _last_queued.get(project.id, -DEBOUNCE_SECONDS) < DEBOUNCE_SECONDS:
        return
    _last_queued[project.id] = now
    try:
        request_consensus(project.id)
    except Exception:  # the label is stored; the minutely check catches up
        log.exception("could not queue the consensus job of project %s", project.id)
        db.session.rollback()


def settings_changed(project: Project) -> None:
    """After a change of method or redundancy settings: queue the job where it is needed, else
    clear adaptive redundancy's marks (they would keep images in the pool)."""
    if needs_consensus_job(project):
        request_consensus(project.id)
        return
    db.session.execute(update(Image).where(
        Image.project_id == project.id, Image.labels_wanted.is_not(None))
        .values(labels_wanted=None).execution_options(synchronize_session=False))
    db.session.commit()


def needs_consensus_job(project) -> bool:
    """Whether the project's consensus is stored by the job: Dawid-Skene, or adaptive
    redundancy (which images want more labels)."""
    return project.consensus_method == "dawid-skene" or _adaptive(project)


def _adaptive(project) -> bool:
    """Whether images of the project may take more labels than labels_per_image."""
    return project.labels_max is not None and project.labels_max > project.labels_per_image


def queue_stale_consensus() -> list[int]:
    """Minutely check: queue the consensus job of every Dawid-Skene or adaptive project whose
    run is stale."""
    queued = []
    for project_id in db.session.scalars(select(Project.id).where(or_(
            Project.consensus_method == "dawid-skene",
            Project.labels_max > Project.labels_per_image)).order_by(Project.id)).all():
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
