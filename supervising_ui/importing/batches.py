"""Import batches: one row per import run, the images it added, and "label this batch first".

The importer adds a run's batch row in the transaction of its first images and counts the
images it commits into it in the same transactions, so a killed import leaves a batch whose
count matches its images, and a run that adds nothing leaves no batch. A project's priority batch (Project.priority_batch_id)
restricts the serving order to that batch's images (labeling/picking.py) until it is done or
an admin clears it.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, insert, select, update

from ..extensions import db
from ..models import Image, ImportBatch, Project


class BatchError(ValueError):
    """A batch request that cannot be carried out, with a message for the user."""


@dataclass(frozen=True)
class BatchProgress:
    """How far labeling of one batch has come."""

    images: int
    # Images with all the labels the project asks for.
    done: int
    # Images with at least one label.
    labeled: int

    @property
    def is_done(self) -> bool:
        """Whether every image of the batch has its labels."""
        return self.done >= self.images


def insert_batch(project_id: int, user_id: int | None, source: str, started_at: datetime,
                 image_count: int) -> int:
    """Add an import run's batch row in the caller's transaction (its first images'); return its id."""
    return db.session.execute(insert(ImportBatch).values(
        project_id=project_id, created_by_id=user_id, source=source[:512], created_at=started_at,
        image_count=image_count).returning(ImportBatch.id)).scalar_one()


def count_into_batch(batch_id: int, added: int) -> None:
    """Add images to a batch's count, in the caller's transaction (the one adding the images)."""
    db.session.execute(update(ImportBatch).where(ImportBatch.id == batch_id).values(
        image_count=ImportBatch.image_count + added).execution_options(synchronize_session=False))


def project_batches(project_id: int) -> list[ImportBatch]:
    """A project's import batches, newest first."""
    return list(db.session.scalars(select(ImportBatch).where(
        ImportBatch.project_id == project_id).order_by(ImportBatch.id.desc())))


def get_batch(project: Project, batch_id: int) -> ImportBatch:
    """The batch with this id in project, or raise BatchError."""
    batch = db.session.get(ImportBatch, batch_id)
    if batch is None or batch.project_id != project.id:
        raise BatchError(f"project {project.name!r} has no import batch {batch_id}")
    return batch


def chosen_or_latest_batch(project: Project, batch_id: int | None) -> ImportBatch | None:
    """The batch asked for, else the project's latest one (None: no import recorded)."""
    if batch_id is not None:
        return get_batch(project, batch_id)
    return db.session.scalar(select(ImportBatch).where(
        ImportBatch.project_id == project.id).order_by(ImportBatch.id.desc()).limit(1))


def batch_progress(project: Project, batch_id: int) -> BatchProgress:
    """Images of a batch, and how many have all their labels or at least one."""
    images, done, labeled = db.session.execute(select(
        func.count(), func.count().filter(Image.label_count >= project.labels_per_image),
        func.count().filter(Image.label_count > 0)).where(
        Image.project_id == project.id, Image.import_batch_id == batch_id)).one()
    return BatchProgress(images, done, labeled)


def set_priority_batch(project: Project, batch_id: int | None) -> ImportBatch | None:
    """Make labelers get this batch's images first (None: clear); return the batch."""
    batch = get_batch(project, batch_id) if batch_id is not None else None
    project.priority_batch_id = batch_id
    db.session.commit()
    return batch
