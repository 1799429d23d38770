"""The tile labeling page in Chromium: draw a box and a circle, change a class with a key,
delete with the Delete key, undo, and Done; what the page did is read back from the API."""
from sqlalchemy import select

from supervising_ui.extensions import db
from supervising_ui.models import Box, Observation, TileDone

from ..browser import BROWSER_TEST, log_in
from .helpers import make_observation

pytestmark = BROWSER_TEST


def _drag(page, start, end):
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move((start[0] + end[0]) / 2, (start[1] + end[1]) / 2, steps=4)
    page.mouse.move(*end, steps=4)
    page.mouse.up()


def _boxes(app):
    with app.app_context():
        rows = db.session.scalars(select(Box).order_by(Box.id)).all()
        return [(box.shape, box.label_class_id, round(box.x_max - box.x_min)) for box in rows]


def test_draw_reclass_delete_undo_and_done(app, live_server, browser, users):
    with app.app_context():
        observation_id, tiles = make_observation(width=300, height=200, tile_size=300)
        project_id = db.session.get(Observation, observation_id).project_id
    page = log_in(browser, live_server, "lee")
    page.set_viewport_size({"width": 1200, "height": 900})
    page.goto(f"{live_server}/projects/{project_id}/observations/{observation_id}/tiles/{tiles[0]}/label")
    page.wait_for_selector("#tile-labeling[data-ready='1']")
    viewer = page.locator("#tile-viewer").bounding_box()
    centre = (viewer["x"] + viewer["width"] / 2, viewer["y"] + viewer["height"] / 2)
    page.keyboard.down("Shift")  # Shift + drag draws with the current tool (a box)
    _drag(page, (centre[0] - 60, centre[1] - 60), (centre[0] + 20, centre[1] + 20))
    page.keyboard.up("Shift")
    page.wait_for_function("() => window.boxesPage.boxes.size === 1")
    page.keyboard.press("c")  # the circle tool, armed: the next plain drag draws
    page.keyboard.press("2")  # dark_dune, for what comes next
    _drag(page, (centre[0] + 150, centre[1] + 100), (centre[0] + 180, centre[1] + 130))
    page.wait_for_function("() => window.boxesPage.boxes.size === 2")
    shapes = sorted(shape for shape, *_ in _boxes(app))
    assert shapes == ["box", "circle"]
    # Select the box (click inside it), then Delete; U brings it back.
    page.mouse.click(centre[0] - 20, centre[1] - 20)
    page.wait_for_function("() => window.boxesPage.selected !== null")
    page.keyboard.press("Delete")
    page.wait_for_function("() => window.boxesPage.boxes.size === 1")
    assert len(_boxes(app)) == 1
    page.keyboard.press("u")
    page.wait_for_function("() => window.boxesPage.boxes.size === 2")
    assert sorted(shape for shape, *_ in _boxes(app)) == ["box", "circle"]
    assert page.script_errors == []
    page.keyboard.press("d")
    page.wait_for_url(f"{live_server}/projects/{project_id}/observations/{observation_id}")
    with app.app_context():
        assert db.session.scalar(select(TileDone.user_id)) == users["lee"]


def test_a_proposal_is_taken_with_a(app, live_server, browser, users):
    with app.app_context():
        observation_id, tiles = make_observation(width=300, height=200, tile_size=300)
        project_id = db.session.get(Observation, observation_id).project_id
        db.session.add(Box(observation_id=observation_id, user_id=None, x_min=200, y_min=100,
                           x_max=240, y_max=140, source="proposal"))
        db.session.commit()
    page = log_in(browser, live_server, "liu")
    page.set_viewport_size({"width": 1200, "height": 900})
    page.goto(f"{live_server}/projects/{project_id}/observations/{observation_id}/tiles/{tiles[0]}/label")
    page.wait_for_selector("#tile-labeling[data-ready='1']")
    assert page.inner_text("#proposal-count") == "1"
    assert page.locator("#tile-viewer g.a9s-annotation.proposal").count() == 1
    inside = page.evaluate(
        "() => { const p = window.boxesPage.viewer.viewport.imageToViewerElementCoordinates("
        "new OpenSeadragon.Point(220, 120)); return [p.x, p.y]; }")
    viewer = page.locator("#tile-viewer").bounding_box()
    page.mouse.click(viewer["x"] + inside[0], viewer["y"] + inside[1])
    page.wait_for_function("() => window.boxesPage.selected && window.boxesPage.selected.kind === 'proposal'")
    page.keyboard.press("a")
    page.wait_for_function("() => window.boxesPage.boxes.size === 1")
    with app.app_context():
        taken = db.session.scalar(select(Box).where(Box.user_id == users["liu"]))
        assert (taken.x_min, taken.y_max, taken.source) == (200, 140, "drawn")
    assert page.script_errors == []
