"""Which image a labeler gets next: a short chain of small strategies, then a claim.

``next_image`` first gives back the labeler's own valid lease (a reload burns nothing), then
tries the strategies of the project's serving order in turn, each ending in a claim
(leases.claim_first):

- uncertainty: among the images the serving model is least sure about;
- audit: a random image, recorded as the unbiased stream (a share ``audit_share`` of asks);
- random: a random walk over the open images, those closest to their quota first;
- put off: images the labeler put off with Later, only when nothing else is left.

Where the project has a priority batch ("label this batch first"), the chain first runs
restricted to that import batch's images (without put-off ones), then over the whole project
once the batch has nothing left for this labeler.

A random pick never scans the table: it draws a point r and walks the index
``ix_image_pick(project_id, label_count, random_key)`` upward from r, wrapping around, for
a few candidates; its cost stays flat with the project's size.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Callable

from sqlalchemy import Integer, bindparam, exists, or_, select

from ..extensions import db
from ..models import Label, Prediction, Skip
from .leases import (
    IMAGE,
    Assignment,
    claim_first,
    held_lease,
    is_postgres,
    lease_free_or_mine,
    run,
)
from .settings import ProjectSettings, lease_seconds, settings_of

# Candidates read per index walk; a claim tries them in order until one is won.
RANDOM_CANDIDATES = 8
# Uncertainty picks claim among this many of the most uncertain images, so concurrent
# labelers get the first, second, third... rather than all fighting for the top one.
UNCERTAIN_CANDIDATES = 16
# A walk whose candidates were all claimed by others meanwhile is retried this often.
CLAIM_ATTEMPTS = 3

# Serving order -> the Prediction column that ranks uncertainty, most uncertain first.
UNCERTAINTY_ORDERS = {
    "least_confidence": Prediction.confidence.asc(),
    "margin": Prediction.margin.asc(),
    "entropy": Prediction.entropy.desc(),
}

_label = Label.__table__


@dataclass(frozen=True)
class _PickRequest:
    """Who asks, when, until when the lease would last, and which held image to leave out."""

    project: ProjectSettings
    user_id: int
    now: datetime
    expires_at: datetime
    exclude_image_id: int | None
    # Only images of this import batch (None: any image of the project).
    batch_id: int | None = None

    def params(self) -> dict:
        """Return the bound parameters shared by the pick statements."""
        return {"project_id": self.project.id, "labels_per_image": self.project.labels_per_image,
                "user_id": self.user_id, "now": self.now, "expires_at": self.expires_at,
                "exclude_image_id": self.exclude_image_id or -1, "batch_id": self.batch_id}


def next_image(project, user, now: datetime,
               after_image_id: int | None = None) -> Assignment | None:
    """Return the image this user should label next (leased to them), or None when none is left.

    after_image_id lets a page prefetch: the answer is then an image other than that one.
    A won claim is committed; when nothing is left, the reads of this request are rolled back
    here (on PostgreSQL they may hold row locks), so the caller has nothing to undo.
    """
    project, user_id = settings_of(project), user.id
    held = held_lease(project, user_id, now, after_image_id)
    if held is not None:
        return held
    expires_at = now + timedelta(seconds=lease_seconds())
    scopes = [project.priority_batch_id, None] if project.priority_batch_id else [None]
    for batch_id in scopes:
        request = _PickRequest(project, user_id, now, expires_at, after_image_id, batch_id)
        for strategy in _strategies(request):
            if batch_id is not None and strategy is _put_off_pick:
                continue  # put-off images wait until the whole project has none left
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
            candidates = list(run(upward, **walk).scalars())
            if len(candidates) < wanted:
                candidates += run(wrapped, **walk).scalars()
            if not candidates:
                break
            claimed = claim_first(candidates, params)
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
        candidates = list(run(statement, **params).scalars())
        if not candidates:
            return None
        claimed = claim_first(candidates, params)
        if claimed is not None:
            return Assignment(claimed[0], request.expires_at, "uncertainty", claimed[1])
    return None


# --- statements (built once per dialect and variant) ----------------------------------------

def _open_image_conditions(include_put_off: bool):
    """Return the conditions of an image the user :user_id may be handed at :now.

    The caller bounds label_count (a range here would keep SQLite from walking ix_image_pick
    in random_key order).
    """
    skip = Skip.__table__
    conditions = [
        IMAGE.c.project_id == bindparam("project_id"),
        lease_free_or_mine(bindparam("user_id"), bindparam("now")),
        ~exists().where(_label.c.image_id == IMAGE.c.id,
                        _label.c.user_id == bindparam("user_id")),
        IMAGE.c.id != bindparam("exclude_image_id"),
        or_(bindparam("batch_id", type_=Integer).is_(None),
            IMAGE.c.import_batch_id == bindparam("batch_id", type_=Integer)),
    ]
    if not include_put_off:
        conditions.append(~exists().where(skip.c.image_id == IMAGE.c.id,
                                          skip.c.user_id == bindparam("user_id")))
    return conditions


@lru_cache(maxsize=None)
def _walk_statements(postgres: bool, include_put_off: bool):
    """Return the (upward from :start, wrapped below :start) random-walk selects."""
    base = (select(IMAGE.c.id)
            .where(IMAGE.c.label_count == bindparam("label_count"),
                   *_open_image_conditions(include_put_off))
            .order_by(IMAGE.c.random_key)
            .limit(1 if postgres else RANDOM_CANDIDATES))
    upward = base.where(IMAGE.c.random_key >= bindparam("start"))
    wrapped = base.where(IMAGE.c.random_key < bindparam("start"))
    return _locked(upward, postgres), _locked(wrapped, postgres)


@lru_cache(maxsize=None)
def _uncertainty_statement(postgres: bool, serving_order: str):
    """Return the select of the open images the model :model_version_id is least sure about."""
    prediction = Prediction.__table__
    query = (select(IMAGE.c.id)
             .select_from(prediction.join(IMAGE, IMAGE.c.id == prediction.c.image_id))
             .where(prediction.c.model_version_id == bindparam("model_version_id"),
                    IMAGE.c.label_count < bindparam("labels_per_image"),
                    *_open_image_conditions(include_put_off=False))
             .order_by(UNCERTAINTY_ORDERS[serving_order])
             .limit(1 if postgres else UNCERTAIN_CANDIDATES))
    return _locked(query, postgres)


def _locked(query, postgres: bool):
    """On PostgreSQL, lock the one candidate read and skip rows another claim is locking.

    SQLite reads a few candidates without locks instead; the claim's conditional UPDATE
    decides who wins.
    """
    return query.with_for_update(skip_locked=True, of=IMAGE) if postgres else query
