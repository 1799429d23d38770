"""Tiles as work units: which tile a labeler gets next, with a lease, Later and labelers_per_tile.

A tile needs ``project.labelers_per_tile`` labelers to mark it Done (tile_done; the boxes
package records Done and Later, boxes/tile_work.py). Several labelers work on a tile at once,
each under a lease of their own (tile_lease, one row per tile and labeler): a tile is handed
out while its Done count plus the other labelers' valid leases stay under labelers_per_tile.
``next_tile`` mirrors labeling/picking.py's order for images:

1. the labeler's own valid lease (a reload burns nothing), refreshed;
2. an open tile: not done by them, not put off by them, with room, the tiles closest to their
   quota first, then in reading order;
3. a tile they put off with Later, only when nothing else is left.

A claim writes the lease, then counts again: if a concurrent claim took the last place, the
lease is given back and the next candidate tried. Tiles are few (hundreds per observation),
so the reads are plain queries on the tile, lease and done tables, on SQLite and PostgreSQL.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import and_, func, select
from sqlalchemy.exc import IntegrityError

from ..extensions import db
from ..models import Observation, ObservationTile, Project, TileDone, TileLease

# Candidates tried per pick before giving up on this round.
CANDIDATES = 16


def lease_seconds() -> int:
    """Return how long a tile lease lasts (the labeling lease, config LEASE_SECONDS, x 4)."""
    return int(current_app.config["LEASE_SECONDS"]) * 4


def next_tile(observation: Observation, user_id: int, now: datetime) -> ObservationTile | None:
    """Return the tile this user should mark next (leased to them, committed), or None."""
    quota = _quota(observation)
    expires_at = now + timedelta(seconds=lease_seconds())
    held = db.session.scalar(
        select(TileLease).join(ObservationTile, ObservationTile.id == TileLease.tile_id)
        .where(ObservationTile.observation_id == observation.id, TileLease.user_id == user_id,
               TileLease.later.is_(False), TileLease.expires_at > now,
               ~_done_by(user_id)).limit(1))
    if held is not None:
        held.expires_at = expires_at
        db.session.commit()
        return db.session.get(ObservationTile, held.tile_id)
    for put_off in (False, True):
        for tile_id in _candidates(observation.id, user_id, now, quota, put_off):
            if _claim(tile_id, user_id, now, expires_at, quota):
                return db.session.get(ObservationTile, tile_id)
    db.session.rollback()
    return None


def _quota(observation: Observation) -> int:
    """Return how many labelers each tile of the observation needs."""
    return db.session.scalar(select(Project.labelers_per_tile).where(
        Project.id == observation.project_id)) or 1


def _done_by(user_id: int):
    """The condition: user marked the lease's tile done."""
    return select(TileDone.id).where(TileDone.tile_id == TileLease.tile_id,
                                     TileDone.user_id == user_id).exists()


def _open_lease(now: datetime):
    """The condition: a lease that holds its tile (valid, not put off, its labeler not done)."""
    done = select(TileDone.id).where(TileDone.tile_id == TileLease.tile_id,
                                     TileDone.user_id == TileLease.user_id).exists()
    return and_(TileLease.later.is_(False), TileLease.expires_at > now, ~done)


def _others_leasing(now: datetime, user_id: int):
    """A correlated count of the other labelers' open leases on a tile."""
    return (select(func.count(TileLease.id))
            .where(TileLease.tile_id == ObservationTile.id, TileLease.user_id != user_id,
                   _open_lease(now))
            .scalar_subquery())


def _candidates(observation_id: int, user_id: int, now: datetime, quota: int,
                put_off: bool) -> list[int]:
    """Return ids of tiles with room for this user (put_off: only those they put off)."""
    mine = TileLease.__table__.alias("mine")
    done_by_me = select(TileDone.id).where(TileDone.tile_id == ObservationTile.id,
                                           TileDone.user_id == user_id).exists()
    later = select(mine.c.id).where(mine.c.tile_id == ObservationTile.id,
                                    mine.c.user_id == user_id, mine.c.later.is_(True)).exists()
    return list(db.session.scalars(
        select(ObservationTile.id)
        .where(ObservationTile.observation_id == observation_id,
               ObservationTile.done_count + _others_leasing(now, user_id) < quota,
               ~done_by_me, later if put_off else ~later)
        .order_by(ObservationTile.done_count.desc(), ObservationTile.y, ObservationTile.x)
        .limit(CANDIDATES)))


def _claim(tile_id: int, user_id: int, now: datetime, expires_at: datetime, quota: int) -> bool:
    """Lease the tile to the user and commit, unless that puts it over its quota."""
    lease = db.session.scalar(select(TileLease).where(TileLease.tile_id == tile_id,
                                                      TileLease.user_id == user_id))
    if lease is None:
        db.session.add(TileLease(tile_id=tile_id, user_id=user_id, expires_at=expires_at))
    else:
        lease.expires_at, lease.later = expires_at, False
    try:
        db.session.flush()
    except IntegrityError:  # the same user's second tab claimed it meanwhile
        db.session.rollback()
        return False
    taken = db.session.scalar(
        select(ObservationTile.done_count + _others_leasing(now, user_id))
        .where(ObservationTile.id == tile_id))
    if taken >= quota:
        db.session.rollback()
        return False
    db.session.commit()
    return True


def tile_states(observation: Observation, user_id: int, now: datetime) -> list[dict]:
    """Return every tile of the observation with its Done count, open leases and this user's state."""
    quota = _quota(observation)
    leasing = (select(TileLease.tile_id, func.count(TileLease.id).label("leases"))
               .where(_open_lease(now)).group_by(TileLease.tile_id).subquery())
    mine_done = select(TileDone.tile_id).where(TileDone.user_id == user_id).subquery()
    mine_later = select(TileLease.tile_id).where(TileLease.user_id == user_id,
                                                 TileLease.later.is_(True)).subquery()
    rows = db.session.execute(
        select(ObservationTile, func.coalesce(leasing.c.leases, 0),
               mine_done.c.tile_id.is_not(None), mine_later.c.tile_id.is_not(None))
        .outerjoin(leasing, leasing.c.tile_id == ObservationTile.id)
        .outerjoin(mine_done, mine_done.c.tile_id == ObservationTile.id)
        .outerjoin(mine_later, mine_later.c.tile_id == ObservationTile.id)
        .where(ObservationTile.observation_id == observation.id)
        .order_by(ObservationTile.y, ObservationTile.x)).all()
    db.session.commit()
    return [{"id": tile.id, "x": tile.x, "y": tile.y, "width": tile.width, "height": tile.height,
             "done": tile.done_count, "needed": quota, "leases": leases,
             "finished": tile.done_count >= quota, "done_by_me": bool(done), "later": bool(later)}
            for tile, leases, done, later in rows]

