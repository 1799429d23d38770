"""Drawing boxes: create, move or resize, delete, and list a labeler's boxes on a tile.

Every write commits and then asks for the observation's landmarks to be merged again
(merging.request_merge). Coordinates are pixels of the whole observation (x right, y down,
the maximum exclusive), clipped to the observation; a box drawn on a tile has its centre in
that tile.
"""
from __future__ import annotations

import math

from sqlalchemy import select

from ..extensions import db
from ..models import BOX_SHAPES, Box, LabelClass, Observation, ObservationTile, utcnow
from . import BoxError, merging

# Smallest side of a box, in observation pixels: anything smaller is a slip of the mouse.
MIN_SIDE = 1.0
CORNERS = ("x_min", "y_min", "x_max", "y_max")


def class_ids(project_id: int) -> dict[str, int]:
    """The project's class ids by name."""
    return dict(db.session.execute(select(LabelClass.name, LabelClass.id).where(
        LabelClass.project_id == project_id)).all())


def class_names(project_id: int) -> dict[int, str]:
    """The project's class names by id."""
    return {class_id: name for name, class_id in class_ids(project_id).items()}


def parse_corners(body: dict, observation: Observation) -> dict[str, float]:
    """The box's corners from a JSON body, clipped to the observation; BoxError if unusable."""
    try:
        values = {name: float(body[name]) for name in CORNERS}
    except (KeyError, TypeError, ValueError):
        raise BoxError("send the box's corners as numbers: x_min, y_min, x_max, y_max "
                       "(observation pixels)") from None
    if not all(math.isfinite(value) for value in values.values()):
        raise BoxError("box corners must be finite numbers")
    values["x_min"], values["x_max"] = sorted((values["x_min"], values["x_max"]))
    values["y_min"], values["y_max"] = sorted((values["y_min"], values["y_max"]))
    values["x_min"] = min(max(values["x_min"], 0.0), observation.width)
    values["x_max"] = min(max(values["x_max"], 0.0), observation.width)
    values["y_min"] = min(max(values["y_min"], 0.0), observation.height)
    values["y_max"] = min(max(values["y_max"], 0.0), observation.height)
    if values["x_max"] - values["x_min"] < MIN_SIDE or values["y_max"] - values["y_min"] < MIN_SIDE:
        raise BoxError(f"the box is smaller than {MIN_SIDE:g} pixel inside the observation "
                       f"({observation.width} x {observation.height})")
    return values


def parse_class(body: dict, project_id: int, default: int | None = None) -> int:
    """The class id named by the body's "label"; BoxError for an unknown one."""
    name = body.get("label")
    if name is None and default is not None:
        return default
    ids = class_ids(project_id)
    if not isinstance(name, str) or name not in ids:
        raise BoxError(f"label must be one of the project's classes: {', '.join(ids)}")
    return ids[name]


def parse_shape(body: dict, default: str = "box") -> str:
    """The shape of the body ("box" or "circle"); BoxError for another."""
    shape = body.get("shape", default)
    if shape not in BOX_SHAPES:
        raise BoxError(f"shape must be one of {', '.join(BOX_SHAPES)}")
    return shape


def _check_in_tile(corners: dict[str, float], tile: ObservationTile) -> None:
    """Refuse a box whose centre lies outside the tile it is drawn on."""
    x = (corners["x_min"] + corners["x_max"]) / 2
    y = (corners["y_min"] + corners["y_max"]) / 2
    if not (tile.x <= x < tile.x + tile.width and tile.y <= y < tile.y + tile.height):
        raise BoxError(f"the box's centre ({x:.0f}, {y:.0f}) lies outside tile {tile.id} "
                       f"(x {tile.x}-{tile.x + tile.width}, y {tile.y}-{tile.y + tile.height})")


def create_box(user, observation: Observation, tile: ObservationTile, body: dict) -> Box:
    """Store a box the user drew on a tile, and queue the observation's merge."""
    corners = parse_corners(body, observation)
    _check_in_tile(corners, tile)
    box = Box(observation_id=observation.id, tile_id=tile.id, user_id=user.id,
              label_class_id=parse_class(body, observation.project_id), shape=parse_shape(body),
              source="drawn", **corners)
    db.session.add(box)
    db.session.commit()
    merging.request_merge(observation.project_id, observation.id)
    return box


def update_box(box: Box, observation: Observation, body: dict) -> Box:
    """Move, resize, reshape or reclass a box (any of its fields), and queue the merge."""
    if any(name in body for name in CORNERS):
        current = {name: getattr(box, name) for name in CORNERS}
        corners = parse_corners({**current, **body}, observation)
        if box.tile_id is not None:
            _check_in_tile(corners, db.session.get(ObservationTile, box.tile_id))
        for name, value in corners.items():
            setattr(box, name, value)
    box.label_class_id = parse_class(body, observation.project_id, default=box.label_class_id)
    box.shape = parse_shape(body, default=box.shape)
    box.updated_at = utcnow()
    db.session.commit()
    merging.request_merge(observation.project_id, observation.id)
    return box


def delete_box(box: Box) -> None:
    """Delete a box, and queue its observation's merge."""
    project_id = db.session.scalar(select(Observation.project_id).where(
        Observation.id == box.observation_id))
    observation_id = box.observation_id
    db.session.delete(box)
    db.session.commit()
    merging.request_merge(project_id, observation_id)


def box_payload(box: Box, names: dict[int, str]) -> dict:
    """A box as the API shows it."""
    return {"id": box.id, "observation_id": box.observation_id, "tile_id": box.tile_id,
            "label": names.get(box.label_class_id), "shape": box.shape, "source": box.source,
            "x_min": box.x_min, "y_min": box.y_min, "x_max": box.x_max, "y_max": box.y_max}


def tile_boxes(user, observation: Observation, tile: ObservationTile) -> dict:
    """The user's own boxes whose centre lies in the tile, and the machine's proposals there."""
    in_tile = (Box.observation_id == observation.id,
               (Box.x_min + Box.x_max) / 2 >= tile.x, (Box.x_min + Box.x_max) / 2 < tile.x + tile.width,
               (Box.y_min + Box.y_max) / 2 >= tile.y, (Box.y_min + Box.y_max) / 2 < tile.y + tile.height)
    own = db.session.scalars(select(Box).where(*in_tile, Box.user_id == user.id)
                             .order_by(Box.id)).all()
    proposals = db.session.scalars(select(Box).where(*in_tile, Box.source == "proposal")
                                   .order_by(Box.id)).all()
    names = class_names(observation.project_id)
    db.session.commit()  # end the read
    return {"boxes": [box_payload(box, names) for box in own],
            "proposals": [box_payload(box, names) for box in proposals]}
