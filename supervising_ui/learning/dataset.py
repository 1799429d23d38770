"""What a retrain learns from: the consensus-labeled images, their groups and the held-out split."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from flask import current_app
from sqlalchemy import select

from .. import storage
from ..buckets import in_share
from ..consensus import training_labels
from ..extensions import db
from ..jobs import queue as jobs
from ..models import Image, Project

# The class count a run needs (RETRAIN_MIN_LABELS in config.py: the labeled images it needs).
MIN_CLASSES = 2
# Share of labeled images (whole groups where the project has a group column) held out.
HOLDOUT_SHARE = 0.2


class RetrainError(jobs.JobRefused, ValueError):
    """A retraining request or run that cannot go on, with a message for the user."""


@dataclass(frozen=True)
class LabeledImage:
    """An image with its consensus label, the group it is held out with and its stored hash."""

    image_id: int
    path: str
    label: str
    group: str
    content_hash: str


def labeled_images(project: Project) -> list[LabeledImage]:
    """The project's images that have a consensus label (under Dawid-Skene, a posterior of at
    least the project's retrain_min_posterior), with their files and groups."""
    consensus = training_labels(project.id)
    store = current_app.config["IMAGE_STORE"]
    rows = db.session.execute(select(Image.id, Image.storage_key, Image.meta, Image.content_hash)
                              .where(Image.project_id == project.id).order_by(Image.id)).all()
    return [LabeledImage(image_id, str(storage.path_for_key(store, key)), consensus[image_id],
                         _group_of(image_id, meta, project.group_column), digest)
            for image_id, key, meta, digest in rows if image_id in consensus]


def _group_of(image_id: int, meta: dict | None, group_column: str | None) -> str:
    """The image's group value, or the image itself where it has none."""
    value = (meta or {}).get(group_column) if group_column else None
    return f"group:{value}" if value not in (None, "") else f"image:{image_id}"


def to_records(examples: list[LabeledImage]):
    """ML records of these images, carrying the stored content hash (no file is read to hash)."""
    from ..ml import Record  # torch loads only where a model is trained
    return [Record(e.path, e.label, e.group, e.content_hash) for e in examples]


def check_enough_labels(examples: list[LabeledImage], minimum: int) -> None:
    """Raise RetrainError unless there are `minimum` labeled images in at least two classes."""
    classes = {example.label for example in examples}
    if len(examples) < minimum or len(classes) < MIN_CLASSES:
        raise RetrainError(
            f"need at least {minimum} labeled images in at least {MIN_CLASSES} classes to train "
            f"(have {len(examples)} in {len(classes)} class{'es' if len(classes) != 1 else ''})")


def is_held_out(project_id: int, group: str, share: float = HOLDOUT_SHARE) -> bool:
    """Stable choice: a group is held out in every run, so no model ever trained on it."""
    return in_share(share, project_id, group)


def holdout_split(project_id: int, examples: list[LabeledImage]):
    """Split into (train, held_out, how): whole groups held out, stable across runs."""
    train = [e for e in examples if not is_held_out(project_id, e.group)]
    held_out = [e for e in examples if is_held_out(project_id, e.group)]
    grouped = any(e.group.startswith("group:") for e in examples)
    how = "by group" if grouped else "by image"
    if not held_out or len({e.label for e in train}) < MIN_CLASSES:
        # Too few groups for a stable split: fall back to a seeded split by image.
        order = np.random.default_rng(project_id).permutation(len(examples))
        cut = max(1, round(HOLDOUT_SHARE * len(examples)))
        held_out = [examples[i] for i in sorted(order[:cut])]
        train = [examples[i] for i in sorted(order[cut:])]
        how = "by image (too few groups to hold out whole ones)" if grouped else "by image"
    return train, held_out, how
