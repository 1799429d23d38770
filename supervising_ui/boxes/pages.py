"""What the boxes pages show: the tile labeling page, the review page and the import form."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from ..extensions import db
from ..models import Landmark, TileDone, utcnow
from ..observations import work
from . import BoxError, access, imports, pictures, tile_work
from .listing import landmark_rows
from .merging import human_votes, min_votes_of

# Keys of the tile page's actions; classes take the digits 1-9.
TILE_KEYS = {"Shift + drag": "draw with the current tool (a plain drag pans, a click selects)",
             "B": "box tool: the next plain drag draws a box",
             "C": "circle tool: the next plain drag draws a circle", "Delete / Backspace": "delete the selected box",
             "U / Ctrl+Z": "undo", "A": "take the selected proposal as your box",
             "P": "show or hide the machine's proposals", "D": "done with this tile",
             "L": "later: leave this tile for now", "Esc": "cancel drawing"}


@dataclass
class TilePage:
    """What the tile labeling page needs."""

    project_id: int
    project_name: str
    observation_id: int
    observation_name: str
    tile: dict
    picture: dict
    classes: list[dict]
    labelers_per_tile: int
    done_by_me: bool
    back_url: str
    keys: dict = field(default_factory=lambda: dict(TILE_KEYS))


def tile_page(user, project_id: int, observation_id: int, tile_id: int) -> TilePage:
    """The tile page of a tile user may see; BoxError 404 otherwise."""
    observation, tile = access.tile_of(user, observation_id, tile_id, project_id)
    project = access.project_of(observation)
    picture = pictures.tile_picture(observation, tile, make=False)
    done = db.session.scalar(select(TileDone.id).where(
        TileDone.tile_id == tile.id, TileDone.user_id == user.id)) is not None
    page = TilePage(
        project.id, project.name, observation.id, observation.name,
        {"id": tile.id, "x": tile.x, "y": tile.y, "width": tile.width, "height": tile.height},
        {"x": picture.x, "y": picture.y, "width": picture.width, "height": picture.height},
        [{"name": name, "key": str(index + 1) if index < 9 else None}
         for index, name in enumerate(project.class_names)],
        project.labelers_per_tile, done,
        f"/projects/{project.id}/observations/{observation.id}")
    db.session.commit()  # end the read
    return page


def finish_tile(user, observation_id: int, tile_id: int, done: bool) -> dict:
    """Mark a tile Done (done=True) or Later for user, and lease them the next tile to mark:
    {"tile_id", "done_count", "next_url"} (next_url None when none is left for them)."""
    observation, tile = access.tile_of(user, observation_id, tile_id)
    answer = {"tile_id": tile.id}
    if done:
        answer["done_count"] = tile_work.mark_done(user, tile)
    else:
        tile_work.put_off(user, tile)
    following = work.next_tile(observation, user.id, utcnow())
    answer["next_url"] = None if following is None or following.id == tile_id else (
        f"/projects/{observation.project_id}/observations/{observation.id}/tiles/{following.id}/label")
    db.session.commit()
    return answer


def tile_picture_file(user, observation_id: int, tile_id: int) -> Path:
    """The cached picture of a tile user may see (cut on first use)."""
    observation, tile = access.tile_of(user, observation_id, tile_id)
    path = pictures.tile_picture(observation, tile).path
    db.session.commit()
    return path


@dataclass
class ReviewPage:
    """The review page: an observation's landmarks, consensus or not, with their crops."""

    project_id: int
    project_name: str
    observation_id: int
    observation_name: str
    min_votes: int
    classes: list[str]
    landmarks: list[dict]


def review_page(user, project_id: int, observation_id: int) -> ReviewPage:
    """Every stored landmark of an observation (the rejected too), for a reviewer."""
    observation = access.observation_of(user, observation_id, project_id)
    project = access.project_of(observation)
    rows = {row["id"]: row for row in landmark_rows(observation)}
    names = dict(enumerate(project.class_names))
    class_of = {label_class.id: label_class.name for label_class in project.classes}
    stored = db.session.scalars(select(Landmark).where(
        Landmark.observation_id == observation.id).order_by(Landmark.id)).all()
    landmarks = [rows.get(mark.id) or {
        "id": mark.id, "x_min": mark.x_min, "y_min": mark.y_min, "x_max": mark.x_max,
        "y_max": mark.y_max, "class": class_of.get(mark.label_class_id), "status": mark.status,
        "votes": mark.votes, "human_votes": human_votes(mark), "image_id": mark.image_id,
        "predicted_class": None, "confidence": None} for mark in stored]
    page = ReviewPage(project.id, project.name, observation.id, observation.name,
                      min_votes_of(project), list(names.values()), landmarks)
    db.session.commit()
    return page


@dataclass
class ImportPage:
    """The import form's context."""

    project_id: int
    project_name: str
    observation_id: int
    observation_name: str
    formats: tuple = imports.FORMATS


def import_form(user, project_id: int, observation_id: int, form, upload):
    """The import page, and with a posted form the import's result or its error:
    (page, result, error); BoxError 404 for an observation user may not see."""
    observation = access.observation_of(user, observation_id, project_id)
    project = access.project_of(observation)
    page = ImportPage(project.id, project.name, observation.id, observation.name)
    if form is None:
        return page, None, None
    try:
        if upload is None or not upload.filename:
            raise BoxError("choose the annotation file to import")
        username = (form.get("annotator") or "").strip()
        if not username:
            raise BoxError("name the annotator whose boxes these are")
        result = imports.import_boxes(observation, username, form.get("format", ""),
                                      upload.read(imports.MAX_FILE_BYTES + 1),
                                      form.get("image_name") or None)
    except BoxError as error:
        return page, None, error
    return page, result, None
