"""What the search views call: one function per page or endpoint, no request objects."""
from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from flask import current_app
from sqlalchemy import func, select

from .. import storage
from ..accounts import membership
from ..downloads import attachment
from ..extensions import db
from ..models import Image, LabelClass, Project, SearchImage
from . import engine, groups, index, results, snapshot, text
from .query import SearchError, SearchQuery, parse_groups, parse_search

log = logging.getLogger(__name__)


def visible_project(project_id: int, user) -> Project | None:
    """Return the project if user may see it (membership.can_access), else None."""
    return membership.visible_project(user, project_id)


def visible_image(project_id: int | None, image_id: int, user) -> Image | None:
    """Return the image if user may see its project (and it is in project_id, when given)."""
    image = db.session.get(Image, image_id)
    if image is None or (project_id is not None and image.project_id != project_id):
        return None
    return image if visible_project(image.project_id, user) is not None else None


def class_ids(project_id: int) -> dict[str, int]:
    """Map the project's class names to their ids, in display order."""
    return dict(db.session.execute(select(LabelClass.name, LabelClass.id).where(
        LabelClass.project_id == project_id).order_by(LabelClass.position)).all())


def page_context(project: Project) -> dict:
    """Return what the search and groups pages are drawn with."""
    return {"project": project, "classes": project.class_names,
            "group_column": project.group_column}


def _evaluated(project_id: int, pairs, classes: dict[str, int], evaluate):
    """Parse a search and return (query, evaluate(snapshot, query, words)) on the caught-up
    snapshot; the free text's words are resolved between two holds of its lock, not inside."""
    held = snapshot.current(project_id)
    with held.lock:
        snapshot.catch_up(held)
        query: SearchQuery = parse_search(pairs, list(classes), held.columns)
        values = held.values
        if not query.words:
            return query, evaluate(held, query, None)
    words = text.resolve(project_id, values, query.words, classes)
    with held.lock:
        return query, evaluate(held, query, words)


def search(project: Project, pairs) -> dict:
    """Answer a search: total, one page of items and the facet counts (SearchError if bad)."""
    classes = class_ids(project.id)
    query, outcome = _evaluated(project.id, pairs, classes, lambda held, query, words:
                                engine.run(held, query, classes, words))
    names = {class_id: name for name, class_id in classes.items()}
    return {"total": outcome.total, "page": query.page, "per_page": query.per_page,
            "items": results.items(outcome.page_ids, names), "facets": outcome.facets}


def group_counts(project: Project, pairs) -> dict:
    """Answer a groups request over the project's group column (SearchError if bad)."""
    classes = class_ids(project.id)
    query = parse_groups(pairs, list(classes))
    if not project.group_column:
        raise SearchError(f"project {project.name!r} has no group column: an admin sets one "
                          "in the project's settings")
    held = snapshot.current(project.id)
    with held.lock:
        snapshot.catch_up(held)
        answer = groups.group_counts(held, query, classes, project.group_column)
    return answer | {"group_column": project.group_column}


def csv_download(project: Project, pairs) -> tuple[str, Iterator[str]]:
    """Return the Content-Disposition and the lines of the result as CSV (SearchError if bad)."""
    classes = class_ids(project.id)
    _, (image_ids, meta_keys) = _evaluated(project.id, pairs, classes, lambda held, query, words: (
        engine.matching_ids(held, query, classes, words).tolist(),
        sorted(held.columns, key=held.columns.get)))
    names = {class_id: name for name, class_id in classes.items()}
    disposition = attachment(project.name, "-search.csv", f"project-{project.id}")
    return disposition, results.csv_lines(image_ids, names, meta_keys)


def image_detail(project: Project, image: Image, pairs=()) -> dict:
    """Return the detail of one image of project, with the images before and after it in
    the search that led there (pairs: its parameters; None where there is none, or where
    those parameters do not make a valid search)."""
    names = {class_id: name for name, class_id in class_ids(project.id).items()}
    detail = results.image_detail(image, names)
    try:
        detail["previous_id"], detail["next_id"] = _neighbours(project, pairs, image.id)
    except SearchError:
        detail["previous_id"] = detail["next_id"] = None
    return detail


def _neighbours(project: Project, pairs, image_id: int) -> tuple[int | None, int | None]:
    """Return the ids before and after image_id among the search's matches, in its order."""
    classes = class_ids(project.id)
    _, matched = _evaluated(project.id, [(name, value) for name, value in pairs if name != "page"],
                            classes, lambda held, query, words:
                            engine.matching_ids(held, query, classes, words))
    where = np.flatnonzero(matched == image_id)
    if not len(where):
        return None, None
    at = int(where[0])
    return (int(matched[at - 1]) if at > 0 else None,
            int(matched[at + 1]) if at + 1 < len(matched) else None)


def thumbnail(image: Image) -> Path | None:
    """Return the cached thumbnail file of an image, or None when its file cannot be read."""
    try:
        return storage.thumbnail_path(current_app.config["IMAGE_STORE"],
                                      current_app.config["CACHE_DIR"], image.storage_key)
    except (OSError, ValueError):  # a missing or unreadable stored file: logged, not a crash
        log.exception("no thumbnail for image %s", image.id)
        return None


def rebuild(project_name: str) -> int:
    """Rebuild the search index of the project called project_name (LookupError if none)."""
    project_id = db.session.scalar(select(Project.id).where(Project.name == project_name))
    if project_id is None:
        raise LookupError(f"no project called {project_name!r}")
    return index.rebuild_project(project_id)


def warm_snapshots(limit: int = snapshot.CACHED_PROJECTS) -> list[int]:
    """Load the largest projects' snapshots into this process ahead of their first search.

    Returns their ids. A search that comes meanwhile waits on the snapshot's lock instead
    of loading it a second time.
    """
    largest = db.session.scalars(select(SearchImage.project_id).group_by(SearchImage.project_id)
                                 .order_by(func.count().desc()).limit(limit)).all()
    db.session.commit()
    for project_id in largest:
        held = snapshot.current(project_id)
        with held.lock:
            snapshot.catch_up(held)
        db.session.commit()  # end the read transaction: the process goes on serving
    return list(largest)
