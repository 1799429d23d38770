"""Boxes drawn on observations (one per labeler and landmark) and the consensus landmarks."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from .common import utcnow

BOX_SHAPES = ("box", "circle")
BOX_SOURCES = ("drawn", "imported", "proposal")
LANDMARK_STATES = ("pending", "accepted", "fixed", "rejected")


class Box(db.Model):
    """One annotator's box (or circle, by its bounding box) in observation pixels."""

    __table_args__ = (Index("ix_box_observation", "observation_id", "user_id"),
                      Index("ix_box_tile", "tile_id", "user_id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    observation_id: Mapped[int] = mapped_column(ForeignKey("observation.id"))
    # The work unit it was drawn on (None: imported or proposed for the whole observation).
    tile_id: Mapped[int | None] = mapped_column(ForeignKey("observation_tile.id"))
    # The annotator (imported boxes belong to a named user); None: a machine proposal.
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    label_class_id: Mapped[int | None] = mapped_column(ForeignKey("label_class.id"))
    shape: Mapped[str] = mapped_column(String(8), default="box", server_default="box")
    x_min: Mapped[float] = mapped_column(Float)
    y_min: Mapped[float] = mapped_column(Float)
    x_max: Mapped[float] = mapped_column(Float)
    y_max: Mapped[float] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(16), default="drawn", server_default="drawn")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


class Landmark(db.Model):
    """A consensus landmark: the mean box of a cluster of annotators' boxes, and its review."""

    __table_args__ = (Index("ix_landmark_observation", "observation_id", "status"),
                      Index("ix_landmark_image", "image_id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    observation_id: Mapped[int] = mapped_column(ForeignKey("observation.id"))
    x_min: Mapped[float] = mapped_column(Float)
    y_min: Mapped[float] = mapped_column(Float)
    x_max: Mapped[float] = mapped_column(Float)
    y_max: Mapped[float] = mapped_column(Float)
    label_class_id: Mapped[int | None] = mapped_column(ForeignKey("label_class.id"))
    # How many annotators marked it, and who (comma-separated user ids, "proposal" for the machine).
    votes: Mapped[int] = mapped_column(Integer, default=0)
    annotators: Mapped[str] = mapped_column(Text, default="", server_default="")
    status: Mapped[str] = mapped_column(String(16), default="pending", server_default="pending")
    reviewed_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime)
    # The crop of this landmark, an image of the project (None: not cropped yet).
    image_id: Mapped[int | None] = mapped_column(ForeignKey("image.id"))
    merged_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
