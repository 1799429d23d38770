"""Labels a team can trust: each image's stored consensus, each project's consensus run, reviews."""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
import sqlalchemy.orm as so

from ..extensions import db
from .common import utcnow

CONSENSUS_METHODS = ("majority", "dawid-skene")
REVIEW_DECISIONS = ("accept", "fix", "reject")


class ImageConsensus(db.Model):
    """An image's class as the project's consensus method last computed it, with its posterior."""

    __table_args__ = (sa.UniqueConstraint("image_id"),
                      sa.Index("ix_image_consensus_project", "project_id", "image_id"))

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    project_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("project.id"))
    image_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("image.id"))
    # None: no class (a tie under majority).
    label_class_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("label_class.id"))
    # Probability of that class (Dawid-Skene), or the winning vote share (majority); 1 if settled.
    posterior: so.Mapped[float] = so.mapped_column(sa.Float, default=0.0)
    n_labels: so.Mapped[int] = so.mapped_column(sa.Integer, default=0)
    method: so.Mapped[str] = so.mapped_column(sa.String(16), default="majority")


class ConsensusRun(db.Model):
    """A project's last consensus computation: what it saw, and the labelers' estimated confusions."""

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    project_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("project.id"), unique=True)
    method: so.Mapped[str] = so.mapped_column(sa.String(16), default="majority")
    computed_at: so.Mapped[datetime] = so.mapped_column(sa.DateTime, default=utcnow)
    # The highest label and review ids it saw (and how many labels): newer ones make it stale.
    last_label_id: so.Mapped[int] = so.mapped_column(sa.Integer, default=0)
    last_review_id: so.Mapped[int] = so.mapped_column(sa.Integer, default=0)
    label_total: so.Mapped[int] = so.mapped_column(sa.Integer, default=0)
    # {user_id: {"true class": {"given class": probability}}} from Dawid-Skene (None: majority).
    confusions: so.Mapped[dict | None] = so.mapped_column(sa.JSON)


class Review(db.Model):
    """A reviewer's decision on an image: accept, fix (the right class) or reject a label."""

    __table_args__ = (sa.Index("ix_review_project_image", "project_id", "image_id"),)

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    project_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("project.id"))
    image_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("image.id"))
    reviewer_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("user.id"), index=True)
    decision: so.Mapped[str] = so.mapped_column(sa.String(8))
    # The class the decision settles (accept, fix); None for a reject.
    label_class_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("label_class.id"))
    # The label under review: whose it was and what it said (a rejected label is deleted).
    labeler_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("user.id"), index=True)
    labeler_class_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("label_class.id"))
    reason: so.Mapped[str | None] = so.mapped_column(sa.String(300))
    created_at: so.Mapped[datetime] = so.mapped_column(sa.DateTime, default=utcnow)


class LabelIssue(db.Model):
    """A likely label error the finder ranked: an image whose consensus class the out-of-sample
    model finds unlikely (cleanlab's self-confidence), with the class it suggests instead."""

    __table_args__ = (sa.UniqueConstraint("image_id"),
                      sa.Index("ix_label_issue_project_rank", "project_id", "rank"))

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    project_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("project.id"))
    image_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("image.id"))
    rank: so.Mapped[int] = so.mapped_column(sa.Integer)
    # The consensus class the finder doubts, and the class the out-of-sample model prefers.
    given_class_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("label_class.id"))
    suggested_class_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("label_class.id"))
    # The out-of-sample probability of the given class (lower: more likely wrong).
    self_confidence: so.Mapped[float] = so.mapped_column(sa.Float, default=0.0)
    computed_at: so.Mapped[datetime] = so.mapped_column(sa.DateTime, default=utcnow)
