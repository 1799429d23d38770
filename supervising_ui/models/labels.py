"""What labelers decided: labels, and images put off for later (skips)."""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa
import sqlalchemy.orm as so

from ..extensions import db
from .common import utcnow

if TYPE_CHECKING:  # relationship targets, resolved by name at run time
    from .accounts import User
    from .images import Image
    from .projects import LabelClass


class Label(db.Model):
    """One labeler's decision on one image, with what the model suggested at the time."""

    __table_args__ = (
        sa.UniqueConstraint("image_id", "user_id"),
        sa.UniqueConstraint("user_id", "request_id"),
        sa.Index("ix_label_project_created", "project_id", "created_at"),
    )

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    project_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("project.id"))
    image_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("image.id"), index=True)
    user_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("user.id"), index=True)
    label_class_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("label_class.id"), index=True)
    # Client-chosen id of the submit; a retry with the same id returns the same label.
    request_id: so.Mapped[str | None] = so.mapped_column(sa.String(64))
    created_at: so.Mapped[datetime] = so.mapped_column(sa.DateTime, default=utcnow)
    seconds_spent: so.Mapped[float | None] = so.mapped_column(sa.Float)
    suggestion_shown: so.Mapped[bool] = so.mapped_column(sa.Boolean, default=False)
    suggested_class_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("label_class.id"))
    suggestion_confidence: so.Mapped[float | None] = so.mapped_column(sa.Float)
    suggestion_model_version_id: so.Mapped[int | None] = so.mapped_column(
        sa.ForeignKey("model_version.id"))
    # Came with an import manifest, not from a labeler in the tool: such labels count in
    # training and consensus, but neither arm the idle fine-tune nor count as the labeler's work.
    imported: so.Mapped[bool] = so.mapped_column(sa.Boolean, default=False, server_default="0")

    image: so.Mapped[Image] = so.relationship()
    user: so.Mapped[User] = so.relationship()
    label_class: so.Mapped[LabelClass] = so.relationship(foreign_keys=[label_class_id])
    suggested_class: so.Mapped[LabelClass | None] = so.relationship(
        foreign_keys=[suggested_class_id])


class Skip(db.Model):
    """A labeler put an image off with "Later" (or "Unsure", with a comment): others get it first."""

    __table_args__ = (sa.UniqueConstraint("image_id", "user_id"),)

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    image_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("image.id"), index=True)
    user_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("user.id"), index=True)
    created_at: so.Mapped[datetime] = so.mapped_column(sa.DateTime, default=utcnow)
    # "Unsure" rather than a plain Later: the labeler could not tell, and may say why.
    unsure: so.Mapped[bool] = so.mapped_column(sa.Boolean, default=False, server_default="0")
    comment: so.Mapped[str | None] = so.mapped_column(sa.String(500))
