"""What a labeler decides about an image they were handed: a label, Later, or undo.

A label is stored once per (user, request_id), so a retried or double-clicked submit returns
the label already stored; an image takes at most ``labels_per_image`` labels, one per user.
The label records the serving model's suggestion, shown or hidden (suggestions.py).
Each function here commits its own write; a write refused midway is rolled back here too.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import (
    and_,
    bindparam,
    case,
    delete,
    exists,
    func,
    insert,
    literal_column,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.exc import IntegrityError

from ..echo import shorten
from ..extensions import db
from ..learning import triggers
from ..models import Label, LabelClass, SearchImage, Skip
from ..search import index as search_index
from ..search.refresh_sql import refresh_ctes
from . import suggestions
from .leases import (
    IMAGE,
    Assignment,
    completed_by_one_more,
    is_postgres,
    lease_free_or_mine,
    run,
    serialized_write,
    takes_labels,
)
from .settings import LabelingError, ProjectSettings, lease_seconds, settings_of

# Client-measured seconds outside this range are clamped (a tab left open overnight).
MAX_SECONDS_SPENT = 3600.0

_label = Label.__table__
# Written into the statements, not bound: PostgreSQL's submit statement stays under psycopg's
# 4096 characters, above which psycopg converts its parameters afresh on every execution.
_ONE = literal_column("1")


@dataclass(frozen=True)
class SubmitResult:
    """The stored label (as JSON-ready values) and whether this request created it."""

    label: dict
    created: bool


_LABEL_OF_REQUEST = (
    select(_label, LabelClass.name.label("label"))
    .join(LabelClass, LabelClass.id == _label.c.label_class_id)
    .where(_label.c.user_id == bindparam("user_id"),
           _label.c.request_id == bindparam("request_id")))
# The lease ends with the label; a label that completes the image frees anyone's lease.
_ENDS_LEASE = or_(IMAGE.c.leased_to_id == bindparam("user_id"), completed_by_one_more(_ONE))
# Counted only while nobody else holds a valid lease: a labeler whose lease expired and was
# taken over, or who posts to an image someone else holds, gets 409 (the holder's work wins).
_COUNTABLE = (IMAGE.c.id == bindparam("in_image_id"),
              takes_labels(),
              lease_free_or_mine(bindparam("user_id"), bindparam("now")))
_COUNT_LABEL = (
    update(IMAGE)
    .where(*_COUNTABLE)
    .values(label_count=IMAGE.c.label_count + _ONE,
            leased_to_id=case((_ENDS_LEASE, None), else_=IMAGE.c.leased_to_id),
            lease_expires_at=case((_ENDS_LEASE, None), else_=IMAGE.c.lease_expires_at)))
# The label row, with its class looked up by name in the same statement (no row: unknown).
# Its values are bound as v_<column>: an UPDATE in the same statement would take a bound
# name equal to one of its columns (project_id, created_at) for a value to set.
_LABEL_VALUES = ("project_id", "image_id", "user_id", "request_id", "created_at",
                 "seconds_spent", "suggestion_shown", "suggested_class_id",
                 "suggestion_confidence", "suggestion_model_version_id", "imported")
_LABEL_COLUMNS = [bindparam(f"v_{name}", type_=_label.c[name].type) for name in _LABEL_VALUES]
_LABEL_CLASS = and_(LabelClass.project_id == bindparam("v_project_id"),
                    LabelClass.name == bindparam("class_name"))
_LABEL_ROW = select(*_LABEL_COLUMNS, LabelClass.id).where(_LABEL_CLASS)
_INSERT_LABEL = (insert(_label).from_select([*_LABEL_VALUES, "label_class_id"], _LABEL_ROW)
                 .returning(_label.c.id))
# PostgreSQL: the whole submit in one statement that commits by itself: count the label (a
# CTE's UPDATE runs to completion; the INSERT takes its row from it, so nothing is inserted
# unless the label was counted), insert it, and refresh the image's search row from its votes,
# the new one included (search/refresh_sql.py: refresh_images() as SQL).
# The statement commits by itself, so it counts nothing for a class the project lacks.
_KNOWN_CLASS = exists().where(_LABEL_CLASS)
_COUNTED = _COUNT_LABEL.where(_KNOWN_CLASS).returning(IMAGE.c.id).cte("counted")
_COUNTED_ROW = (select(*_LABEL_COLUMNS, LabelClass.id).select_from(_COUNTED)
                .join(LabelClass, _LABEL_CLASS))
_INSERTED = (insert(_label).from_select([*_LABEL_VALUES, "label_class_id"], _COUNTED_ROW)
             .returning(_label.c.id, _label.c.label_class_id).cte("inserted"))
_VOTED = union_all(
    select(_label.c.label_class_id).where(_label.c.image_id == bindparam("in_image_id")),
    select(_INSERTED.c.label_class_id)).subquery("voted")
_CHANGED, _WRITTEN = refresh_ctes(_VOTED, bindparam("in_image_id"), select(_INSERTED.c.id).exists())
_SUBMIT = select(
    select(func.count()).select_from(_COUNTED).scalar_subquery().label("counted"),
    select(_INSERTED.c.id).scalar_subquery().label("label_id"),
    # Whether the search row is current: one exists, and a change of consensus was written.
    (exists().where(SearchImage.image_id == bindparam("in_image_id")) &
     (select(func.count()).select_from(_CHANGED).scalar_subquery() ==
      select(func.count()).select_from(_WRITTEN).scalar_subquery())).label("indexed"))
_COUNTABLE_NOW = select(exists().where(*_COUNTABLE))
_KNOWN_CLASS_NOW = select(_KNOWN_CLASS)


def submit_label(image_id: int, project, user, class_name, request_id, seconds_spent,
                 now: datetime) -> SubmitResult:
    """Store user's label for an image once: a repeat of request_id returns the stored label.

    The common case is an UPDATE (count, end the lease), an INSERT and the search row's
    refresh, one statement on PostgreSQL; a repeat, a second label from the same user or a
    full image fails there and is explained afterwards.
    """
    project, user_id = settings_of(project), user.id
    request_id = _check_request_id(request_id)
    if not isinstance(class_name, str):
        raise _unknown_class(project, class_name)
    label = {"project_id": project.id, "image_id": image_id, "user_id": user_id,
             "request_id": request_id, "created_at": now,
             "seconds_spent": clamp_seconds(seconds_spent), "suggested_class_id": None,
             "suggestion_confidence": None, "suggestion_model_version_id": None,
             "imported": False}  # named: INSERT ... SELECT in a CTE leaves out the column default
    label |= suggestions.label_fields(suggestions.suggestion_for(image_id, project))
    label_id, refused, indexed = None, False, False
    with serialized_write():
        try:
            counted, label_id, indexed = _store(label, class_name, project.labels_per_image)
            refused = not counted
        except IntegrityError:
            refused = True
        if label_id is None:
            db.session.rollback()
        else:
            if not indexed and is_postgres():
                # The statement stored the label but could not refresh the row (there is
                # none yet): refresh_images() makes it, in a transaction of its own.
                db.session.commit()
            if not indexed:
                search_index.refresh_images([image_id])
            db.session.commit()
    if refused:
        return _refuse_submit(image_id, project, user_id, request_id, now)
    if label_id is None:
        raise _unknown_class(project, class_name)
    return SubmitResult(_label_json(label | {"id": label_id, "label": class_name}), created=True)


def _store(label: dict, class_name: str, labels_per_image: int):
    """Count the label on its image and insert it; return (counted, the new label's id or None,
    whether the image's search row is current already).

    PostgreSQL: one statement, which refreshes the search row too; SQLite: two, and the caller
    refreshes the row. The caller commits or rolls back.
    """
    params = {"in_image_id": label["image_id"], "user_id": label["user_id"],
              "now": label["created_at"], "labels_per_image": labels_per_image}
    values = {f"v_{name}": label[name] for name in _LABEL_VALUES} | {"class_name": class_name}
    if is_postgres():
        counted, label_id, indexed = run(_SUBMIT, **params, **values).one()
        if not counted and not run(_KNOWN_CLASS_NOW, v_project_id=label["project_id"],
                                   class_name=class_name).scalar():
            # An unknown class counted nothing: say so where the label would have been counted
            # (more statements on this rare path keep the first one within psycopg's cache of
            # prepared statements, 4096 characters; see _ONE).
            return run(_COUNTABLE_NOW, **params).scalar(), label_id, indexed
        return counted, label_id, indexed
    if run(_COUNT_LABEL, **params).rowcount != 1:
        return False, None, False
    return True, run(_INSERT_LABEL, **values).scalar(), False


def record_label(image_id: int, project: ProjectSettings, user, class_name, request_id,
                 seconds_spent, now: datetime) -> SubmitResult:
    """Submit a label (submit_label); a new one may queue a retrain, which never fails it."""
    result = submit_label(image_id, project, user, class_name, request_id, seconds_spent, now)
    if result.created:
        triggers.retrain_after_label(project)
    return result


def _label_json(row) -> dict:
    """Return a stored label as the API shows it (created_at still a datetime)."""
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
    row = run(_LABEL_OF_REQUEST, user_id=user_id, request_id=request_id).first()
    return dict(row._mapping) if row else None


def _repeat(label: dict, image_id: int) -> SubmitResult:
    """Answer a repeated request_id with its label, unless it was used for another image."""
    if label["image_id"] != image_id:
        raise LabelingError(f"request_id was already used for image {label['image_id']}: "
                            f"use a new request_id for each decision", 409)
    return SubmitResult(_label_json(label), created=False)


def _refuse_submit(image_id: int, project: ProjectSettings, user_id: int,
                   request_id: str, now: datetime) -> SubmitResult:
    """Explain why a label was not stored (or return it, when a twin request stored it)."""
    repeated = _label_of_request(user_id, request_id)
    if repeated is not None:  # a double click whose twin committed first
        return _repeat(repeated, image_id)
    if db.session.scalar(select(_label.c.id).where(_label.c.image_id == image_id,
                                                   _label.c.user_id == user_id)) is not None:
        raise LabelingError("you have already labeled this image (use undo to change it)", 409)
    if db.session.scalar(select(IMAGE.c.id).where(
            IMAGE.c.id == image_id, ~lease_free_or_mine(user_id, now))) is not None:
        raise LabelingError(f"image {image_id} is held by another labeler now (your lease "
                            f"expired or you never held it): ask for the next image", 409)
    raise LabelingError(f"image {image_id} already has all its labels "
                        f"({project.labels_per_image} per image)", 409)


def _unknown_class(project: ProjectSettings, class_name) -> LabelingError:
    """Return the error for a class name the project does not have, naming the valid ones."""
    names = db.session.scalars(select(LabelClass.name).where(
        LabelClass.project_id == project.id).order_by(LabelClass.position)).all()
    return LabelingError(f"unknown class {shorten(class_name)!r}: use one of {', '.join(names)}")


def clamp_seconds(seconds_spent) -> float | None:
    """Return the client-measured time spent, clamped to [0, MAX_SECONDS_SPENT], or None."""
    try:
        seconds = float(seconds_spent)
    except (TypeError, ValueError):
        return None
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_SECONDS_SPENT)


# Longest comment kept with an "unsure" (the column's size).
UNSURE_COMMENT_CHARACTERS = 500


def put_off(image_id: int, user, now: datetime, unsure: bool = False,
            comment: str | None = None) -> None:
    """Record that user put an image off with Later, or as unsure (with an optional comment),
    and end their lease on it. Unsure counts like Later for assignment; reviewers and the
    export see it. A second put-off of the same image keeps the first, unless it says unsure."""
    user_id = user.id
    skip = Skip.__table__
    comment = ((comment or "").strip()[:UNSURE_COMMENT_CHARACTERS] or None) if unsure else None
    with serialized_write():
        db.session.execute(update(IMAGE).where(IMAGE.c.id == image_id,
                                               IMAGE.c.leased_to_id == user_id)
                           .values(leased_to_id=None, lease_expires_at=None))
        already = db.session.scalar(select(skip.c.id).where(skip.c.image_id == image_id,
                                                            skip.c.user_id == user_id))
        try:
            if already is None:
                db.session.execute(insert(skip).values(image_id=image_id, user_id=user_id,
                                                       created_at=now, unsure=unsure,
                                                       comment=comment))
            elif unsure:
                db.session.execute(update(skip).where(skip.c.id == already).values(
                    unsure=True, comment=comment))
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
    mine = lease_free_or_mine(user_id, now)
    with serialized_write():
        db.session.execute(delete(_label).where(_label.c.id == label_id))
        db.session.execute(update(IMAGE).where(IMAGE.c.id == image_id).values(
            label_count=IMAGE.c.label_count - 1,
            leased_to_id=case((mine, user_id), else_=IMAGE.c.leased_to_id),
            lease_expires_at=case((mine, expires_at), else_=IMAGE.c.lease_expires_at)))
        search_index.refresh_images([image_id])
        db.session.commit()
    leased = db.session.scalar(select(IMAGE.c.leased_to_id).where(IMAGE.c.id == image_id))
    return Assignment(image_id, expires_at if leased == user_id else None, "undo"), old_class
