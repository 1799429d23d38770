"""The issue's first "done when", in Chromium: an admin imports the shared HiRISE browse image
with its PDS3 label and sees it in the viewer; two labelers draw boxes on the same tile; the
merge makes landmarks of them, whose crops become images of the project, labeled by the two
labelers and predicted by the serving model; the observation page shows them coloured by
class with per-class toggles, the confidence slider and counts per class, and a click gives a
landmark's latitude and longitude. Runs on SQLite, and on PostgreSQL with
SUPERVISING_UI_TEST_DATABASE_URL; skips without ../shared/data/observations.

The project's classes are the learning-loop tests' ("bright", "dark"), so that a quick model
trained on their generated images serves before the crops arrive and predicts them like any
new image (the classify job the import path queues); the labelers mark dark spots "dark".
"""
import pytest
from sqlalchemy import select

from supervising_ui.extensions import db
from supervising_ui.learning import triggers
from supervising_ui.models import (
    Image,
    Label,
    Landmark,
    ModelVersion,
    Observation,
    Prediction,
    Project,
)

from ..browser import BROWSER_TEST, log_in
from ..helpers import add_labels, make_stored_project
from ..observations.helpers import BROWSE, PDS3_LABEL, require_hirise_observation

pytestmark = BROWSER_TEST

# Two landmarks inside the image's footprint on its first tile (observation pixels); the
# second labeler's boxes are a few pixels off, as two people's are.
MARKS = ((400, 500, 460, 560), (700, 700, 760, 760))
OFFSET = {"lee": 0, "liu": 4}
# The latitude bounds of the PDS3 label (MINIMUM_LATITUDE, MAXIMUM_LATITUDE).
LATITUDES = (16.9531, 17.1005)


@pytest.fixture
def trained_project(app, users, embedding_cache):
    """A project whose quick model serves (32 generated images, 24 labeled); its id."""
    require_hirise_observation()
    pytest.importorskip("supervising_ui.landmarks.crops",
                        reason="landmarks.crops (the crop rule) is not in this checkout yet")
    app.config["CACHE_DIR"] = embedding_cache
    with app.app_context():
        project_id = make_stored_project(app, name="hirise-landmarks")
        add_labels(project_id, users["lee"], 24)
        job = triggers.request_retrain(db.session.get(Project, project_id))
        assert job.state == "done", job.error
        return project_id


def _screen_point(page, x: float, y: float) -> tuple[float, float]:
    """Where observation pixel (x, y) lies on the tile page's screen."""
    picture = page.evaluate("() => JSON.parse(document.getElementById('tile-labeling').dataset.picture)")
    inside = page.evaluate(
        "([x, y]) => { const p = window.boxesPage.viewer.viewport.imageToViewerElementCoordinates("
        "new OpenSeadragon.Point(x, y)); return [p.x, p.y]; }", [x - picture["x"], y - picture["y"]])
    viewer = page.locator("#tile-viewer").bounding_box()
    return viewer["x"] + inside[0], viewer["y"] + inside[1]


def _mark_first_tile(browser, live_server, project_id, observation_id, name):
    """As labeler name: take the next tile, draw the two boxes as "dark", then Done."""
    page = log_in(browser, live_server, name)
    page.set_viewport_size({"width": 1280, "height": 1000})
    page.goto(f"{live_server}/projects/{project_id}/observations/{observation_id}")
    page.click("#next-tile")
    page.wait_for_selector("#tile-labeling[data-ready='1']")
    page.keyboard.press("2")  # dark
    for count, (x_min, y_min, x_max, y_max) in enumerate(MARKS, start=1):
        shift = OFFSET[name]
        start = _screen_point(page, x_min + shift, y_min + shift)
        end = _screen_point(page, x_max + shift, y_max + shift)
        page.keyboard.down("Shift")
        page.mouse.move(*start)
        page.mouse.down()
        page.mouse.move(*end, steps=6)
        page.mouse.up()
        page.keyboard.up("Shift")
        page.wait_for_function(f"() => window.boxesPage.boxes.size === {count}")
    page.wait_for_function("() => window.boxesPage.busy === 0")
    assert page.script_errors == []
    page.keyboard.press("d")
    page.wait_for_url(f"{live_server}/projects/{project_id}/observations/{observation_id}/tiles/*/label")
    page.context.close()


def test_import_draw_merge_crop_predict_and_overlay(app, users, live_server, browser,
                                                     trained_project):
    project_id = trained_project  # (the fixture skips without ../shared or landmarks.crops)
    admin = log_in(browser, live_server, "ada")
    admin.goto(f"{live_server}/projects/{project_id}/observations")
    admin.fill("#observation-import input[name=name]", "ESP_072719_1970")
    admin.set_input_files("#observation-import input[name=image]", str(BROWSE))
    admin.set_input_files("#observation-import input[name=label]", str(PDS3_LABEL))
    admin.click("#observation-import button[type=submit]")
    admin.wait_for_selector("#observation-list >> text=ESP_072719_1970")
    with app.app_context():
        observation_id = db.session.scalar(select(Observation.id))
    admin.click("#observation-list a >> text=ESP_072719_1970")
    admin.wait_for_function("() => window.observationPage && window.observationPage.ready")
    admin.wait_for_function("() => window.observationPage.viewer.world.getItemAt(0)"
                            " && window.observationPage.viewer.world.getItemAt(0).getFullyLoaded()")

    for name in ("lee", "liu"):
        _mark_first_tile(browser, live_server, project_id, observation_id, name)

    with app.app_context():
        landmarks = db.session.scalars(select(Landmark).order_by(Landmark.x_min)).all()
        # Each landmark is the mean of the two labelers' boxes (drawn on screen: within a pixel).
        assert [mark.votes for mark in landmarks] == [2, 2]
        assert [mark.x_min for mark in landmarks] == pytest.approx([402, 702], abs=2)
        crops = [mark.image_id for mark in landmarks]
        assert None not in crops
        assert {image.width for image in db.session.scalars(
            select(Image).where(Image.id.in_(crops)))} == {227}
        labels = db.session.execute(select(Label.image_id, Label.user_id)
                                    .where(Label.image_id.in_(crops))).all()
        assert sorted(labels) == sorted((crop, users[name]) for crop in crops
                                        for name in ("lee", "liu"))
        serving = db.session.scalar(select(ModelVersion.id).where(ModelVersion.is_serving))
        predicted = set(db.session.scalars(select(Prediction.image_id).where(
            Prediction.model_version_id == serving, Prediction.image_id.in_(crops))))
        assert predicted == set(crops)

    # The overlay: both landmarks, "dark" by their labels, toggles, slider and counts.
    admin.reload()
    admin.wait_for_function("() => window.observationPage && window.observationPage.ready")
    admin.wait_for_function("() => document.querySelectorAll('.landmark-box').length === 2")
    assert "dark: 2" in admin.inner_text("#class-toggles")
    assert admin.inner_text("#landmark-count") == "2 of 2 landmarks shown"
    admin.fill("#confidence", "0.99")
    admin.dispatch_event("#confidence", "input")
    assert admin.inner_text("#landmark-count") == "2 of 2 landmarks shown"  # labeled: always
    admin.uncheck("#class-toggles input[data-class-name=dark]")
    assert admin.inner_text("#landmark-count") == "0 of 2 landmarks shown"
    admin.check("#class-toggles input[data-class-name=dark]")
    box = admin.locator(".landmark-box[data-landmark-id]").first.bounding_box()
    admin.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    admin.wait_for_selector("#landmark-info:not([hidden])")
    details = admin.inner_text("#landmark-details")
    latitude = float(details.split("; ")[-1].split("°")[0])
    assert LATITUDES[0] < latitude < LATITUDES[1] and "° E" in details

    # The reviewer's page shows the crops and the model's predictions.
    admin.click("text=Review the landmarks")
    admin.wait_for_url(f"{live_server}/projects/{project_id}/observations/{observation_id}/landmarks/review")
    assert admin.locator("#landmark-review img").count() == 2
    assert admin.locator("#landmark-review td >> text=%").count() == 2
    assert admin.script_errors == []
    admin.context.close()
