"""Tiles as work units: leases per labeler, labelers_per_tile, Later, Done (on both engines)."""
from datetime import timedelta

from supervising_ui.boxes.tile_work import mark_done, put_off
from supervising_ui.extensions import db
from supervising_ui.models import User, utcnow
from supervising_ui.observations.service import import_observation
from supervising_ui.observations.work import lease_seconds, next_tile, tile_states
from tests.helpers import make_project, project_of

from .helpers import synthetic_image


def test_tiles_go_to_labelers_per_tile_labelers_then_later_then_none(app, users, tmp_path):
    image = synthetic_image(tmp_path / "scene.png", size=(1300, 900))  # two tiles: A, B
    with app.app_context():
        project = project_of(make_project("craters", classes=["crater"], labelers_per_tile=2))
        observation, _job = import_observation(project, "scene", image)
        lee, liu, ada = (db.session.get(User, users[name]) for name in ("lee", "liu", "ada"))
        now = utcnow()
        first = next_tile(observation, lee.id, now)
        assert (first.x, first.y) == (0, 0)
        assert next_tile(observation, lee.id, now).id == first.id  # a reload keeps the lease
        assert next_tile(observation, liu.id, now).id == first.id  # two labelers per tile
        third = next_tile(observation, ada.id, now)
        assert (third.x, third.y) == (1024, 0)  # tile A is full: its two places are leased
        # Later: lee gets tile B (shared with ada), and tile A again only when nothing is left.
        put_off(lee, first)
        assert next_tile(observation, lee.id, now).id == third.id
        mark_done(lee, third)
        assert next_tile(observation, lee.id, now).id == first.id  # the put-off one, at last
        states = {state["id"]: state for state in tile_states(observation, lee.id, now)}
        assert states[third.id]["done_by_me"] and states[third.id]["done"] == 1
        assert not states[first.id]["later"]  # taken up again, no longer put off
        mark_done(lee, first)
        mark_done(liu, first)
        assert next_tile(observation, lee.id, now) is None  # done both
        states = {state["id"]: state for state in tile_states(observation, liu.id, now)}
        assert states[first.id]["finished"] and not states[third.id]["finished"]
        # Liu has finished A; B has lee's Done and ada's lease: full until ada's lease ends.
        assert next_tile(observation, liu.id, now) is None
        put_off(ada, third)
        assert next_tile(observation, liu.id, now).id == third.id


def test_an_expired_lease_frees_the_place(app, users, tmp_path):
    image = synthetic_image(tmp_path / "scene.png", size=(500, 400))  # one tile
    with app.app_context():
        project = project_of(make_project("craters", classes=["crater"], labelers_per_tile=1))
        observation, _job = import_observation(project, "scene", image)
        now = utcnow()
        tile = next_tile(observation, users["lee"], now)
        assert next_tile(observation, users["liu"], now) is None
        later = now + timedelta(seconds=lease_seconds() + 1)
        assert next_tile(observation, users["liu"], later).id == tile.id
