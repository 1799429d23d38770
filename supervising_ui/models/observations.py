"""Whole observations (big orbital images), their tiles as work units, and the tiles' leases."""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .common import utcnow

if TYPE_CHECKING:  # relationship targets, resolved by name at run time
    from .projects import Project

OBSERVATION_STATES = ("queued", "tiling", "ready", "failed")
LABEL_KINDS = ("pds3", "pds4")
DEFAULT_TILE_SIZE = 1024


class Observation(db.Model):
    """A big image of a project (a whole orbital observation), stored whole and served as tiles."""

    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    # Managed storage key of the original file, as imported.
    image_key: Mapped[str] = mapped_column(String(255))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    # queued -> tiling -> ready, or failed with the reason in error.
    status: Mapped[str] = mapped_column(String(16), default="queued", server_default="queued")
    error: Mapped[str | None] = mapped_column(Text)
    # Which PDS label came with it (None: no label; no scale, no latitude and longitude).
    label_kind: Mapped[str | None] = mapped_column(String(8))
    meters_per_pixel: Mapped[float | None] = mapped_column(Float)
    # What observations/geo.py needs for pixel -> latitude/longitude (None: no label).
    projection: Mapped[dict | None] = mapped_column(JSON)
    # Side of a work unit (observation_tile) in pixels.
    tile_size: Mapped[int] = mapped_column(Integer, default=DEFAULT_TILE_SIZE,
                                           server_default=str(DEFAULT_TILE_SIZE))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))

    project: Mapped[Project] = relationship()


class ObservationTile(db.Model):
    """A work unit: one rectangle of an observation, labeled by labelers_per_tile labelers."""

    __table_args__ = (UniqueConstraint("observation_id", "x", "y"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    observation_id: Mapped[int] = mapped_column(ForeignKey("observation.id"))
    x: Mapped[int] = mapped_column(Integer)
    y: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    # How many labelers marked it done; kept in step with tile_done by the code that adds them.
    done_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class TileLease(db.Model):
    """A tile held for one labeler until expires_at, or put off by them with Later."""

    __table_args__ = (UniqueConstraint("tile_id", "user_id"),
                      Index("ix_tile_lease_user", "user_id", "expires_at"))

    id: Mapped[int] = mapped_column(primary_key=True)
    tile_id: Mapped[int] = mapped_column(ForeignKey("observation_tile.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id"))
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    # Put off with Later: handed to this labeler again only when nothing else is left.
    later: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")


class TileDone(db.Model):
    """One labeler finished a tile ("Done"): their boxes on it are complete."""

    __table_args__ = (UniqueConstraint("tile_id", "user_id"),
                      Index("ix_tile_done_user", "user_id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    tile_id: Mapped[int] = mapped_column(ForeignKey("observation_tile.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id"))
    finished_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
