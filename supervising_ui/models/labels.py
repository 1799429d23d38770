"""What labelers decided: labels, and images put off for later (skips)."""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Boolean, DateTime, Float, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .common import utcnow

if TYPE_CHECKING:  # relationship targets, resolved by name at run time
    from .accounts import User
    from .images import Image
    from .projects import LabelClass


class Label(db.Model):
    """One labeler's decision on one image, with what the model suggested at the time."""

    __table_args__ = (
        UniqueConstraint("image_id", "user_id"),
        UniqueConstraint("user_id", "request_id"),
        Index("ix_label_project_created", "project_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id"))
    image_id: Mapped[int] = mapped_column(ForeignKey("image.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id"), index=True)
    label_class_id: Mapped[int] = mapped_column(ForeignKey("label_class.id"), index=True)
    # Client-chosen id of the submit; a retry with the same id returns the same label.
    request_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    seconds_spent: Mapped[float | None] = mapped_column(Float)
    suggestion_shown: Mapped[bool] = mapped_column(Boolean, default=False)
    suggested_class_id: Mapped[int | None] = mapped_column(ForeignKey("label_class.id"))
    suggestion_confidence: Mapped[float | None] = mapped_column(Float)
    suggestion_model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_version.id"))
    # Came with an import manifest, not from a labeler in the tool: such labels count in
    # training and consensus, but neither arm the idle fine-tune nor count as the labeler's work.
    imported: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")

    image: Mapped[Image] = relationship()
    user: Mapped[User] = relationship()
    label_class: Mapped[LabelClass] = relationship(foreign_keys=[label_class_id])
    suggested_class: Mapped[LabelClass | None] = relationship(foreign_keys=[suggested_class_id])


class Skip(db.Model):
    """A labeler put an image off with "Later" (or "Unsure", with a comment): others get it first."""

    __table_args__ = (UniqueConstraint("image_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("image.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # "Unsure" rather than a plain Later: the labeler could not tell, and may say why.
    unsure: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    comment: Mapped[str | None] = mapped_column(String(500))
