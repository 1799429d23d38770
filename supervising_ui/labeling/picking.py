"""Which image a labeler gets next: a short chain of small strategies, then a claim.

``next_image`` first gives back the labeler's own valid lease (a reload burns nothing), then
tries the strategies of the project's serving order in turn, each ending in a claim:

- gold: an image with a known answer this labeler has not answered (a share ``gold_share``
  of asks, unannounced: the pick is recorded, the page shows nothing of it);
- settle (adaptive redundancy): an image whose consensus is not settled yet, that one more
  label could settle (first for a share ``settle_preference`` of asks, else after the random
  walk); the consensus job sets which images want more labels (image.labels_wanted);
- uncertainty: among the images the serving model is least sure about;
- audit: a random image, recorded as the unbiased stream (a share ``audit_share`` of asks);
- random: a random walk over the open images, those closest to their quota first;
- put off: images the labeler put off with Later, only when nothing else is left.

Where the project has a priority batch ("label this batch first"), the chain first runs
restricted to that import batch's images (without put-off ones), then over the whole project
once the batch has nothing left for this labeler.

SQLite runs the chain a step at a time here (reads without locks, then leases.claim_first);
PostgreSQL runs the same chain as one statement (pg_claim.py).

A random pick never scans the table: it draws a point r and walks the index
``ix_image_pick(project_id, label_count, random_key)`` upward from r, wrapping around, for
a few candidates; its cost stays flat with the project's size.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Callable, Iterator

from sqlalchemy import bindparam, select

from ..extensions import db
from ..models import Prediction
from . import pg_claim
from .candidates import UNCERTAINTY_ORDERS, listed_conditions, open_image_conditions
from .leases import IMAGE, Assignment, claim_first, held_lease, is_postgres, run, takes_labels
from .settings import ProjectSettings, lease_seconds, settings_of

# Candidates read per index walk; a claim tries them in order until one is won.
RANDOM_CANDIDATES = 8
# Uncertainty picks claim among this many of the most uncertain images, so concurrent
# labelers get the first, second, third... rather than all fighting for the top one.
UNCERTAIN_CANDIDATES = 16
# A walk whose candidates were all claimed by others meanwhile is retried this often.
CLAIM_ATTEMPTS = 3


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
        return {"in_project_id": self.project.id, "labels_per_image": self.project.labels_per_image,
                "user_id": self.user_id, "now": self.now, "expires_at": self.expires_at,
                "exclude_image_id": self.exclude_image_id or -1, "batch_id": self.batch_id}


def next_image(project, user, now: datetime,
               after_image_id: int | None = None) -> Assignment | None:
    """Return the image this user should label next (leased to them), or None when none is left.

    after_image_id lets a page prefetch: the answer is then an image other than that one.
    A won claim is committed; when nothing is left, the reads of this request are rolled back
    here, so the caller has nothing to undo.
    """
    project, user_id = settings_of(project), user.id
    expires_at = now + timedelta(seconds=lease_seconds())
    if is_postgres():
        steps = tuple((*_PG_STEPS[strategy], batch_id is not None)
                      for batch_id, strategy in _chain(project))
        return pg_claim.claim_next(project, user_id, now, expires_at, after_image_id, steps)
    held = held_lease(project, user_id, now, after_image_id)
    if held is not None:
        return held
    for batch_id, strategy in _chain(project):
        assignment = strategy(_PickRequest(project, user_id, now, expires_at, after_image_id,
                                           batch_id))
        if assignment is not None:
            return assignment
    db.session.rollback()
    return None


def _chain(project: ProjectSettings) -> Iterator[tuple[int | None, Callable]]:
    """Yield (import batch or None, strategy) in the order to try them."""
    scopes = [project.priority_batch_id, None] if project.priority_batch_id else [None]
    strategies = _strategies(project)
    if strategies[0] is _gold_pick:  # gold images come from anywhere in the project, once
        yield None, _gold_pick
        strategies = strategies[1:]
    for batch_id in scopes:
        for strategy in strategies:
            if batch_id is not None and strategy is _put_off_pick:
                continue  # put-off images wait until the whole project has none left
            yield batch_id, strategy


def _strategies(project: ProjectSettings) -> list[Callable]:
    """Return the pick strategies for the project's serving order, in the order to try."""
    if project.serving_order not in UNCERTAINTY_ORDERS or project.serving_model_id is None:
        strategies = [_random_pick, _put_off_pick]
    elif random.random() < project.audit_share:
        strategies = [_audit_pick, _uncertainty_pick, _put_off_pick]
    else:
        strategies = [_uncertainty_pick, _random_pick, _put_off_pick]
    if project.adaptive:  # first, or once the fresh images are gone
        place = 0 if random.random() < project.settle_preference else len(strategies) - 1
        strategies.insert(place, _settle_pick)
    if project.gold_share > 0 and random.random() < project.gold_share:
        strategies.insert(0, _gold_pick)
    return strategies


def _random_pick(request: _PickRequest, pick="random", include_put_off=False):
    """Claim a random open image by walking ix_image_pick from a random point, wrapping around."""
    upward, wrapped = _walk_statements(include_put_off)
    params = request.params()
    # Images closest to their quota first, so consensus labels complete early.
    for label_count in range(request.project.labels_per_image - 1, -1, -1):
        for _ in range(CLAIM_ATTEMPTS):
            walk = params | {"label_count": label_count, "start": random.random()}
            candidates = list(run(upward, **walk).scalars())
            if len(candidates) < RANDOM_CANDIDATES:
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
    statement = _uncertainty_statement(request.project.serving_order)
    params = request.params() | {"model_version_id": request.project.serving_model_id}
    for _ in range(CLAIM_ATTEMPTS):
        candidates = list(run(statement, **params).scalars())
        if not candidates:
            return None
        claimed = claim_first(candidates, params)
        if claimed is not None:
            return Assignment(claimed[0], request.expires_at, "uncertainty", claimed[1])
    return None


def _gold_pick(request: _PickRequest):
    """Claim a gold image (a known answer) this user has not answered yet."""
    return _claim_listed(request, _listed_statements("gold"), "gold")


def _settle_pick(request: _PickRequest):
    """Claim an image whose consensus is unsettled and that wants one more label."""
    return _claim_listed(request, _listed_statements("settle"), "settle")


def _claim_listed(request: _PickRequest, statements, pick: str):
    """Claim one of the images statements list, read upward from a random point, wrapping."""
    upward, wrapped = statements
    params = request.params()
    for _ in range(CLAIM_ATTEMPTS):
        walk = params | {"start": random.random()}
        candidates = list(run(upward, **walk).scalars())
        if len(candidates) < RANDOM_CANDIDATES:
            candidates += run(wrapped, **walk).scalars()
        if not candidates:
            return None
        claimed = claim_first(candidates, params)
        if claimed is not None:
            return Assignment(claimed[0], request.expires_at, pick, claimed[1])
    return None


# The same strategies as steps of PostgreSQL's one statement: (pick, candidate source).
_PG_STEPS = {_uncertainty_pick: ("uncertainty", "uncertainty"), _random_pick: ("random", "walk"),
             _audit_pick: ("audit", "walk"), _put_off_pick: ("put_off", "walk_put_off"),
             _gold_pick: ("gold", "gold"), _settle_pick: ("settle", "settle")}


# --- SQLite's statements (built once per variant) ---------------------------------------------

@lru_cache(maxsize=None)
def _walk_statements(include_put_off: bool):
    """Return the (upward from :start, wrapped below :start) random-walk selects."""
    base = (select(IMAGE.c.id)
            .where(IMAGE.c.label_count == bindparam("label_count"),
                   *open_image_conditions(include_put_off))
            .order_by(IMAGE.c.random_key)
            .limit(RANDOM_CANDIDATES))
    return (base.where(IMAGE.c.random_key >= bindparam("start")),
            base.where(IMAGE.c.random_key < bindparam("start")))


@lru_cache(maxsize=None)
def _listed_statements(source: str):
    """Return the (upward from :start, wrapped) selects of gold images or of images that
    adaptive redundancy wants one more label for."""
    base = select(IMAGE.c.id).where(*listed_conditions(source)).order_by(IMAGE.c.random_key) \
        .limit(RANDOM_CANDIDATES)
    return (base.where(IMAGE.c.random_key >= bindparam("start")),
            base.where(IMAGE.c.random_key < bindparam("start")))


@lru_cache(maxsize=None)
def _uncertainty_statement(serving_order: str):
    """Return the select of the open images the model :model_version_id is least sure about."""
    prediction = Prediction.__table__
    return (select(IMAGE.c.id)
            .select_from(prediction.join(IMAGE, IMAGE.c.id == prediction.c.image_id))
            .where(prediction.c.model_version_id == bindparam("model_version_id"),
                   takes_labels(), *open_image_conditions(include_put_off=False))
            .order_by(UNCERTAINTY_ORDERS[serving_order])
            .limit(UNCERTAIN_CANDIDATES))
