"""Boxes drawn on observations (one per labeler and landmark) and the consensus landmarks."""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
import sqlalchemy.orm as so

from ..extensions import db
from .common import utcnow

BOX_SHAPES = ("box", "circle")
BOX_SOURCES = ("drawn", "imported", "proposal")
LANDMARK_STATES = ("pending", "accepted", "fixed", "rejected")


class PixelCorners:
    """A rectangle in pixels of the whole observation (x right, y down, the maximum exclusive)."""

    x_min: so.Mapped[float] = so.mapped_column(sa.Float)
    y_min: so.Mapped[float] = so.mapped_column(sa.Float)
    x_max: so.Mapped[float] = so.mapped_column(sa.Float)
    y_max: so.Mapped[float] = so.mapped_column(sa.Float)


class Box(PixelCorners, db.Model):
    """One annotator's box (or circle, by its bounding box) in observation pixels."""

    __table_args__ = (sa.Index("ix_box_observation", "observation_id", "user_id"),
                      sa.Index("ix_box_tile", "tile_id", "user_id"))

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    observation_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("observation.id"))
    # The work unit it was drawn on (None: imported or proposed for the whole observation).
    tile_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("observation_tile.id"))
    # The annotator (imported boxes belong to a named user); None: a machine proposal.
    user_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("user.id"))
    label_class_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("label_class.id"))
    shape: so.Mapped[str] = so.mapped_column(sa.String(8), default="box", server_default="box")
    source: so.Mapped[str] = so.mapped_column(
        sa.String(16), default="drawn", server_default="drawn")
    created_at: so.Mapped[datetime] = so.mapped_column(sa.DateTime, default=utcnow)
    updated_at: so.Mapped[datetime] = so.mapped_column(sa.DateTime, default=utcnow, onupdate=utcnow)


class Landmark(PixelCorners, db.Model):
    """A consensus landmark: the mean box of a cluster of annotators' boxes, and its review."""

    __table_args__ = (sa.Index("ix_landmark_observation", "observation_id", "status"),
                      sa.Index("ix_landmark_image", "image_id"))

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    observation_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("observation.id"))
    label_class_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("label_class.id"))
    # How many annotators marked it, and who (comma-separated user ids, "proposal" for the machine).
    votes: so.Mapped[int] = so.mapped_column(sa.Integer, default=0)
    annotators: so.Mapped[str] = so.mapped_column(sa.Text, default="", server_default="")
    status: so.Mapped[str] = so.mapped_column(
        sa.String(16), default="pending", server_default="pending")
    reviewed_by_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("user.id"))
    reviewed_at: so.Mapped[datetime | None] = so.mapped_column(sa.DateTime)
    # The crop of this landmark, an image of the project (None: not cropped yet).
    image_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("image.id"))
    merged_at: so.Mapped[datetime] = so.mapped_column(sa.DateTime, default=utcnow)
