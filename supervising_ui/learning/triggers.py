"""When a retrain runs: on request (page, API, console), a quick one after every N new labels,
and a full fine-tune when a project has gone quiet after enough new labels (the worker checks
every minute)."""
from __future__ import annotations

import logging
from datetime import timedelta
from typing import Callable

from flask import current_app
from sqlalchemy import func, select

from ..echo import shorten
from ..extensions import db
from ..jobs import queue as jobs
from ..models import Job, Label, Project, utcnow
from .dataset import RetrainError

log = logging.getLogger(__name__)

# Retrain kinds and the ML package's training mode behind each.
TRAINING_MODES = {"quick": "head", "finetune": "finetune"}


def request_retrain(project: Project, kind: str = "quick", created_by_id: int | None = None,
                    epochs: int | None = None, tta_views: int | None = None) -> Job:
    """Queue a retrain job of this kind; raise jobs.JobBusy while one is queued or running.

    epochs and tta_views (dihedral views averaged at prediction, 1-8) override the ML defaults.
    """
    if kind not in TRAINING_MODES:
        raise RetrainError(f"unknown retrain kind {shorten(kind)!r}: use one of {', '.join(TRAINING_MODES)}")
    params = {"kind": kind}
    for name, value, low, high in (("epochs", epochs, 1, 500), ("tta_views", tta_views, 1, 8)):
        if value is not None:
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise RetrainError(f"{name} must be a whole number from {low} to {high}")
            params[name] = value
    return jobs.submit("retrain", project.id, params, created_by_id)


# Called as hook(project) after every new label (create_app registers them: the consensus job).
AFTER_LABEL_HOOKS: list[Callable] = []


def on_label_recorded(hook: Callable) -> None:
    """Register hook(project), called after each new label; it must never raise."""
    if hook not in AFTER_LABEL_HOOKS:  # every create_app registers it again
        AFTER_LABEL_HOOKS.append(hook)


def retrain_after_label(project) -> Job | None:
    """After a new label was committed: maybe queue a retrain, never failing the label's request.

    project is a Project or the labeling code's ProjectSettings (both carry id, retrain_every).
    The after-label hooks run first.
    """
    for hook in AFTER_LABEL_HOOKS:
        hook(project)
    try:
        return maybe_trigger_retrain(project)
    except Exception:  # the label is stored; a queue hiccup must not turn it into an error
        log.exception("could not queue the automatic retrain of project %s", project.id)
        db.session.rollback()
        return None


def maybe_trigger_retrain(project) -> Job | None:
    """Queue a quick retrain once project.retrain_every labels arrived since the last one began.

    The labeling code calls this after committing a label; it costs two indexed queries.
    """
    if not project.retrain_every or project.retrain_every < 1:
        return None
    last = db.session.scalar(select(Job).where(
        Job.project_id == project.id, Job.kind == "retrain").order_by(Job.id.desc()).limit(1))
    if last is not None and last.state in ("queued", "running"):
        return None
    since = (last.started_at or last.created_at) if last is not None else None
    if labels_since(project.id, since) < project.retrain_every:
        return None
    try:
        return jobs.submit("retrain", project.id, {"kind": "quick", "trigger": "labels"})
    except jobs.JobBusy:  # another labeler's submit triggered it first
        return None


def queue_idle_finetunes(now=None) -> list[Job]:
    """Queue a full fine-tune of every project that is idle and has enough new labels.

    Idle: no label given in the tool for FINETUNE_WHEN_IDLE_MINUTES (0 turns this off).
    Enough: at least FINETUNE_MIN_NEW_LABELS (and RETRAIN_MIN_LABELS) labels given in the tool
    (imported ones do not count) since the project's last fine-tune was queued, or at all. A project with a retrain queued or running is left for the next
    check. The retrain job then serves the fine-tuned model only if it beats the serving one
    on the same held-out images. Each check is two or three indexed queries per project.
    """
    idle_minutes = current_app.config["FINETUNE_WHEN_IDLE_MINUTES"]
    if not idle_minutes or idle_minutes <= 0:
        return []
    quiet_since = (now or utcnow()) - timedelta(minutes=idle_minutes)
    queued = []
    for project_id in db.session.scalars(select(Project.id).order_by(Project.id)).all():
        latest = db.session.scalar(select(func.max(Label.created_at)).where(
            Label.project_id == project_id, Label.imported.is_(False)))
        if latest is None or latest > quiet_since or not _finetune_due(project_id):
            continue
        try:
            queued.append(jobs.submit("retrain", project_id, {"kind": "finetune", "trigger": "idle"}))
        except jobs.JobBusy:  # a retrain is queued or running: the next check sees the project again
            continue
    db.session.commit()  # end the read transaction
    return queued


def _finetune_due(project_id: int) -> bool:
    """Whether enough labels arrived since project_id's last fine-tune was queued (or at all)."""
    previous = next((job for job in db.session.scalars(
        select(Job).where(Job.project_id == project_id, Job.kind == "retrain")
        .order_by(Job.id.desc())) if (job.params or {}).get("kind") == "finetune"), None)
    config = current_app.config
    return labels_since(project_id, previous.created_at if previous else None,
                        given_in_the_tool=True) >= max(
        config["FINETUNE_MIN_NEW_LABELS"], config["RETRAIN_MIN_LABELS"])


def labels_since(project_id: int, moment, given_in_the_tool: bool = False) -> int:
    """How many labels project_id got from moment on (all of them for None): an index range.

    given_in_the_tool leaves out imported labels: an import of a labeled manifest must not
    arm the idle fine-tune (minutes to hours of CPU) without a word.
    """
    query = select(func.count(Label.id)).where(Label.project_id == project_id)
    if moment is not None:
        query = query.where(Label.created_at >= moment)
    if given_in_the_tool:
        query = query.where(Label.imported.is_(False))
    return db.session.scalar(query)
