"""Importing a whole observation: checks first, then the original stored, rows, the tiling job.

Everything a user can get wrong (the name, the image, the label) is checked before a file is
written or a row added, and refused with ObservationRefused; a failure after the copy removes
the copy again (unless another observation names the same bytes), so nothing is half-made.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from flask import abort
from sqlalchemy import func, select

from .. import storage
from ..accounts import membership
from ..extensions import db
from ..jobs import queue as jobs
from ..models import Job, Observation, ObservationTile, Project
from . import files
from .labels import LabelRejected, read_label
from .tiling import JOB_KIND as TILING_JOB

MAX_NAME = 255


class ObservationRefused(ValueError):
    """An import that cannot go ahead, with the reason in words."""


def import_observation(project: Project, name: str, image_path: str | Path,
                       label_path: str | Path | None = None,
                       user_id: int | None = None) -> tuple[Observation, Job]:
    """Check, store and record an observation, and queue its tiling; return it and the job."""
    name = _checked_name(project, name)
    try:
        probe = files.probe_image(image_path)
        label = read_label(label_path, probe.width, probe.height) if label_path else None
    except (files.ObservationFileRejected, LabelRejected) as error:
        raise ObservationRefused(str(error)) from error
    key = storage.storage_key(storage.file_content_hash(image_path), probe.extension)
    store = files.observation_store()
    storage.store_file(store, key, image_path)
    try:
        observation = Observation(
            project_id=project.id, name=name, image_key=key, width=probe.width,
            height=probe.height, created_by_id=user_id,
            label_kind=label.kind if label else None,
            meters_per_pixel=label.meters_per_pixel if label else None,
            projection=label.projection if label else None)
        db.session.add(observation)
        db.session.flush()
        db.session.add_all(work_units(observation))
        db.session.commit()
    except BaseException:
        db.session.rollback()
        _remove_unnamed(store, key)
        raise
    job = jobs.submit(TILING_JOB, project.id, {"observation_id": observation.id}, user_id)
    return observation, job


def import_uploaded(project: Project, name: str, image, label=None,
                    user_id: int | None = None) -> tuple[Observation, Job]:
    """import_observation for uploaded files (werkzeug FileStorage), staged in temporary files."""
    if image is None or not image.filename:
        raise ObservationRefused("choose an image file")
    name = (name or "").strip() or Path(image.filename).stem
    with tempfile.TemporaryDirectory(prefix="observation-") as folder:
        image_path = Path(folder) / "image"
        image.save(image_path)
        label_path = None
        if label is not None and label.filename:
            label_path = Path(folder) / "label"
            label.save(label_path)
        return import_observation(project, name, image_path, label_path, user_id)


def work_units(observation: Observation) -> list[ObservationTile]:
    """Return the observation's tiles (work units): a grid of tile_size squares, cut at the edges."""
    size = observation.tile_size or files.DEEPZOOM_TILE
    return [ObservationTile(observation_id=observation.id, x=x, y=y,
                            width=min(size, observation.width - x),
                            height=min(size, observation.height - y))
            for y in range(0, observation.height, size) for x in range(0, observation.width, size)]


def _checked_name(project: Project, name: str) -> str:
    """Return the stripped name, or refuse an empty, long or taken one."""
    name = (name or "").strip()
    if not name:
        raise ObservationRefused("give the observation a name")
    if len(name) > MAX_NAME:
        raise ObservationRefused(f"the name is longer than {MAX_NAME} characters")
    taken = db.session.scalar(select(func.count()).select_from(Observation).where(
        Observation.project_id == project.id, Observation.name == name))
    if taken:
        raise ObservationRefused(f"project {project.name!r} already has an observation {name!r}")
    return name


def _remove_unnamed(store: Path, key: str) -> None:
    """Delete a stored original that no observation row names."""
    named = db.session.scalar(select(func.count()).select_from(Observation).where(
        Observation.image_key == key))
    db.session.rollback()
    if not named:
        storage.path_for_key(store, key).unlink(missing_ok=True)


def observations_of(project: Project) -> list[Observation]:
    """Return the project's observations, newest first."""
    return list(db.session.scalars(select(Observation).where(
        Observation.project_id == project.id).order_by(Observation.id.desc())))


def visible_observation(user, observation_id: int, project_id: int | None = None) -> Observation:
    """Return the observation if user may see its project (and it is project_id's), else 404."""
    observation = db.session.get(Observation, observation_id)
    if observation is None or (project_id is not None and observation.project_id != project_id) \
            or membership.visible_project(user, observation.project_id) is None:
        abort(404)
    return observation


def visible_project_or_404(user, project_id: int) -> Project:
    """Return the project if user may see it, else 404."""
    project = membership.visible_project(user, project_id)
    if project is None:
        abort(404)
    return project


MAX_LABELERS_PER_TILE = 20


def update_settings(project: Project, labelers_per_tile: str, landmark_min_votes: str) -> None:
    """Set how many labelers mark each tile and the landmarks' minimum votes (blank: default)."""
    per_tile = _whole_number(labelers_per_tile, "labelers per tile")
    votes = _whole_number(landmark_min_votes, "minimum votes") if \
        (landmark_min_votes or "").strip() else None
    project.labelers_per_tile, project.landmark_min_votes = per_tile, votes
    db.session.commit()


def _whole_number(text: str, what: str) -> int:
    """Return text as a whole number 1..MAX_LABELERS_PER_TILE, or refuse it."""
    try:
        value = int((text or "").strip())
    except ValueError:
        raise ObservationRefused(f"{what} must be a whole number") from None
    if not 1 <= value <= MAX_LABELERS_PER_TILE:
        raise ObservationRefused(f"{what} must be between 1 and {MAX_LABELERS_PER_TILE}")
    return value
