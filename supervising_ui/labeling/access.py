"""Who may label which project and see which image, and the lookups that check it.

Every labeling request starts here: one query fetches the project's settings (or an image
together with its project's settings) and ``membership.can_access`` decides (with one more
lookup, by primary key, only on a members_only project); a None answer is a 404 to the views,
the same for a missing project as for one the user may not see.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from flask import current_app
from sqlalchemy import bindparam, select

from .. import storage
from ..accounts.membership import can_access, visible_project, visible_projects
from ..extensions import db
from ..models import Image, ModelVersion, Project
from . import snapshots
from .settings import SERVING_MODEL, SETTINGS_COLUMNS, ProjectSettings, project_settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredImage:
    """The columns of an image that the API shows or serves."""

    id: int
    project_id: int
    storage_key: str
    content_hash: str
    original_name: str
    width: int
    height: int
    meta: dict


@dataclass(frozen=True)
class LabelingPage:
    """What the labeling page shows of its project."""

    id: int
    name: str
    class_names: list[str]


_IMAGE_COLUMNS = (Image.id, Image.project_id, Image.storage_key, Image.content_hash,
                  Image.original_name, Image.width, Image.height, Image.meta)
_IMAGE = select(*_IMAGE_COLUMNS).where(Image.id == bindparam("image_id"))
# An image with its project's settings, in one query (every image request runs it).
_IMAGE_AND_PROJECT = (
    select(*_IMAGE_COLUMNS, *SETTINGS_COLUMNS)
    .join(Project, Project.id == Image.project_id)
    .outerjoin(ModelVersion, SERVING_MODEL)
    .where(Image.id == bindparam("image_id"))
    .order_by(ModelVersion.version.desc()).limit(1))


def stored_image(image_id: int) -> StoredImage | None:
    """Return the columns of an image the API needs, or None."""
    row = db.session.connection().execute(_IMAGE, {"image_id": image_id}).first()
    return StoredImage(*row) if row else None


def labelable_project(user, project_id: int) -> ProjectSettings | None:
    """Return the settings of a project user may label, or None (no such project, or not theirs)."""
    project = snapshots.settings(project_id, lambda: project_settings(project_id))
    return project if project is not None and can_access(user, project) else None


def visible_image(user, image_id: int) -> tuple[StoredImage, ProjectSettings] | None:
    """Return an image and its project's settings if user may see them, else None.

    An image that next just handed out, and its project's settings, usually come from
    snapshots.py without a query; otherwise one query reads both.
    """
    image = snapshots.image(image_id)
    if image is not None:
        project = snapshots.settings(image.project_id, lambda: project_settings(image.project_id))
    else:
        row = db.session.connection().execute(_IMAGE_AND_PROJECT, {"image_id": image_id}).first()
        if row is None:
            return None
        split = len(_IMAGE_COLUMNS)
        image, project = StoredImage(*row[:split]), ProjectSettings(*row[split:])
        snapshots.keep_image(image)
        snapshots.keep_settings(project)
    return (image, project) if can_access(user, project) else None


def keep_handed_image(project_id: int, image_id: int, shown: dict) -> None:
    """Keep the image next handed out (what its claim read back) for the requests after it."""
    snapshots.keep_image(StoredImage(image_id, project_id, shown["storage_key"],
                                     shown["content_hash"], shown["original_name"],
                                     shown["width"], shown["height"], shown["meta"]))


def labeling_page(user, project_id: int) -> LabelingPage | None:
    """Return what the labeling page of a project shows, or None if user may not label it."""
    project = visible_project(user, project_id)
    if project is None:
        return None
    return LabelingPage(project.id, project.name, project.class_names)


def labelable_projects(user) -> list[dict]:
    """Return the projects user may label, by name, with their classes (as the API lists them)."""
    return [{"id": project.id, "name": project.name, "description": project.description,
             "classes": project.class_names, "labels_per_image": project.labels_per_image,
             "next_url": f"/api/projects/{project.id}/next"}
            for project in visible_projects(user)]


def image_file(image: StoredImage) -> Path | None:
    """Return the file of an image in the managed store, or None (logged) when it is missing."""
    try:
        path = storage.path_for_key(current_app.config["IMAGE_STORE"], image.storage_key)
    except ValueError:
        log.error("image %s has a malformed storage key %r", image.id, image.storage_key)
        return None
    if not path.is_file():
        log.error("image %s: file %s is missing from the image store", image.id, path)
        return None
    return path
