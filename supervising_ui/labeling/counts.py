"""How far labeling has come: the labeler's own counts and the project's done/total images.

The labeling page polls this after each decision; it only reads.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select

from ..extensions import db
from ..models import Image, Label
from .settings import ProjectSettings


def labeling_counts(project: ProjectSettings, user_id: int, now: datetime) -> dict:
    """Count the user's labels today (UTC) and the project's fully labeled and total images."""
    start_of_day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    # The labeler's own work: labels an import attributed to them are not.
    mine = (Label.user_id == user_id, Label.project_id == project.id, Label.imported.is_(False))
    mine_today = db.session.scalar(select(func.count(Label.id)).where(
        *mine, Label.created_at >= start_of_day))
    mine_total = db.session.scalar(select(func.count(Label.id)).where(*mine))
    images = Image.__table__
    # Gold images (known answers) count in neither figure; an image adaptive redundancy
    # wants more labels for is not done until it has them.
    counted = (images.c.project_id == project.id, images.c.gold_class_id.is_(None))
    done = db.session.scalar(select(func.count()).select_from(images).where(
        *counted, images.c.label_count >= func.coalesce(images.c.labels_wanted,
                                                        project.labels_per_image)))
    total = db.session.scalar(select(func.count()).select_from(images).where(*counted))
    return {"mine_today": mine_today, "mine_total": mine_total, "done": done, "total": total,
            "labels_per_image": project.labels_per_image}
