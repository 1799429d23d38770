"""Done and Later for a tile, as the tile page's buttons say them.

Done records that the labeler's boxes on the tile are complete (tile_done, once per labeler;
observation_tile.done_count follows), Later puts the tile off for them (tile_lease.later, so
that the tile is handed to them again only when nothing else is left). Which tile comes next
is the observation side's choice (the observation page lists the tiles); these only record.
"""
from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from ..extensions import db
from ..models import ObservationTile, TileDone, TileLease, utcnow


def mark_done(user, tile: ObservationTile) -> int:
    """Record that user finished the tile; return how many labelers have finished it."""
    tile_id = tile.id
    if db.session.scalar(select(TileDone.id).where(TileDone.tile_id == tile_id,
                                                   TileDone.user_id == user.id)) is None:
        try:
            db.session.add(TileDone(tile_id=tile_id, user_id=user.id, finished_at=utcnow()))
            db.session.flush()
        except IntegrityError:  # a second click that raced the first
            db.session.rollback()
    done = db.session.scalar(select(func.count(TileDone.id)).where(TileDone.tile_id == tile_id))
    db.session.execute(update(ObservationTile).where(ObservationTile.id == tile_id)
                       .values(done_count=done))
    db.session.execute(update(TileLease).where(TileLease.tile_id == tile_id,
                                               TileLease.user_id == user.id)
                       .values(expires_at=utcnow(), later=False))
    db.session.commit()
    return done


def put_off(user, tile: ObservationTile) -> None:
    """Put the tile off for user (Later): their lease ends now and is marked later."""
    lease = db.session.scalar(select(TileLease).where(TileLease.tile_id == tile.id,
                                                      TileLease.user_id == user.id))
    if lease is None:
        db.session.add(TileLease(tile_id=tile.id, user_id=user.id, expires_at=utcnow(), later=True))
    else:
        lease.expires_at, lease.later = utcnow(), True
    db.session.commit()
