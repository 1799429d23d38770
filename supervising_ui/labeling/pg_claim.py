"""The PostgreSQL claim: picking.py's whole chain of strategies as ONE statement.

    WITH step_0 AS (SELECT id, 'held' AS pick ... LIMIT 1 FOR UPDATE SKIP LOCKED),
         step_1 AS (SELECT id, 'uncertainty' AS pick ... LIMIT 1 FOR UPDATE OF image SKIP LOCKED),
         step_2 AS (SELECT found.id, walk.pick
                    FROM (SELECT 'random', 0, :start, 2.0, false, NULL UNION ALL ...) AS walk
                    JOIN LATERAL (SELECT id FROM image WHERE label_count = walk.label_count
                                  AND random_key >= walk.low AND random_key < walk.high ...
                                  ORDER BY random_key LIMIT 1 FOR UPDATE SKIP LOCKED) AS found)
    UPDATE image SET leased_to_id = :user_id, lease_expires_at = :expires_at
    FROM (SELECT * FROM step_0 UNION ALL SELECT * FROM step_1 ... LIMIT 1) AS picked
         LEFT JOIN prediction (the serving model's, for the suggestion) ...
    WHERE image.id = picked.id AND (the claim's own conditions again)
    RETURNING image.id, picked.pick, the image fields the page shows, the prediction

PostgreSQL reads a CTE only as far as the outer query asks, an append of them stops at the
first row that LIMIT 1 wants, and a list of walks drives its lateral walk one row at a time:
the later steps never run once an earlier one found an image, so the statement costs what
the step-by-step chain cost in reads, in one round trip instead of one per read and claim.
Each step locks its one row ``FOR UPDATE SKIP LOCKED``, so concurrent claims skip each
other's rows and never wait; the row stays locked from the read to the update.

A walk row is one random walk of ix_image_pick (a label count, the half above :start or
the wrapped half below it, the import batch or NULL, with or without put-off images), so the
statement's text does not grow with labels_per_image.

The steps and their order come from picking.py (held lease, then the serving order, first in
the priority batch, put-off images last); the conditions from candidates.py.
"""
from __future__ import annotations

import random
from datetime import datetime
from functools import lru_cache

from sqlalchemy import (
    Float,
    Integer,
    String,
    and_,
    bindparam,
    cast,
    literal_column,
    null,
    select,
    true,
    union_all,
    update,
)

from ..extensions import db
from ..models import LabelClass, Prediction
from .candidates import UNCERTAINTY_ORDERS, listed_conditions, open_image_conditions
from .leases import (
    IMAGE,
    SHOWN_COLUMNS,
    Assignment,
    lease_free_or_mine,
    run,
    shown_fields,
    takes_labels,
)
from .settings import ProjectSettings
from .suggestions import PREDICTION_FIELDS

_prediction = Prediction.__table__
# LIMIT 1 written into the statement: bound, PostgreSQL's generic plan of the prepared
# statement would not know it and keep planning the statement afresh for each claim.
_ONE = literal_column("1")
_class = LabelClass.__table__

# A step: (what the pick is recorded as, where its candidates come from, whether it keeps to
# the priority batch). Sources: "uncertainty", "walk" (open images, put-off ones left out),
# "walk_put_off" (open images including the labeler's put-off ones), "gold" (gold images the
# labeler has not answered), "settle" (images adaptive redundancy wants one more label for).
Step = tuple[str, str, bool]


def claim_next(project: ProjectSettings, user_id: int, now: datetime, expires_at: datetime,
               after_image_id: int | None, steps: tuple[Step, ...]) -> Assignment | None:
    """Claim (and commit) the first image the steps find, after the user's own valid lease.

    Returns None when no step finds one.
    """
    statement = _claim_statement(steps, project.labels_per_image, project.serving_order)
    row = run(statement, in_project_id=project.id, labels_per_image=project.labels_per_image,
              user_id=user_id, now=now, expires_at=expires_at,
              exclude_image_id=after_image_id or -1, batch_id=project.priority_batch_id,
              start=random.random(),
              model_version_id=project.serving_model_id).first()
    db.session.commit()
    if row is None:
        return None
    found = row._mapping
    prediction = {name: found[name] for name in PREDICTION_FIELDS} \
        if found["class_name"] is not None else None
    return Assignment(row.id, expires_at, row.pick,
                      shown_fields(row[2:2 + len(SHOWN_COLUMNS)]) | {"prediction": prediction})


@lru_cache(maxsize=128)
def _claim_statement(steps: tuple[Step, ...], labels_per_image: int, serving_order: str):
    """Return the one-statement claim for these steps (built once per shape)."""
    branches, walks = [_held()], []
    for pick, source, scoped in steps:
        if source in ("uncertainty", "gold", "settle"):
            if walks:
                branches.append(_walk(walks, labels_per_image))
                walks = []
            branches.append(_uncertain(pick, _batch(scoped), serving_order)
                            if source == "uncertainty" else _listed(pick, source, _batch(scoped)))
        else:
            walks.append((pick, scoped, source == "walk_put_off"))
    if walks:
        branches.append(_walk(walks, labels_per_image))
    ctes = [branch.cte(f"step_{index}") for index, branch in enumerate(branches)]
    picked = union_all(*[select(cte.c.id, cte.c.pick) for cte in ctes]).limit(_ONE) \
        .subquery("picked")
    chosen = (
        select(picked.c.id, picked.c.pick, _prediction.c.label_class_id,
               _prediction.c.confidence, _prediction.c.probabilities,
               _class.c.name.label("class_name"))
        .select_from(picked.outerjoin(_prediction, and_(
            _prediction.c.image_id == picked.c.id,
            _prediction.c.model_version_id == bindparam("model_version_id")))
            .outerjoin(_class, _class.c.id == _prediction.c.label_class_id))
        .subquery("chosen"))
    return (update(IMAGE)
            .where(IMAGE.c.id == chosen.c.id,
                   takes_labels(),
                   lease_free_or_mine(bindparam("user_id"), bindparam("now")))
            .values(leased_to_id=bindparam("user_id"), lease_expires_at=bindparam("expires_at"))
            .returning(IMAGE.c.id, chosen.c.pick, *SHOWN_COLUMNS,
                       *[chosen.c[name] for name in PREDICTION_FIELDS]))


def _batch(scoped: bool):
    """Return the import batch a step keeps to: the bound priority batch, or NULL (any)."""
    return bindparam("batch_id", type_=Integer) if scoped else cast(null(), Integer)


def _constant(value):
    """Return a constant written into the statement (names and numbers made here, no input)."""
    if isinstance(value, str):
        return literal_column(f"'{value}'", String)
    return literal_column(str(value).lower() if isinstance(value, bool) else repr(value))


def _held():
    """The user's own valid lease in this project (a reload burns nothing), soonest to end first."""
    return (select(IMAGE.c.id, _constant("held").label("pick"))
            .where(IMAGE.c.leased_to_id == bindparam("user_id"),
                   IMAGE.c.project_id == bindparam("in_project_id"),
                   IMAGE.c.lease_expires_at > bindparam("now"),
                   takes_labels(),
                   IMAGE.c.id != bindparam("exclude_image_id"))
            .order_by(IMAGE.c.lease_expires_at).limit(_ONE)
            .with_for_update(skip_locked=True))


def _uncertain(pick: str, batch_id, serving_order: str):
    """The open image the serving model :model_version_id is least sure about."""
    return (select(IMAGE.c.id, _constant(pick).label("pick"))
            .select_from(_prediction.join(IMAGE, IMAGE.c.id == _prediction.c.image_id))
            .where(_prediction.c.model_version_id == bindparam("model_version_id"),
                   takes_labels(),
                   *open_image_conditions(False, batch_id))
            .order_by(UNCERTAINTY_ORDERS[serving_order]).limit(_ONE)
            .with_for_update(skip_locked=True, of=IMAGE))


def _listed(pick: str, source: str, batch_id):
    """A gold image the labeler has not answered, or an image that wants one more label."""
    return (select(IMAGE.c.id, _constant(pick).label("pick"))
            .where(*listed_conditions(source, batch_id))
            .order_by(IMAGE.c.random_key).limit(_ONE)
            .with_for_update(skip_locked=True))


def _walk(walks: list[tuple[str, bool, bool]], labels_per_image: int):
    """The random walks of ix_image_pick from :start, wrapping around, for each (pick, scoped,
    with put-off images) in turn: per label count (closest to the quota first) the half
    upward from :start, then the half below it."""
    start = bindparam("start", type_=Float)
    # A UNION ALL of one-row selects rather than VALUES: SQLAlchemy caches its compiled form.
    walk = union_all(*[
        select(_constant(pick).label("pick"), _constant(label_count).label("label_count"),
               low.label("low"), high.label("high"), _constant(put_off).label("put_off"),
               _batch(scoped).label("batch_id"))
        for pick, scoped, put_off in walks
        for label_count in range(labels_per_image - 1, -1, -1)
        for low, high in ((start, _constant(2.0)), (_constant(-1.0), start))]).subquery("walk")
    found = (select(IMAGE.c.id)
             .where(IMAGE.c.label_count == walk.c.label_count,
                    IMAGE.c.random_key >= walk.c.low, IMAGE.c.random_key < walk.c.high,
                    *open_image_conditions(walk.c.put_off, walk.c.batch_id))
             .order_by(IMAGE.c.random_key).limit(_ONE)
             .with_for_update(skip_locked=True)
             .lateral("found"))
    return select(found.c.id, walk.c.pick).select_from(walk.join(found, true()))
