"""Who may see what of the review domain, and the project's consensus method setting."""
from __future__ import annotations

from sqlalchemy import select

from ..accounts import membership
from ..extensions import db
from ..models import CONSENSUS_METHODS, Image, Project, User
from . import consensus_jobs
from .queue import ReviewError


def visible_project(user, project_id: int) -> Project:
    """The project if user may see it; ReviewError 404 otherwise (like a missing one)."""
    project = membership.visible_project(user, project_id)
    if project is None:
        raise ReviewError(f"no project {project_id} that you may see", 404)
    return project


def image_project(user, image_id: int) -> Project:
    """The project of an image user may see; ReviewError 404 otherwise."""
    image = db.session.get(Image, image_id)
    if image is None:
        raise ReviewError(f"no image {image_id} that you may see", 404)
    try:
        return visible_project(user, image.project_id)
    except ReviewError:
        raise ReviewError(f"no image {image_id} that you may see", 404) from None


def figures_of(user, labeler: str | None = None) -> int | None:
    """Whose agreement figures to show: None for everyone's, else one user's id. Admins and
    reviewers see everyone's (or the labeler's they name); a labeler only their own, and a
    404 for anyone else's, like a missing one."""
    if not labeler:
        return None if user.may_review else user.id
    if labeler == user.username:
        return user.id
    labeler_id = db.session.scalar(select(User.id).where(User.username == labeler)) \
        if user.may_review else None
    if labeler_id is None:
        raise ReviewError(f"no labeler {labeler[:80]!r} whose figures you may see", 404)
    return labeler_id


def set_consensus_method(project: Project, method: str) -> None:
    """Set the project's consensus method and queue a recompute; ReviewError on an unknown one."""
    if method not in CONSENSUS_METHODS:
        raise ReviewError(f"consensus method must be one of {', '.join(CONSENSUS_METHODS)}", 400)
    project.consensus_method = method
    db.session.commit()
    consensus_jobs.request_consensus(project.id)
