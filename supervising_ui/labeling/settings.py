"""What every labeling request reads first: the project's settings and serving model.

``project_settings`` answers in one query (the project row joined to its serving model
version); the image lookups in access.py reuse its columns to fetch an image and its project
together. LabelingError is the one error a labeling service raises for a request it refuses.
"""
from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from sqlalchemy import and_, bindparam, select

from ..extensions import db
from ..models import ModelVersion, Project


class LabelingError(Exception):
    """A labeling request that cannot be carried out; status is the HTTP status to answer."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class ProjectSettings:
    """The project columns that labeling reads, with its serving model, in one query."""

    id: int
    labels_per_image: int
    serving_order: str
    audit_share: float
    hide_suggestion_share: float
    # The model version whose predictions are suggested and rank uncertainty (None: no model).
    serving_model_id: int | None
    serving_version: int | None
    # Queue a quick retrain after this many new labels (0: never).
    retrain_every: int
    # "Label this batch first": the import batch the serving order keeps to (None: none).
    priority_batch_id: int | None = None
    # Only the project's members (and admins) may label it (membership.can_access).
    members_only: bool = False
    # Adaptive redundancy: the most labels an image takes (None: a fixed count), and the
    # share of picks that first try an image one more label could settle.
    labels_max: int | None = None
    settle_preference: float = 1.0
    # Share of picks that serve a gold image (a known answer), unannounced.
    gold_share: float = 0.0
    # How labels become an image's class: "majority" or "dawid-skene".
    consensus_method: str = "majority"

    @property
    def adaptive(self) -> bool:
        """Whether images may take more labels than labels_per_image while unsettled."""
        return self.labels_max is not None and self.labels_max > self.labels_per_image


# ProjectSettings' columns, in order; a select of them joins SERVING_MODEL to Project.
SETTINGS_COLUMNS = (Project.id, Project.labels_per_image, Project.serving_order,
                    Project.audit_share, Project.hide_suggestion_share, ModelVersion.id,
                    ModelVersion.version, Project.retrain_every, Project.priority_batch_id,
                    Project.members_only, Project.labels_max, Project.settle_preference,
                    Project.gold_share, Project.consensus_method)
SERVING_MODEL = and_(ModelVersion.project_id == Project.id, ModelVersion.is_serving.is_(True))
_PROJECT_SETTINGS = (
    select(*SETTINGS_COLUMNS).outerjoin(ModelVersion, SERVING_MODEL)
    .where(Project.id == bindparam("project_id"))
    .order_by(ModelVersion.version.desc()).limit(1))


def project_settings(project_id: int) -> ProjectSettings | None:
    """Return the labeling settings of a project, or None if there is no such project."""
    row = db.session.connection().execute(_PROJECT_SETTINGS, {"project_id": project_id}).first()
    return ProjectSettings(*row) if row else None


def settings_of(project) -> ProjectSettings:
    """Return project's labeling settings, from a Project row (one query) or settings already."""
    return project if isinstance(project, ProjectSettings) else project_settings(project.id)


def lease_seconds() -> int:
    """Return how long a lease lasts (config LEASE_SECONDS)."""
    return int(current_app.config["LEASE_SECONDS"])
