"""Which image a labeler gets next, and the lease that holds it; submit, Later and undo.

``next_image`` runs a short chain of small strategies (the labeler's held lease, then
uncertainty or audit picks from the serving model, then a random walk, then images the
labeler put off) and claims a candidate with one conditional UPDATE that only wins if the
image still needs labels and nobody else holds a valid lease on it:

- SQLite: a few candidates are read without locks, then claimed in a short write
  transaction (the UPDATE and its commit);
- PostgreSQL: the candidate is read ``FOR UPDATE SKIP LOCKED`` (concurrent claims skip each
  other's rows) and updated in the same transaction.

A random pick never scans the table: it draws a point r and walks the index
``ix_image_pick(project_id, label_count, random_key)`` upward from r, wrapping around, for
a few candidates; its cost stays flat with the project's size.

No request objects here: views parse input, call one of these functions and respond.
"""
from __future__ import annotations

import os
import random
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Callable

from flask import current_app
from sqlalchemy import and_, bindparam, case, delete, exists, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from . import suggestions
from .extensions import db
from .models import Image, Label, LabelClass, ModelVersion, Prediction, Project, Skip
from .search import index as search_index

try:
    import fcntl
except ImportError:  # not POSIX: SQLite's own busy handler does the waiting
    fcntl = None

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
class ProjectSettings:
    """The project columns that labeling reads, with its serving model, in one query."""

    id: int
    labels_per_image: int
    serving_order: str
    audit_share: float
    hide_suggestion_share: float
    # The model version whose predictions are suggested and rank uncertainty (None: no model).
    serving_model_id: int | None
    serving_version: int | None
    # Queue a quick retrain after this many new labels (0: never).
    retrain_every: int


@dataclass(frozen=True)
class Assignment:
    """An image handed to a labeler: its id, when the lease ends and how it was picked."""

    image_id: int
    lease_expires_at: datetime | None
    # "held" (the labeler's own lease again), "uncertainty", "audit", "random",
    # "put_off" (an image the labeler put off with Later), "undo".
    pick: str
    # What the claim read back: original_name, width, height, meta (None: not read).
    image: dict | None = None


@dataclass(frozen=True)
class SubmitResult:
    """The stored label (as JSON-ready values) and whether this request created it."""

    label: dict
    created: bool


# ProjectSettings' columns, in order; a select of them joins SERVING_MODEL to Project.
SETTINGS_COLUMNS = (Project.id, Project.labels_per_image, Project.serving_order,
                    Project.audit_share, Project.hide_suggestion_share, ModelVersion.id,
                    ModelVersion.version, Project.retrain_every)
SERVING_MODEL = and_(ModelVersion.project_id == Project.id, ModelVersion.is_serving.is_(True))
_PROJECT_SETTINGS = (
    select(*SETTINGS_COLUMNS).outerjoin(ModelVersion, SERVING_MODEL)
    .where(Project.id == bindparam("project_id"))
    .order_by(ModelVersion.version.desc()).limit(1))


def project_settings(project_id: int) -> ProjectSettings | None:
    """Return the labeling settings of a project, or None if there is no such project."""
    row = db.session.connection().execute(_PROJECT_SETTINGS, {"project_id": project_id}).first()
    return ProjectSettings(*row) if row else None


def settings_of(project) -> ProjectSettings:
    """Return project's labeling settings, from a Project row (one query) or settings already."""
    return project if isinstance(project, ProjectSettings) else project_settings(project.id)


def lease_seconds() -> int:
    """Return how long a lease lasts (config LEASE_SECONDS)."""
    return int(current_app.config["LEASE_SECONDS"])


def is_postgres() -> bool:
    """Return whether the session talks to PostgreSQL."""
    return db.engine.dialect.name == "postgresql"


_thread_lock = threading.Lock()
_lock_files: dict[tuple[int, str], int] = {}


@contextmanager
def serialized_write():
    """Around a short labeling write on a SQLite file, let one writer in at a time.

    SQLite admits one writer; the others poll with sleeps of up to 100 ms, which shows as
    long latency tails under load. Waiting here instead (a thread lock, then flock on a file
    beside the database for the other worker processes) wakes the next writer as soon as the
    previous one commits. A no-op on PostgreSQL.
    """
    path = _lock_path()
    if path is None:
        yield
        return
    with _thread_lock:
        descriptor = _lock_file(path)
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(descriptor, fcntl.LOCK_UN)


def _lock_path() -> str | None:
    """Return the lock file of a file-based SQLite database, else None."""
    url = db.engine.url
    if fcntl is None or url.get_backend_name() != "sqlite" or url.database in (None, "",
                                                                                ":memory:"):
        return None
    return url.database + ".write-lock"


def _lock_file(path: str) -> int:
    """Return this process's descriptor of the lock file (flock locks are per open file)."""
    key = (os.getpid(), path)
    if key not in _lock_files:
        _lock_files[key] = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    return _lock_files[key]


# --- statements ------------------------------------------------------------------------------
# The hot paths run prebuilt statements with bound parameters: building SQLAlchemy
# expressions per request cost more CPU than the queries themselves.

def _open_image_conditions(include_put_off: bool):
    """Return the conditions of an image the user :user_id may be handed at :now.

    The caller bounds label_count (a range here would keep SQLite from walking ix_image_pick
    in random_key order).
    """
    skip = Skip.__table__
    conditions = [
        _image.c.project_id == bindparam("project_id"),
        _lease_free_or_mine(bindparam("user_id"), bindparam("now")),
        ~exists().where(_label.c.image_id == _image.c.id,
                        _label.c.user_id == bindparam("user_id")),
        _image.c.id != bindparam("exclude_image_id"),
    ]
    if not include_put_off:
        conditions.append(~exists().where(skip.c.image_id == _image.c.id,
                                          skip.c.user_id == bindparam("user_id")))
    return conditions


def _lease_free_or_mine(user_id, now):
    """Return the condition: nobody else holds a valid lease on the image."""
    return or_(_image.c.leased_to_id.is_(None), _image.c.leased_to_id == user_id,
               _image.c.lease_expires_at.is_(None), _image.c.lease_expires_at <= now)


@lru_cache(maxsize=None)
def _walk_statements(postgres: bool, include_put_off: bool):
    """Return the (upward from :start, wrapped below :start) random-walk selects."""
    base = (select(_image.c.id)
            .where(_image.c.label_count == bindparam("label_count"),
                   *_open_image_conditions(include_put_off))
            .order_by(_image.c.random_key)
            .limit(1 if postgres else RANDOM_CANDIDATES))
    upward = base.where(_image.c.random_key >= bindparam("start"))
    wrapped = base.where(_image.c.random_key < bindparam("start"))
    return _locked(upward, postgres), _locked(wrapped, postgres)


@lru_cache(maxsize=None)
def _uncertainty_statement(postgres: bool, serving_order: str):
    """Return the select of the open images the model :model_version_id is least sure about."""
    prediction = Prediction.__table__
    query = (select(_image.c.id)
             .select_from(prediction.join(_image, _image.c.id == prediction.c.image_id))
             .where(prediction.c.model_version_id == bindparam("model_version_id"),
                    _image.c.label_count < bindparam("labels_per_image"),
                    *_open_image_conditions(include_put_off=False))
             .order_by(UNCERTAINTY_ORDERS[serving_order])
             .limit(1 if postgres else UNCERTAIN_CANDIDATES))
    return _locked(query, postgres)


def _locked(query, postgres: bool):
    """On PostgreSQL, lock the one candidate read and skip rows another claim is locking.

    SQLite reads a few candidates without locks instead; the claim's conditional UPDATE
    decides who wins.
    """
    return query.with_for_update(skip_locked=True, of=_image) if postgres else query


_HELD_LEASES = (
    select(_image.c.id)
    .where(_image.c.leased_to_id == bindparam("user_id"),
           _image.c.project_id == bindparam("project_id"),
           _image.c.lease_expires_at > bindparam("now"),
           _image.c.label_count < bindparam("labels_per_image"))
    .order_by(_image.c.lease_expires_at).limit(2))
# What a claim reads back for the labeler (saves a select per "next").
_SHOWN_COLUMNS = (_image.c.original_name, _image.c.width, _image.c.height, _image.c.metadata)
_REFRESH_LEASE = (
    update(_image)
    .where(_image.c.id == bindparam("image_id"), _image.c.leased_to_id == bindparam("user_id"))
    .values(lease_expires_at=bindparam("expires_at"))
    .returning(*_SHOWN_COLUMNS))
# The claim: won only if the image still needs labels and nobody else holds a valid lease.
_CLAIM = (
    update(_image)
    .where(_image.c.id == bindparam("image_id"),
           _image.c.label_count < bindparam("labels_per_image"),
           _lease_free_or_mine(bindparam("user_id"), bindparam("now")))
    .values(leased_to_id=bindparam("user_id"), lease_expires_at=bindparam("expires_at"))
    .returning(*_SHOWN_COLUMNS))


def _run(statement, **params):
    """Execute a Core statement on the session's connection (no ORM work per row)."""
    return db.session.connection().execute(statement, params)


# --- picking -------------------------------------------------------------------------------

@dataclass(frozen=True)
class _PickRequest:
    """Who asks, when, until when the lease would last, and which held image to leave out."""

    project: ProjectSettings
    user_id: int
    now: datetime
    expires_at: datetime
    exclude_image_id: int | None

    def params(self) -> dict:
        """Return the bound parameters shared by the pick statements."""
        return {"project_id": self.project.id, "labels_per_image": self.project.labels_per_image,
                "user_id": self.user_id, "now": self.now, "expires_at": self.expires_at,
                "exclude_image_id": self.exclude_image_id or -1}


def next_image(project, user, now: datetime,
               after_image_id: int | None = None) -> Assignment | None:
    """Return the image this user should label next (leased to them), or None when none is left.

    after_image_id lets a page prefetch: the answer is then an image other than that one.
    """
    project, user_id = settings_of(project), user.id
    held = _held_lease(project, user_id, now, after_image_id)
    if held is not None:
        return held
    request = _PickRequest(project, user_id, now, now + timedelta(seconds=lease_seconds()),
                           after_image_id)
    for strategy in _strategies(request):
        assignment = strategy(request)
        if assignment is not None:
            return assignment
    db.session.rollback()
    return None


def _strategies(request: _PickRequest) -> list[Callable]:
    """Return the pick strategies for the project's serving order, in the order to try."""
    project = request.project
    if project.serving_order not in UNCERTAINTY_ORDERS or project.serving_model_id is None:
        return [_random_pick, _put_off_pick]
    if random.random() < request.project.audit_share:
        return [_audit_pick, _uncertainty_pick, _put_off_pick]
    return [_uncertainty_pick, _random_pick, _put_off_pick]


def _held_lease(project: ProjectSettings, user_id: int, now: datetime,
                after_image_id: int | None) -> Assignment | None:
    """Return the user's own valid lease in this project (refreshed), so a reload burns nothing."""
    held = [image_id for image_id in _run(
        _HELD_LEASES, user_id=user_id, project_id=project.id, now=now,
        labels_per_image=project.labels_per_image).scalars() if image_id != after_image_id]
    if not held:
        return None
    expires_at = now + timedelta(seconds=lease_seconds())
    with serialized_write():
        shown = _run(_REFRESH_LEASE, image_id=held[0], user_id=user_id,
                     expires_at=expires_at).first()
        db.session.commit()
    return Assignment(held[0], expires_at, "held", _shown(shown)) if shown else None


def _shown(row) -> dict:
    """Return the image fields a claim read back."""
    return {"original_name": row[0], "width": row[1], "height": row[2], "meta": row[3]}


def _random_pick(request: _PickRequest, pick="random", include_put_off=False):
    """Claim a random open image by walking ix_image_pick from a random point, wrapping around."""
    postgres = is_postgres()
    upward, wrapped = _walk_statements(postgres, include_put_off)
    wanted = 1 if postgres else RANDOM_CANDIDATES
    params = request.params()
    # Images closest to their quota first, so consensus labels complete early.
    for label_count in range(request.project.labels_per_image - 1, -1, -1):
        for _ in range(CLAIM_ATTEMPTS):
            walk = params | {"label_count": label_count, "start": random.random()}
            candidates = list(_run(upward, **walk).scalars())
            if len(candidates) < wanted:
                candidates += _run(wrapped, **walk).scalars()
            if not candidates:
                break
            claimed = _claim_first(candidates, params)
            if claimed is not None:
                return Assignment(claimed[0], request.expires_at, pick, claimed[1])
    return None


def _audit_pick(request: _PickRequest):
    """Claim a random image, recorded as part of the unbiased audit stream."""
    return _random_pick(request, pick="audit")


def _put_off_pick(request: _PickRequest):
    """Claim an image this user put off with Later: only reached when nothing else is left."""
    return _random_pick(request, pick="put_off", include_put_off=True)


def _uncertainty_pick(request: _PickRequest):
    """Claim one of the images the serving model is least sure about."""
    statement = _uncertainty_statement(is_postgres(), request.project.serving_order)
    params = request.params() | {"model_version_id": request.project.serving_model_id}
    for _ in range(CLAIM_ATTEMPTS):
        candidates = list(_run(statement, **params).scalars())
        if not candidates:
            return None
        claimed = _claim_first(candidates, params)
        if claimed is not None:
            return Assignment(claimed[0], request.expires_at, "uncertainty", claimed[1])
    return None


def _claim_first(candidates: list[int], params: dict) -> tuple[int, dict] | None:
    """Lease (and commit) the first candidate nobody else holds; return (id, shown fields).

    On PostgreSQL the one candidate is already locked by this transaction; on SQLite the
    conditional UPDATE decides, and the transaction lasts from that UPDATE to its commit.
    """
    with serialized_write():
        for image_id in candidates:
            won = _run(_CLAIM, **params, image_id=image_id).first()
            if won is not None:
                db.session.commit()
                return image_id, _shown(won)
        db.session.rollback()
    return None


# --- submitting, Later, undo -----------------------------------------------------------------

_LABEL_OF_REQUEST = (
    select(_label, LabelClass.name.label("label"))
    .join(LabelClass, LabelClass.id == _label.c.label_class_id)
    .where(_label.c.user_id == bindparam("user_id"),
           _label.c.request_id == bindparam("request_id")))
# The lease ends with the label; a label that completes the image frees anyone's lease.
_ENDS_LEASE = or_(_image.c.leased_to_id == bindparam("user_id"),
                  _image.c.label_count + 1 >= bindparam("labels_per_image"))
_COUNT_LABEL = (
    update(_image)
    .where(_image.c.id == bindparam("image_id"),
           _image.c.label_count < bindparam("labels_per_image"))
    .values(label_count=_image.c.label_count + 1,
            leased_to_id=case((_ENDS_LEASE, None), else_=_image.c.leased_to_id),
            lease_expires_at=case((_ENDS_LEASE, None), else_=_image.c.lease_expires_at)))
# The label row, with its class looked up by name in the same statement (no row: unknown).
_LABEL_VALUES = ("project_id", "image_id", "user_id", "request_id", "created_at",
                 "seconds_spent", "suggestion_shown", "suggested_class_id",
                 "suggestion_confidence", "suggestion_model_version_id")
_INSERT_LABEL = (
    insert(_label)
    .from_select(
        [*_LABEL_VALUES, "label_class_id"],
        select(*[bindparam(name, type_=_label.c[name].type) for name in _LABEL_VALUES],
               LabelClass.id)
        .where(LabelClass.project_id == bindparam("project_id"),
               LabelClass.name == bindparam("class_name")))
    .returning(_label.c.id))


def submit_label(image_id: int, project, user, class_name, request_id, seconds_spent,
                 now: datetime) -> SubmitResult:
    """Store user's label for an image once: a repeat of request_id returns the stored label.

    The common case is one UPDATE (count, end the lease) and one INSERT; a repeat, a second
    label from the same user or a full image fails there and is explained afterwards.
    """
    project, user_id = settings_of(project), user.id
    request_id = _check_request_id(request_id)
    if not isinstance(class_name, str):
        raise _unknown_class(project, class_name)
    label = {"project_id": project.id, "image_id": image_id, "user_id": user_id,
             "request_id": request_id, "created_at": now,
             "seconds_spent": clamp_seconds(seconds_spent), "suggested_class_id": None,
             "suggestion_confidence": None, "suggestion_model_version_id": None}
    label |= suggestions.label_fields(suggestions.suggestion_for(image_id, project))
    label_id, refused = None, False
    with serialized_write():
        counted = _run(_COUNT_LABEL, image_id=image_id, user_id=user_id,
                       labels_per_image=project.labels_per_image)
        try:
            if counted.rowcount == 1:
                label_id = _run(_INSERT_LABEL, **label, class_name=class_name).scalar()
            refused = counted.rowcount != 1
        except IntegrityError:
            refused = True
        if label_id is None:
            db.session.rollback()
        else:
            search_index.refresh_images([image_id])
            db.session.commit()
    if refused:
        return _refuse_submit(image_id, project, user_id, request_id)
    if label_id is None:
        raise _unknown_class(project, class_name)
    return SubmitResult(_label_json(label | {"id": label_id, "label": class_name}), created=True)


def _label_json(row) -> dict:
    """Return a stored label as the API shows it."""
    return {"id": row["id"], "image_id": row["image_id"], "label": row["label"],
            "request_id": row["request_id"], "created_at": row["created_at"],
            "seconds_spent": row["seconds_spent"], "suggestion_shown": row["suggestion_shown"]}


def _check_request_id(request_id) -> str:
    """Return a usable request id or raise LabelingError."""
    if not isinstance(request_id, str) or not 1 <= len(request_id.strip()) <= 64:
        raise LabelingError("request_id is required: a unique string of at most 64 characters "
                            "per decision (e.g. a UUID), reused when the request is retried")
    return request_id.strip()


def _label_of_request(user_id: int, request_id: str) -> dict | None:
    """Return the label this user stored under request_id, if any."""
    row = _run(_LABEL_OF_REQUEST, user_id=user_id, request_id=request_id).first()
    return dict(row._mapping) if row else None


def _repeat(label: dict, image_id: int) -> SubmitResult:
    """Answer a repeated request_id with its label, unless it was used for another image."""
    if label["image_id"] != image_id:
        raise LabelingError(f"request_id was already used for image {label['image_id']}: "
                            f"use a new request_id for each decision", 409)
    return SubmitResult(_label_json(label), created=False)


def _refuse_submit(image_id: int, project: ProjectSettings, user_id: int,
                   request_id: str) -> SubmitResult:
    """Explain why a label was not stored (or return it, when a twin request stored it)."""
    repeated = _label_of_request(user_id, request_id)
    if repeated is not None:  # a double click whose twin committed first
        return _repeat(repeated, image_id)
    if db.session.scalar(select(_label.c.id).where(_label.c.image_id == image_id,
                                                   _label.c.user_id == user_id)) is not None:
        raise LabelingError("you have already labeled this image (use undo to change it)", 409)
    raise LabelingError(f"image {image_id} already has all its labels "
                        f"({project.labels_per_image} per image)", 409)


def _unknown_class(project: ProjectSettings, class_name) -> LabelingError:
    """Return the error for a class name the project does not have, naming the valid ones."""
    names = db.session.scalars(select(LabelClass.name).where(
        LabelClass.project_id == project.id).order_by(LabelClass.position)).all()
    return LabelingError(f"unknown class {class_name!r}: use one of {', '.join(names)}")


def clamp_seconds(seconds_spent) -> float | None:
    """Return the client-measured time spent, clamped to [0, MAX_SECONDS_SPENT], or None."""
    try:
        seconds = float(seconds_spent)
    except (TypeError, ValueError):
        return None
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_SECONDS_SPENT)


def put_off(image_id: int, user, now: datetime) -> None:
    """Record that user put an image off with Later and end their lease on it."""
    user_id = user.id
    skip = Skip.__table__
    with serialized_write():
        db.session.execute(update(_image).where(_image.c.id == image_id,
                                                _image.c.leased_to_id == user_id)
                           .values(leased_to_id=None, lease_expires_at=None))
        already = db.session.scalar(select(skip.c.id).where(skip.c.image_id == image_id,
                                                            skip.c.user_id == user_id))
        try:
            if already is None:
                db.session.execute(insert(skip).values(image_id=image_id, user_id=user_id,
                                                       created_at=now))
            db.session.commit()
        except IntegrityError:  # the same Later twice at once: the first one counts
            db.session.rollback()


def undo_last_label(project, user, now: datetime) -> tuple[Assignment, str]:
    """Delete user's latest label in project; return its image (leased again) and old class."""
    project, user_id = settings_of(project), user.id
    row = db.session.execute(
        select(_label.c.id, _label.c.image_id, LabelClass.name)
        .join(LabelClass, LabelClass.id == _label.c.label_class_id)
        .where(_label.c.user_id == user_id, _label.c.project_id == project.id)
        .order_by(_label.c.id.desc()).limit(1)).first()
    if row is None:
        raise LabelingError("you have no label in this project to undo", 404)
    label_id, image_id, old_class = row
    expires_at = now + timedelta(seconds=lease_seconds())
    # Take the lease back unless someone else holds a valid one (possible with several
    # labels per image); submitting without a lease is allowed while the image needs labels.
    mine = _lease_free_or_mine(user_id, now)
    with serialized_write():
        db.session.execute(delete(_label).where(_label.c.id == label_id))
        db.session.execute(update(_image).where(_image.c.id == image_id).values(
            label_count=_image.c.label_count - 1,
            leased_to_id=case((mine, user_id), else_=_image.c.leased_to_id),
            lease_expires_at=case((mine, expires_at), else_=_image.c.lease_expires_at)))
        search_index.refresh_images([image_id])
        db.session.commit()
    leased = db.session.scalar(select(_image.c.leased_to_id).where(_image.c.id == image_id))
    return Assignment(image_id, expires_at if leased == user_id else None, "undo"), old_class
