"""Model versions and their predictions."""
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
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .common import utcnow

if TYPE_CHECKING:  # relationship targets, resolved by name at run time
    from .projects import LabelClass


class ModelVersion(db.Model):
    """A trained classifier of a project: its files on disk and its held-out metrics."""

    __table_args__ = (UniqueConstraint("project_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32))
    path: Mapped[str] = mapped_column(String(512))
    num_labels: Mapped[int] = mapped_column(Integer, default=0)
    metrics: Mapped[dict] = mapped_column(JSON, default=dict)
    is_serving: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Prediction(db.Model):
    """A model version's prediction for one image, with the scores that rank its uncertainty."""

    __table_args__ = (
        UniqueConstraint("model_version_id", "image_id"),
        # One index per serving order: least confidence, smallest margin, largest entropy.
        Index("ix_prediction_confidence", "model_version_id", "confidence"),
        Index("ix_prediction_margin", "model_version_id", "margin"),
        Index("ix_prediction_entropy", "model_version_id", "entropy"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_version.id"))
    image_id: Mapped[int] = mapped_column(ForeignKey("image.id"), index=True)
    label_class_id: Mapped[int] = mapped_column(ForeignKey("label_class.id"))
    # Probability of the predicted class.
    confidence: Mapped[float] = mapped_column(Float)
    # Top probability minus the second one.
    margin: Mapped[float] = mapped_column(Float)
    # Shannon entropy of the distribution, in nats.
    entropy: Mapped[float] = mapped_column(Float)
    # Full distribution: {class name: probability}.
    probabilities: Mapped[dict] = mapped_column(JSON, default=dict)

    label_class: Mapped[LabelClass] = relationship()
