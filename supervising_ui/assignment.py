"""Which image a labeler gets next, and the lease that holds it; submit, Later and undo.

``next_image`` runs a short chain of small strategies (the labeler's held lease, then
uncertainty or audit picks from the serving model, then a random walk, then images the
labeler put off) and claims the first candidate with one conditional UPDATE: the row is
won only if nobody else holds a valid lease on it, on SQLite and PostgreSQL alike
(PostgreSQL also skips rows another transaction is claiming, ``FOR UPDATE SKIP LOCKED``).

A random pick never scans the table: it draws a point r and walks the index
``ix_image_pick(project_id, label_count, random_key)`` upward from r, wrapping around, for
a few candidates; its cost stays flat with the project's size.

No request objects here: views parse input, call one of these functions and respond.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable

from flask import current_app
from sqlalchemy import case, delete, exists, or_, select, update
from sqlalchemy.exc import IntegrityError

from . import suggestions
from .extensions import db
from .models import Image, Label, LabelClass, Prediction, Project, Skip

# Candidates read per index walk; a claim tries them in order until one is won.
RANDOM_CANDIDATES = 8
# Uncertainty picks claim among this many of the most uncertain images, so concurrent
# labelers get the first, second, third... rather than all fighting for the top one.
UNCERTAIN_CANDIDATES = 16
# A walk whose candidates were all claimed by others meanwhile is retried this often.
CLAIM_ATTEMPTS = 3
# Client-measured seconds outside this range are clamped (a tab left open overnight).
MAX_SECONDS_SPENT = 3600.0

# Serving order -> the Prediction column that ranks uncertainty, most uncertain first.
UNCERTAINTY_ORDERS = {
    "least_confidence": Prediction.confidence.asc(),
    "margin": Prediction.margin.asc(),
    "entropy": Prediction.entropy.desc(),
}

_image = Image.__table__
_label = Label.__table__


class LabelingError(Exception):
    """A labeling request that cannot be carried out; status is the HTTP status to answer."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Assignment:
    """An image handed to a labeler: its id, when the lease ends and how it was picked."""

    image_id: int
    lease_expires_at: datetime | None
    # "held" (the labeler's own lease again), "uncertainty", "audit", "random",
    # "put_off" (an image the labeler put off with Later), "undo".
    pick: str


@dataclass(frozen=True)
class SubmitResult:
    """The stored label and whether this request created it (False: an idempotent repeat)."""

    label: Label
    created: bool


def lease_seconds() -> int:
    """Return how long a lease lasts (config LEASE_SECONDS)."""
    return int(current_app.config["LEASE_SECONDS"])


def is_postgres() -> bool:
    """Return whether the session talks to PostgreSQL."""
    return db.session.get_bind().dialect.name == "postgresql"


# --- picking -------------------------------------------------------------------------------

def next_image(project: Project, user, now: datetime,
               after_image_id: int | None = None) -> Assignment | None:
    """Return the image this user should label next (leased to them), or None when none is left.

    after_image_id lets a page prefetch: the answer is then an image other than that one.
    """
    held = _held_lease(project, user.id, now, after_image_id)
    if held is not None:
        return held
    request = _PickRequest(project, user.id, now, now + timedelta(seconds=lease_seconds()),
                           after_image_id)
    for strategy in _strategies(project):
        assignment = strategy(request)
        if assignment is not None:
            db.session.commit()
            return assignment
    db.session.rollback()
    return None


@dataclass(frozen=True)
class _PickRequest:
    """Who asks, when, until when the lease would last, and which held image to leave out."""

    project: Project
    user_id: int
    now: datetime
    expires_at: datetime
    exclude_image_id: int | None


def _strategies(project: Project) -> list[Callable]:
    """Return the pick strategies for this project's serving order, in the order to try."""
    order = UNCERTAINTY_ORDERS.get(project.serving_order)
    if order is None or suggestions.serving_model_version(project.id) is None:
        return [_random_pick, _put_off_pick]
    if random.random() < project.audit_share:
        return [_audit_pick, _uncertainty_pick, _put_off_pick]
    return [_uncertainty_pick, _random_pick, _put_off_pick]


def _held_lease(project: Project, user_id: int, now: datetime,
                after_image_id: int | None) -> Assignment | None:
    """Return the user's own valid lease in this project (refreshed), so a reload burns nothing."""
    query = (select(_image.c.id).where(
        _image.c.leased_to_id == user_id, _image.c.project_id == project.id,
        _image.c.lease_expires_at > now, _image.c.label_count < project.labels_per_image)
        .order_by(_image.c.lease_expires_at).limit(2))
    for image_id in db.session.scalars(query):
        if image_id == after_image_id:
            continue
        expires_at = now + timedelta(seconds=lease_seconds())
        refreshed = db.session.execute(
            update(_image).where(_image.c.id == image_id, _image.c.leased_to_id == user_id)
            .values(lease_expires_at=expires_at))
        db.session.commit()
        if refreshed.rowcount == 1:
            return Assignment(image_id, expires_at, "held")
    return None


def _open_images(request: _PickRequest, include_put_off: bool = False):
    """Return the conditions of an image this user may be handed now."""
    conditions = [
        _image.c.project_id == request.project.id,
        _image.c.label_count < request.project.labels_per_image,
        _lease_free_or_mine(request.user_id, request.now),
        ~exists().where(_label.c.image_id == _image.c.id, _label.c.user_id == request.user_id),
    ]
    if not include_put_off:
        skip = Skip.__table__
        conditions.append(~exists().where(skip.c.image_id == _image.c.id,
                                          skip.c.user_id == request.user_id))
    if request.exclude_image_id is not None:
        conditions.append(_image.c.id != request.exclude_image_id)
    return conditions


def _lease_free_or_mine(user_id: int, now: datetime):
    """Return the condition: nobody else holds a valid lease on the image."""
    return or_(_image.c.leased_to_id.is_(None), _image.c.leased_to_id == user_id,
               _image.c.lease_expires_at.is_(None), _image.c.lease_expires_at <= now)


def _random_pick(request: _PickRequest, pick="random", include_put_off=False):
    """Claim a random open image by walking ix_image_pick from a random point, wrapping around."""
    conditions = _open_images(request, include_put_off)
    # Images closest to their quota first, so consensus labels complete early.
    for label_count in range(request.project.labels_per_image - 1, -1, -1):
        for _ in range(CLAIM_ATTEMPTS):
            candidates = _random_walk(request.project.id, label_count, conditions)
            if not candidates:
                break
            image_id = _claim_first(candidates, request)
            if image_id is not None:
                return Assignment(image_id, request.expires_at, pick)
    return None


def _random_walk(project_id: int, label_count: int, conditions) -> list[int]:
    """Return a few open image ids from a random point of the index, wrapping around."""
    start = random.random()
    wanted = _candidate_count(RANDOM_CANDIDATES)
    base = (select(_image.c.id)
            .where(_image.c.project_id == project_id, _image.c.label_count == label_count,
                   *conditions)
            .order_by(_image.c.random_key))
    upward = _locked(base.where(_image.c.random_key >= start).limit(wanted))
    candidates = list(db.session.scalars(upward))
    if len(candidates) < wanted:
        wrapped = base.where(_image.c.random_key < start).limit(wanted - len(candidates))
        candidates += db.session.scalars(_locked(wrapped))
    return candidates


def _audit_pick(request: _PickRequest):
    """Claim a random image, recorded as part of the unbiased audit stream."""
    return _random_pick(request, pick="audit")


def _put_off_pick(request: _PickRequest):
    """Claim an image this user put off with Later: only reached when nothing else is left."""
    return _random_pick(request, pick="put_off", include_put_off=True)


def _uncertainty_pick(request: _PickRequest):
    """Claim one of the images the serving model is least sure about."""
    serving = suggestions.serving_model_version(request.project.id)
    if serving is None:
        return None
    order = UNCERTAINTY_ORDERS[request.project.serving_order]
    prediction = Prediction.__table__
    query = (select(_image.c.id)
             .select_from(prediction.join(_image, _image.c.id == prediction.c.image_id))
             .where(prediction.c.model_version_id == serving.id, *_open_images(request))
             .order_by(order).limit(_candidate_count(UNCERTAIN_CANDIDATES)))
    for _ in range(CLAIM_ATTEMPTS):
        candidates = list(db.session.scalars(_locked(query)))
        if not candidates:
            return None
        image_id = _claim_first(candidates, request)
        if image_id is not None:
            return Assignment(image_id, request.expires_at, "uncertainty")
    return None


def _candidate_count(wanted: int) -> int:
    """Return how many candidates to read: PostgreSQL locks exactly the one it will claim."""
    return 1 if is_postgres() else wanted


def _locked(query):
    """On PostgreSQL, lock the candidate row and skip rows another claim is locking."""
    if is_postgres():
        return query.with_for_update(skip_locked=True, of=_image)
    return query


def _claim_first(candidates: list[int], request: _PickRequest) -> int | None:
    """Lease the first candidate nobody else holds; return its id, or None if all were taken."""
    for image_id in candidates:
        claimed = db.session.execute(
            update(_image)
            .where(_image.c.id == image_id,
                   _image.c.label_count < request.project.labels_per_image,
                   _lease_free_or_mine(request.user_id, request.now))
            .values(leased_to_id=request.user_id, lease_expires_at=request.expires_at))
        if claimed.rowcount == 1:
            return image_id
    return None


# --- submitting, Later, undo -----------------------------------------------------------------

def submit_label(image: Image, project: Project, user, class_name: str, request_id: str,
                 seconds_spent: float | None, now: datetime) -> SubmitResult:
    """Store user's label for image once: a repeat of request_id returns the stored label."""
    request_id = _check_request_id(request_id)
    repeated = _label_of_request(user.id, request_id)
    if repeated is not None:
        return _repeat(repeated, image)
    label_class_id = _class_id(project, class_name)
    suggestion = suggestions.suggestion_for(image.id, project)
    counted = db.session.execute(
        update(_image)
        .where(_image.c.id == image.id, _image.c.label_count < project.labels_per_image)
        .values(label_count=_image.c.label_count + 1,
                # The lease ends with the label; a completed image frees anyone's lease.
                leased_to_id=case((or_(_image.c.leased_to_id == user.id,
                                       _image.c.label_count + 1 >= project.labels_per_image),
                                   None), else_=_image.c.leased_to_id),
                lease_expires_at=case((or_(_image.c.leased_to_id == user.id,
                                           _image.c.label_count + 1 >= project.labels_per_image),
                                       None), else_=_image.c.lease_expires_at)))
    if counted.rowcount != 1:
        db.session.rollback()
        return _refuse_submit(image, project, user.id, request_id)
    label = Label(project_id=project.id, image_id=image.id, user_id=user.id,
                  label_class_id=label_class_id, request_id=request_id, created_at=now,
                  seconds_spent=clamp_seconds(seconds_spent),
                  **suggestions.label_fields(suggestion))
    db.session.add(label)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        return _refuse_submit(image, project, user.id, request_id)
    return SubmitResult(label, created=True)


def _check_request_id(request_id) -> str:
    """Return a usable request id or raise LabelingError."""
    if not isinstance(request_id, str) or not 1 <= len(request_id.strip()) <= 64:
        raise LabelingError("request_id is required: a unique string of at most 64 characters "
                            "per decision (e.g. a UUID), reused when the request is retried")
    return request_id.strip()


def _label_of_request(user_id: int, request_id: str) -> Label | None:
    """Return the label this user stored under request_id, if any."""
    return db.session.scalar(select(Label).where(Label.user_id == user_id,
                                                 Label.request_id == request_id))


def _repeat(label: Label, image: Image) -> SubmitResult:
    """Answer a repeated request_id with its label, unless it was used for another image."""
    if label.image_id != image.id:
        raise LabelingError(f"request_id was already used for image {label.image_id}: "
                            f"use a new request_id for each decision", 409)
    return SubmitResult(label, created=False)


def _refuse_submit(image: Image, project: Project, user_id: int, request_id: str) -> SubmitResult:
    """Explain why a label was not stored (or return it, when a twin request stored it)."""
    repeated = _label_of_request(user_id, request_id)
    if repeated is not None:  # a double click whose twin committed first
        return _repeat(repeated, image)
    if db.session.scalar(select(Label.id).where(Label.image_id == image.id,
                                                Label.user_id == user_id)) is not None:
        raise LabelingError("you have already labeled this image (use undo to change it)", 409)
    raise LabelingError(f"image {image.id} already has all its labels "
                        f"({project.labels_per_image} per image)", 409)


def _class_id(project: Project, class_name) -> int:
    """Return the id of the project's class called class_name, or raise LabelingError."""
    class_id = db.session.scalar(select(LabelClass.id).where(
        LabelClass.project_id == project.id, LabelClass.name == class_name)) \
        if isinstance(class_name, str) else None
    if class_id is None:
        names = db.session.scalars(select(LabelClass.name).where(
            LabelClass.project_id == project.id).order_by(LabelClass.position)).all()
        raise LabelingError(f"unknown class {class_name!r}: use one of {', '.join(names)}")
    return class_id


def clamp_seconds(seconds_spent) -> float | None:
    """Return the client-measured time spent, clamped to [0, MAX_SECONDS_SPENT], or None."""
    try:
        seconds = float(seconds_spent)
    except (TypeError, ValueError):
        return None
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_SECONDS_SPENT)


def put_off(image: Image, user, now: datetime) -> None:
    """Record that user put image off with Later and end their lease on it."""
    already = db.session.scalar(select(Skip.id).where(Skip.image_id == image.id,
                                                      Skip.user_id == user.id))
    if already is None:
        db.session.add(Skip(image_id=image.id, user_id=user.id, created_at=now))
    db.session.execute(update(_image).where(_image.c.id == image.id,
                                            _image.c.leased_to_id == user.id)
                       .values(leased_to_id=None, lease_expires_at=None))
    try:
        db.session.commit()
    except IntegrityError:  # the same Later twice at once: the first one counts
        db.session.rollback()


def undo_last_label(project: Project, user, now: datetime) -> tuple[Assignment, str]:
    """Delete user's latest label in project; return its image (leased again) and old class."""
    label = db.session.scalar(select(Label).where(Label.user_id == user.id,
                                                  Label.project_id == project.id)
                              .order_by(Label.id.desc()).limit(1))
    if label is None:
        raise LabelingError("you have no label in this project to undo", 404)
    image_id, old_class = label.image_id, label.label_class.name
    expires_at = now + timedelta(seconds=lease_seconds())
    db.session.execute(delete(_label).where(_label.c.id == label.id))
    # Take the lease back unless someone else holds a valid one (possible with several
    # labels per image); submitting without a lease is allowed while the image needs labels.
    mine = _lease_free_or_mine(user.id, now)
    db.session.execute(update(_image).where(_image.c.id == image_id).values(
        label_count=_image.c.label_count - 1,
        leased_to_id=case((mine, user.id), else_=_image.c.leased_to_id),
        lease_expires_at=case((mine, expires_at), else_=_image.c.lease_expires_at)))
    db.session.commit()
    leased = db.session.scalar(select(_image.c.leased_to_id).where(_image.c.id == image_id))
    return Assignment(image_id, expires_at if leased == user.id else None, "undo"), old_class

