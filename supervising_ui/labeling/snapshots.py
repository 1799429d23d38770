"""Project settings and image rows that a process remembers between labeling requests, so
that a label costs the database its claim and its submit, and no lookup besides.

- A project's settings (ProjectSettings) for ``SETTINGS_CACHE_SECONDS`` (default 2; 0 turns
  it off). A change of a project or of a model version made in this process (an ORM flush,
  or an ORM UPDATE or DELETE statement) forgets them at once; another process (the other
  gunicorn workers, a second server, the job worker's new serving model) is seen within the
  window. In it, a labeler may still get a suggestion of the model served before, an image
  under the labels-per-image count of before, or access to a project just closed to members
  (as a revoked token works for LOGIN_CACHE_SECONDS, login_cache.py).
- Images (StoredImage): an image's row never changes under its id, so the image that next
  hands a labeler is kept (the ``IMAGE_CACHE_SIZE`` most recent per process) for the image
  file and the submit that follow it on the same keep-alive connection.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable

from flask import Flask, current_app
from sqlalchemy import event
from sqlalchemy.orm import Session

from ..models import ModelVersion, Project
from ..timed_cache import TimedCache, forget_in_app, remembered_in_app

IMAGE_CACHE_SIZE = 4096
# What a project's settings are read from: a change to one of these forgets them.
_SETTINGS_SOURCES = (Project, ModelVersion)


class ImageCache:
    """The most recently kept images by id (least recently used dropped), thread-safe."""

    def __init__(self, size: int):
        self.size = size
        self._images: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, image_id: int):
        """Return the kept image with this id, or None."""
        with self._lock:
            image = self._images.get(image_id)
            if image is not None:
                self._images.move_to_end(image_id)
            return image

    def keep(self, image) -> None:
        """Keep an image (anything with an id), dropping the oldest beyond the size."""
        with self._lock:
            self._images[image.id] = image
            self._images.move_to_end(image.id)
            while len(self._images) > self.size:
                self._images.popitem(last=False)


def init_app(app: Flask) -> None:
    """Give app its caches and forget its settings on every ORM change of their sources."""
    app.extensions["settings_cache"] = TimedCache(float(app.config["SETTINGS_CACHE_SECONDS"]))
    app.extensions["image_cache"] = ImageCache(IMAGE_CACHE_SIZE)
    if not event.contains(Session, "after_flush", _after_flush):
        event.listen(Session, "after_flush", _after_flush)
        event.listen(Session, "do_orm_execute", _on_orm_statement)
        event.listen(Session, "after_commit", _after_commit)


def settings(project_id: int, load: Callable):
    """Return load()'s settings of project_id, remembered for SETTINGS_CACHE_SECONDS."""
    return remembered_in_app("settings_cache", project_id, load)


def keep_settings(project) -> None:
    """Remember settings read along with something else (an image's lookup)."""
    remembered_in_app("settings_cache", project.id, lambda: project)


def image(image_id: int):
    """Return the kept image with this id, or None."""
    cache = current_app.extensions.get("image_cache")
    return cache.get(image_id) if cache is not None else None


def keep_image(stored) -> None:
    """Keep an image row (a StoredImage) for the requests that follow."""
    cache = current_app.extensions.get("image_cache")
    if cache is not None:
        cache.keep(stored)


def forget_settings() -> None:
    """Forget every project's settings in the current app (a change was made here)."""
    forget_in_app("settings_cache")


def _after_flush(session, flush_context) -> None:
    """Forget the settings on a flush that added, changed or deleted a project or model
    (and again after its commit: a request may have read the old ones meanwhile)."""
    changed = (*session.new, *session.dirty, *session.deleted)
    if any(isinstance(instance, _SETTINGS_SOURCES) for instance in changed):
        session.info["forget_settings"] = True
        forget_settings()


def _on_orm_statement(state) -> None:
    """Forget the settings when an ORM UPDATE or DELETE of a project or model runs (and
    again after its commit)."""
    if (state.is_update or state.is_delete) and state.bind_mapper is not None and \
            state.bind_mapper.class_ in _SETTINGS_SOURCES:
        state.session.info["forget_settings"] = True
        forget_settings()


def _after_commit(session) -> None:
    """Forget once more after a commit that changed a project or a model."""
    if session.info.pop("forget_settings", False):
        forget_settings()
