"""Images and the import batches that added them."""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .common import new_random_key, utcnow

if TYPE_CHECKING:  # relationship targets, resolved by name at run time
    from .accounts import User
    from .projects import Project


class ImportBatch(db.Model):
    """One import run into a project: when, by whom, from where, and how many images it added."""

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    # What was imported, in words: "manifest manifest.csv", "upload of 12 files"...
    source: Mapped[str] = mapped_column(String(512), default="")
    # Kept in step with the images committed, in the same transactions.
    image_count: Mapped[int] = mapped_column(Integer, default=0)

    created_by: Mapped[User | None] = relationship()


class Image(db.Model):
    """An image in managed storage; served by id only, never by a path from a request."""

    __table_args__ = (
        UniqueConstraint("project_id", "content_hash"),
        # Assignment walks this index from a random point: cost stays flat with project size.
        Index("ix_image_pick", "project_id", "label_count", "random_key"),
        # A labeler's own leases, found without scanning the project (a reload resumes one).
        Index("ix_image_lease", "leased_to_id", "lease_expires_at"),
        # Gold images and images adaptive redundancy wants more labels for, found directly.
        Index("ix_image_gold", "project_id", "gold_class_id"),
        Index("ix_image_wanted", "project_id", "labels_wanted"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id"))
    storage_key: Mapped[str] = mapped_column(String(255))
    original_name: Mapped[str] = mapped_column(String(512), index=True)
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    # Free-form metadata: instrument, sol, source observation, acquisition time...
    meta: Mapped[dict] = mapped_column("metadata", JSON, default=dict)
    random_key: Mapped[float] = mapped_column(Float, default=new_random_key)
    # Number of labels so far; kept in step with the label table by the labeling code.
    label_count: Mapped[int] = mapped_column(Integer, default=0)
    leased_to_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    # The import run that added the image (None: imported before batches were recorded).
    import_batch_id: Mapped[int | None] = mapped_column(ForeignKey("import_batch.id"), index=True)
    # A gold image's known answer (admins only, never shown to labelers); None: not gold.
    gold_class_id: Mapped[int | None] = mapped_column(ForeignKey("label_class.id"))
    # Adaptive redundancy: the labels the image needs now where that is more than the
    # project's labels_per_image (set by the consensus job); None: labels_per_image.
    labels_wanted: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    project: Mapped[Project] = relationship()
