"""Playwright smoke test of the observation viewer: an admin uploads the HiRISE browse image
with its PDS3 label through the form, the viewer loads its deep-zoom tiles, the overlay
shows a landmark coloured by class with toggles, slider and counts, and a click tells the
landmark's latitude and longitude."""
from supervising_ui.extensions import db
from supervising_ui.models import Landmark, Observation
from tests.browser import BROWSER_TEST, log_in
from tests.helpers import add_serving_model, add_stored_images, make_project, project_of

from .helpers import BROWSE, PDS3_LABEL, require_hirise_observation

pytestmark = BROWSER_TEST


def test_upload_then_view_with_overlay_and_latlon(app, users, live_server, browser):
    require_hirise_observation()
    with app.app_context():
        project_id = make_project("hirise", classes=["crater", "other"])
    page = log_in(browser, live_server, "ada")
    page.goto(f"{live_server}/projects/{project_id}/observations")
    page.fill("#observation-import input[name=name]", "ESP_072719_1970")
    page.set_input_files("#observation-import input[name=image]", str(BROWSE))
    page.set_input_files("#observation-import input[name=label]", str(PDS3_LABEL))
    page.click("#observation-import button[type=submit]")
    page.wait_for_selector("#observation-list >> text=ESP_072719_1970")
    assert "2.911 m/pixel" in page.inner_text("#observation-list")
    with app.app_context():
        observation = db.session.query(Observation).one()
        assert observation.status == "ready"
        crater = project_of(project_id).classes[0].id
        crop = add_stored_images(app, project_id, 1)[0]
        add_serving_model(project_id, {crop: [0.2, 0.8]})  # predicted "other", 0.8 sure
        db.session.add_all([
            Landmark(observation_id=observation.id, x_min=900, y_min=1400, x_max=1100,
                     y_max=1600, label_class_id=crater, votes=2, annotators="2,3", image_id=crop),
            Landmark(observation_id=observation.id, x_min=300, y_min=300, x_max=400,
                     y_max=400, label_class_id=crater, votes=2, annotators="2,3")])
        db.session.commit()
        observation_id = observation.id
    tiles = []
    page.on("response", lambda response: tiles.append(response.status)
            if "/deepzoom_files/" in response.url else None)
    page.click("#observation-list a >> text=ESP_072719_1970")
    page.wait_for_function("() => window.observationPage && window.observationPage.ready")
    page.wait_for_function("() => window.observationPage.viewer.world.getItemAt(0)"
                           " && window.observationPage.viewer.world.getItemAt(0).getFullyLoaded()")
    assert tiles and set(tiles) == {200}
    assert page.script_errors == []
    links = page.locator("#tile-list a")
    assert links.count() == 2 * 3  # 1024-pixel work units of 2048 x 2999
    assert links.first.get_attribute("href").startswith(
        f"/projects/{project_id}/observations/{observation_id}/tiles/")
    assert page.locator(".landmark-box").count() == 2
    assert "other: 1" in page.inner_text("#class-toggles")
    assert "crater: 1" in page.inner_text("#class-toggles")
    assert page.inner_text("#landmark-count") == "2 of 2 landmarks shown"
    # The slider hides the prediction below its confidence; labels without one stay.
    page.fill("#confidence", "0.9")
    page.dispatch_event("#confidence", "input")
    assert page.inner_text("#landmark-count") == "1 of 2 landmarks shown"
    page.fill("#confidence", "0")
    page.dispatch_event("#confidence", "input")
    page.uncheck("#class-toggles input[data-class-name=crater]")
    assert page.inner_text("#landmark-count") == "1 of 2 landmarks shown"
    # A click on the predicted landmark shows its crop, class and latitude/longitude.
    box = page.locator(".landmark-box[data-landmark-id]").first.bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_selector("#landmark-info:not([hidden])")
    details = page.inner_text("#landmark-details")
    assert "other (prediction, 80% sure)" in details
    assert "° N" in details and "° E" in details
    latitude = float(details.split("; ")[-1].split("°")[0])
    assert 16.9531 < latitude < 17.1005
    assert page.get_attribute("#landmark-crop", "src").endswith(f"/api/images/{crop}/thumbnail")
    page.context.close()


def test_a_page_of_an_observation_not_ready_says_so(app, users, live_server, browser):
    with app.app_context():
        project_id = make_project("hirise", classes=["crater"])
        observation = Observation(project_id=project_id, name="waiting", image_key="x",
                                  width=10, height=10, status="queued")
        db.session.add(observation)
        db.session.commit()
        observation_id = observation.id
    page = log_in(browser, live_server, "lee")
    page.goto(f"{live_server}/projects/{project_id}/observations/{observation_id}")
    assert "being made" in page.inner_text("#observation-waiting")
    assert page.script_errors == []
    page.context.close()
