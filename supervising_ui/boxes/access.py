"""Who may see which observation, tile, box and landmark, and the lookups that check it.

One rule: a user sees an observation, its tiles, boxes and landmarks when they may see its
project (accounts.membership.can_access); anything else is a 404, like a missing one. Only
a box's annotator may change or delete it (403 for anyone else who may see it).
"""
from __future__ import annotations

from ..accounts.membership import visible_project
from ..extensions import db
from ..models import Box, Landmark, Observation, ObservationTile, Project
from . import BoxError


def observation_of(user, observation_id: int, project_id: int | None = None) -> Observation:
    """The observation if user may see its project (and it belongs to project_id), else 404."""
    observation = db.session.get(Observation, observation_id)
    if observation is None or (project_id is not None and observation.project_id != project_id) \
            or visible_project(user, observation.project_id) is None:
        raise BoxError(f"no observation {observation_id} that you may see", 404)
    return observation


def tile_of(user, observation_id: int, tile_id: int,
            project_id: int | None = None) -> tuple[Observation, ObservationTile]:
    """The observation and one of its tiles if user may see them, else 404."""
    observation = observation_of(user, observation_id, project_id)
    tile = db.session.get(ObservationTile, tile_id)
    if tile is None or tile.observation_id != observation.id:
        raise BoxError(f"no tile {tile_id} in observation {observation_id}", 404)
    return observation, tile


def _on_visible_observation(user, model, row_id: int, name: str):
    """The row of model (a box or landmark) if user may see its observation, else 404."""
    row = db.session.get(model, row_id)
    if row is not None:
        try:
            observation_of(user, row.observation_id)
            return row
        except BoxError:
            pass
    raise BoxError(f"no {name} {row_id} that you may see", 404)


def visible_box(user, box_id: int) -> Box:
    """The box if user may see its observation, else 404."""
    return _on_visible_observation(user, Box, box_id, "box")


def own_box(user, box_id: int) -> Box:
    """The box if user drew (or was given by an import) it; 403 for another's, 404 if unseen."""
    box = visible_box(user, box_id)
    if box.user_id != user.id:
        raise BoxError(f"box {box_id} is not yours: only its annotator may change it", 403)
    return box


def visible_landmark(user, landmark_id: int) -> Landmark:
    """The landmark if user may see its observation, else 404."""
    return _on_visible_observation(user, Landmark, landmark_id, "landmark")


def project_of(observation: Observation) -> Project:
    """The project an observation belongs to."""
    return db.session.get(Project, observation.project_id)
