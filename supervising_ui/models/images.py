"""Images and the import batches that added them."""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa
import sqlalchemy.orm as so

from ..extensions import db
from .common import new_random_key, utcnow

if TYPE_CHECKING:  # relationship targets, resolved by name at run time
    from .accounts import User
    from .projects import Project


class ImportBatch(db.Model):
    """One import run into a project: when, by whom, from where, and how many images it added."""

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    project_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("project.id"), index=True)
    created_at: so.Mapped[datetime] = so.mapped_column(sa.DateTime, default=utcnow)
    created_by_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("user.id"))
    # What was imported, in words: "manifest manifest.csv", "upload of 12 files"...
    source: so.Mapped[str] = so.mapped_column(sa.String(512), default="")
    # Kept in step with the images committed, in the same transactions.
    image_count: so.Mapped[int] = so.mapped_column(sa.Integer, default=0)

    created_by: so.Mapped[User | None] = so.relationship()


class Image(db.Model):
    """An image in managed storage; served by id only, never by a path from a request."""

    __table_args__ = (
        sa.UniqueConstraint("project_id", "content_hash"),
        # Assignment walks this index from a random point: cost stays flat with project size.
        sa.Index("ix_image_pick", "project_id", "label_count", "random_key"),
        # A labeler's own leases, found without scanning the project (a reload resumes one).
        sa.Index("ix_image_lease", "leased_to_id", "lease_expires_at"),
        # Gold images and images adaptive redundancy wants more labels for, found directly.
        sa.Index("ix_image_gold", "project_id", "gold_class_id"),
        sa.Index("ix_image_wanted", "project_id", "labels_wanted"),
    )

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    project_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("project.id"))
    storage_key: so.Mapped[str] = so.mapped_column(sa.String(255))
    original_name: so.Mapped[str] = so.mapped_column(sa.String(512), index=True)
    content_hash: so.Mapped[str] = so.mapped_column(sa.String(64), index=True)
    width: so.Mapped[int] = so.mapped_column(sa.Integer)
    height: so.Mapped[int] = so.mapped_column(sa.Integer)
    # Free-form metadata: instrument, sol, source observation, acquisition time...
    meta: so.Mapped[dict] = so.mapped_column("metadata", sa.JSON, default=dict)
    random_key: so.Mapped[float] = so.mapped_column(sa.Float, default=new_random_key)
    # Number of labels so far; kept in step with the label table by the labeling code.
    label_count: so.Mapped[int] = so.mapped_column(sa.Integer, default=0)
    leased_to_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("user.id"))
    lease_expires_at: so.Mapped[datetime | None] = so.mapped_column(sa.DateTime)
    # The import run that added the image (None: imported before batches were recorded).
    import_batch_id: so.Mapped[int | None] = so.mapped_column(
        sa.ForeignKey("import_batch.id"), index=True)
    # A gold image's known answer (admins only, never shown to labelers); None: not gold.
    gold_class_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("label_class.id"))
    # Adaptive redundancy: the labels the image needs now where that is more than the
    # project's labels_per_image (set by the consensus job); None: labels_per_image.
    labels_wanted: so.Mapped[int | None] = so.mapped_column(sa.Integer)
    created_at: so.Mapped[datetime] = so.mapped_column(sa.DateTime, default=utcnow)

    project: so.Mapped[Project] = so.relationship()
