"""Projects and their class lists."""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
import sqlalchemy.orm as so

from ..extensions import db
from .common import utcnow

SERVING_ORDERS = ("random", "least_confidence", "margin", "entropy")


class Project(db.Model):
    """A labeling project: a class list, its images, its learning loop and who may label it."""

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    name: so.Mapped[str] = so.mapped_column(sa.String(120), unique=True)
    description: so.Mapped[str] = so.mapped_column(sa.Text, default="")
    labels_per_image: so.Mapped[int] = so.mapped_column(sa.Integer, default=1)
    # Metadata column that groups correlated images (e.g. source observation) for held-out splits.
    group_column: so.Mapped[str | None] = so.mapped_column(sa.String(80))
    serving_order: so.Mapped[str] = so.mapped_column(sa.String(32), default="random")
    # Share of uncertainty-ordered picks replaced by random ones, as an unbiased audit stream.
    audit_share: so.Mapped[float] = so.mapped_column(sa.Float, default=0.2)
    # Share of images on which no suggestion is shown, to measure anchoring.
    hide_suggestion_share: so.Mapped[float] = so.mapped_column(sa.Float, default=0.0)
    # Retrain automatically after this many new labels; 0 turns it off.
    retrain_every: so.Mapped[int] = so.mapped_column(sa.Integer, default=0)
    # "Label this batch first": the serving order keeps to this import batch until it is done.
    # No foreign key: it would make project and import_batch refer to each other.
    priority_batch_id: so.Mapped[int | None] = so.mapped_column(sa.Integer)
    members_only: so.Mapped[bool] = so.mapped_column(sa.Boolean, default=False, server_default="0")
    # The learning loop's models see the images in colour (red, green, blue) instead of grayscale.
    color_input: so.Mapped[bool] = so.mapped_column(sa.Boolean, default=False, server_default="0")
    # How labels become an image's class: "majority" or "dawid-skene" (models/review.py).
    consensus_method: so.Mapped[str] = so.mapped_column(sa.String(16), default="majority",
                                                        server_default="majority")
    # Observations: how many labelers mark each tile, and how many of them make a landmark
    # (None: landmarks.merge.DEFAULT_MIN_VOTES).
    labelers_per_tile: so.Mapped[int] = so.mapped_column(sa.Integer, default=2, server_default="2")
    landmark_min_votes: so.Mapped[int | None] = so.mapped_column(sa.Integer)
    # Adaptive redundancy: an image with labels_per_image labels or more stays in the pool
    # while its consensus posterior is below target_posterior and it has fewer than labels_max
    # labels (None: a fixed count, labels_per_image). settle_preference: the share of picks
    # that first try an image one more label could settle, before a fresh one.
    labels_max: so.Mapped[int | None] = so.mapped_column(sa.Integer)
    target_posterior: so.Mapped[float] = so.mapped_column(
        sa.Float, default=0.95, server_default="0.95")
    settle_preference: so.Mapped[float] = so.mapped_column(
        sa.Float, default=1.0, server_default="1")
    # Share of a labeler's picks that serve a gold image (a known answer), unannounced.
    gold_share: so.Mapped[float] = so.mapped_column(sa.Float, default=0.05, server_default="0.05")
    # A retrain leaves out images whose Dawid-Skene posterior is below this.
    retrain_min_posterior: so.Mapped[float] = so.mapped_column(
        sa.Float, default=0.7, server_default="0.7")
    created_at: so.Mapped[datetime] = so.mapped_column(sa.DateTime, default=utcnow)

    classes: so.Mapped[list[LabelClass]] = so.relationship(
        back_populates="project", order_by="LabelClass.position", cascade="all, delete-orphan")

    @property
    def class_names(self) -> list[str]:
        """Return the class names in their display order."""
        return [label_class.name for label_class in self.classes]


class LabelClass(db.Model):
    """One class of a project's ordered class list."""

    __table_args__ = (sa.UniqueConstraint("project_id", "name"),)

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    project_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("project.id"), index=True)
    name: so.Mapped[str] = so.mapped_column(sa.String(120))
    position: so.Mapped[int] = so.mapped_column(sa.Integer, default=0)
    # What the class looks like, for the labelers' field guide.
    description: so.Mapped[str] = so.mapped_column(sa.Text, default="", server_default="")

    project: so.Mapped[Project] = so.relationship(back_populates="classes")
