"""Model versions and their predictions."""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa
import sqlalchemy.orm as so

from ..extensions import db
from .common import utcnow

if TYPE_CHECKING:  # relationship targets, resolved by name at run time
    from .projects import LabelClass


class ModelVersion(db.Model):
    """A trained classifier of a project: its files on disk and its held-out metrics."""

    __table_args__ = (sa.UniqueConstraint("project_id", "version"),)

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    project_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("project.id"), index=True)
    version: so.Mapped[int] = so.mapped_column(sa.Integer)
    kind: so.Mapped[str] = so.mapped_column(sa.String(32))
    path: so.Mapped[str] = so.mapped_column(sa.String(512))
    num_labels: so.Mapped[int] = so.mapped_column(sa.Integer, default=0)
    metrics: so.Mapped[dict] = so.mapped_column(sa.JSON, default=dict)
    is_serving: so.Mapped[bool] = so.mapped_column(sa.Boolean, default=False)
    created_at: so.Mapped[datetime] = so.mapped_column(sa.DateTime, default=utcnow)


class Prediction(db.Model):
    """A model version's prediction for one image, with the scores that rank its uncertainty."""

    __table_args__ = (
        sa.UniqueConstraint("model_version_id", "image_id"),
        # One index per serving order: least confidence, smallest margin, largest entropy.
        sa.Index("ix_prediction_confidence", "model_version_id", "confidence"),
        sa.Index("ix_prediction_margin", "model_version_id", "margin"),
        sa.Index("ix_prediction_entropy", "model_version_id", "entropy"),
    )

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    model_version_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("model_version.id"))
    image_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("image.id"), index=True)
    label_class_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("label_class.id"))
    # Probability of the predicted class.
    confidence: so.Mapped[float] = so.mapped_column(sa.Float)
    # Top probability minus the second one.
    margin: so.Mapped[float] = so.mapped_column(sa.Float)
    # Shannon entropy of the distribution, in nats.
    entropy: so.Mapped[float] = so.mapped_column(sa.Float)
    # Full distribution: {class name: probability}.
    probabilities: so.Mapped[dict] = so.mapped_column(sa.JSON, default=dict)

    label_class: so.Mapped[LabelClass] = so.relationship()
