"""Whole observations (big orbital images), their tiles as work units, and the tiles' leases."""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa
import sqlalchemy.orm as so

from ..extensions import db
from .common import utcnow

if TYPE_CHECKING:  # relationship targets, resolved by name at run time
    from .projects import Project

OBSERVATION_STATES = ("queued", "tiling", "ready", "failed")
LABEL_KINDS = ("pds3", "pds4")
DEFAULT_TILE_SIZE = 1024


class Observation(db.Model):
    """A big image of a project (a whole orbital observation), stored whole and served as tiles."""

    __table_args__ = (sa.UniqueConstraint("project_id", "name"),)

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    project_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("project.id"), index=True)
    name: so.Mapped[str] = so.mapped_column(sa.String(255))
    # Managed storage key of the original file, as imported.
    image_key: so.Mapped[str] = so.mapped_column(sa.String(255))
    width: so.Mapped[int] = so.mapped_column(sa.Integer)
    height: so.Mapped[int] = so.mapped_column(sa.Integer)
    # queued -> tiling -> ready, or failed with the reason in error.
    status: so.Mapped[str] = so.mapped_column(
        sa.String(16), default="queued", server_default="queued")
    error: so.Mapped[str | None] = so.mapped_column(sa.Text)
    # Which PDS label came with it (None: no label; no scale, no latitude and longitude).
    label_kind: so.Mapped[str | None] = so.mapped_column(sa.String(8))
    meters_per_pixel: so.Mapped[float | None] = so.mapped_column(sa.Float)
    # What observations/geo.py needs for pixel -> latitude/longitude (None: no label).
    projection: so.Mapped[dict | None] = so.mapped_column(sa.JSON)
    # Side of a work unit (observation_tile) in pixels.
    tile_size: so.Mapped[int] = so.mapped_column(sa.Integer, default=DEFAULT_TILE_SIZE,
                                                 server_default=str(DEFAULT_TILE_SIZE))
    created_at: so.Mapped[datetime] = so.mapped_column(sa.DateTime, default=utcnow)
    created_by_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("user.id"))

    project: so.Mapped[Project] = so.relationship()


class ObservationTile(db.Model):
    """A work unit: one rectangle of an observation, labeled by labelers_per_tile labelers."""

    __table_args__ = (sa.UniqueConstraint("observation_id", "x", "y"),)

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    observation_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("observation.id"))
    x: so.Mapped[int] = so.mapped_column(sa.Integer)
    y: so.Mapped[int] = so.mapped_column(sa.Integer)
    width: so.Mapped[int] = so.mapped_column(sa.Integer)
    height: so.Mapped[int] = so.mapped_column(sa.Integer)
    # How many labelers marked it done; kept in step with tile_done by the code that adds them.
    done_count: so.Mapped[int] = so.mapped_column(sa.Integer, default=0, server_default="0")


class TileLease(db.Model):
    """A tile held for one labeler until expires_at, or put off by them with Later."""

    __table_args__ = (sa.UniqueConstraint("tile_id", "user_id"),
                      sa.Index("ix_tile_lease_user", "user_id", "expires_at"))

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    tile_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("observation_tile.id"))
    user_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("user.id"))
    expires_at: so.Mapped[datetime] = so.mapped_column(sa.DateTime)
    # Put off with Later: handed to this labeler again only when nothing else is left.
    later: so.Mapped[bool] = so.mapped_column(sa.Boolean, default=False, server_default="0")


class TileDone(db.Model):
    """One labeler finished a tile ("Done"): their boxes on it are complete."""

    __table_args__ = (sa.UniqueConstraint("tile_id", "user_id"),
                      sa.Index("ix_tile_done_user", "user_id"))

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    tile_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("observation_tile.id"))
    user_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("user.id"))
    finished_at: so.Mapped[datetime] = so.mapped_column(sa.DateTime, default=utcnow)
