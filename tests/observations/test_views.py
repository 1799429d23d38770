"""The observation pages and API over HTTP: the admin's upload, the viewer page, deep-zoom
tiles by id (with cache headers; numbers out of range are 404s), lat/lon, the next tile,
the overlay and the counts per observation; who may see and do what."""
import io

import pytest

from supervising_ui.extensions import db
from supervising_ui.models import Landmark, Observation
from supervising_ui.observations import files
from supervising_ui.observations.service import import_observation
from tests.helpers import add_serving_model, add_stored_images, make_project, project_of

from .helpers import (
    BROWSE,
    BROWSE_SIZE,
    PDS3_LABEL,
    require_hirise_observation,
    synthetic_image,
)


def json_headers(auth):
    """Headers of a JSON call with the session's CSRF token."""
    return {"X-CSRFToken": auth.csrf_token, "Accept": "application/json"}


@pytest.fixture
def scene(app, tmp_path):
    """A project 'craters' with one ready 1300 x 900 observation 'scene': (project id, obs id)."""
    image = synthetic_image(tmp_path / "scene.png", size=(1300, 900))
    with app.app_context():
        project_id = make_project("craters", classes=["crater", "other"])
        observation, _job = import_observation(project_of(project_id), "scene", image)
        return project_id, observation.id


def test_admin_uploads_an_observation_with_its_label(app, client, auth):
    require_hirise_observation()
    with app.app_context():
        project_id = make_project("hirise", classes=["crater", "other"])
    auth.login("ada")
    response = client.post(
        f"/admin/projects/{project_id}/observations/import", headers=json_headers(auth),
        data={"name": "ESP_072719_1970", "image": (io.BytesIO(BROWSE.read_bytes()), BROWSE.name),
              "label": (io.BytesIO(PDS3_LABEL.read_bytes()), PDS3_LABEL.name)})
    assert response.status_code == 202, response.get_json()
    observation_id = response.get_json()["observation_id"]
    data = client.get(f"/api/observations/{observation_id}").get_json()
    assert (data["width"], data["height"]) == BROWSE_SIZE and data["status"] == "ready"
    assert data["meters_per_pixel"] == pytest.approx(2.9112, abs=1e-3)
    north, west = data["corners"]["top_left"]
    assert north == pytest.approx(17.100472, abs=1e-5) and west == pytest.approx(246.352857, abs=1e-5)
    where = client.get(f"/api/observations/{observation_id}/latlon?x=1024&y=1499.5").get_json()
    assert where["latitude"] == pytest.approx((17.100472429291 + 16.953105677678) / 2, abs=1e-5)
    assert client.get(f"/api/observations/{observation_id}/latlon?x=-3&y=0").status_code == 400
    page = client.get(f"/projects/{project_id}/observations/{observation_id}")
    assert page.status_code == 200 and b"observation.js" in page.data
    listing = client.get(f"/projects/{project_id}/observations").get_data(as_text=True)
    assert "ESP_072719_1970" in listing and "2.911 m/pixel" in listing
    links = f'href="/projects/{project_id}/observations"'
    assert links in client.get("/").get_data(as_text=True)
    assert links in client.get(f"/admin/projects/{project_id}").get_data(as_text=True)


def test_a_bad_upload_is_refused_with_a_message_and_labelers_may_not_upload(app, client, auth,
                                                                            scene):
    project_id, _observation_id = scene
    auth.login("ada")
    bad = client.post(f"/admin/projects/{project_id}/observations/import",
                      headers=json_headers(auth),
                      data={"name": "junk", "image": (io.BytesIO(b"junk"), "junk.png")})
    assert bad.status_code == 400 and "not an image" in bad.get_json()["error"]
    none = client.post(f"/admin/projects/{project_id}/observations/import",
                       headers=json_headers(auth), data={"name": "x"})
    assert none.status_code == 400 and "choose an image" in none.get_json()["error"]
    no_token = client.post(f"/admin/projects/{project_id}/observations/import",
                           headers={"Accept": "application/json"},
                           data={"name": "x", "image": (io.BytesIO(b"junk"), "junk.png")})
    assert no_token.status_code == 400  # CSRF
    auth.logout()
    auth.login("lee")
    assert client.post(f"/admin/projects/{project_id}/observations/import",
                       headers=json_headers(auth), data={"name": "x"}).status_code == 403
    with app.app_context():
        assert db.session.query(Observation).count() == 1


def test_deep_zoom_descriptor_and_tiles_by_id(client, auth, scene):
    _project_id, observation_id = scene
    auth.login("lee")
    descriptor = client.get(f"/api/observations/{observation_id}/deepzoom.dzi")
    assert descriptor.status_code == 200 and b'Width="1300"' in descriptor.data
    top = files.deepzoom_levels(1300, 900) - 1
    assert client.get(f"/api/observations/{observation_id}/deepzoom_files/0/0_0.jpg") \
        .status_code == 200
    tile = client.get(f"/api/observations/{observation_id}/deepzoom_files/{top}/1_2.jpg")
    assert tile.status_code == 200 and tile.mimetype == "image/jpeg"
    assert "max-age=604800" in tile.headers["Cache-Control"]
    assert "private" in tile.headers["Cache-Control"]
    assert tile.headers.get("ETag")
    again = client.get(f"/api/observations/{observation_id}/deepzoom_files/{top}/1_2.jpg",
                       headers={"If-None-Match": tile.headers["ETag"]})
    assert again.status_code == 304
    for level, column, row in ((top + 1, 0, 0), (top, 6, 0), (top, 0, 4), (0, 1, 0),
                               (-1, 0, 0), (top, -1, 0)):
        assert client.get(f"/api/observations/{observation_id}/deepzoom_files/"
                          f"{level}/{column}_{row}.jpg").status_code == 404
    assert client.get(f"/api/observations/{observation_id}/deepzoom_files/"
                      f"{top}/..%2f1_2.jpg").status_code == 404
    assert client.get(f"/api/observations/{observation_id + 1}/deepzoom.dzi").status_code == 404


def test_a_members_only_project_hides_its_observations(app, client, auth, scene):
    project_id, observation_id = scene
    with app.app_context():
        project_of(project_id).members_only = True
        db.session.commit()
    auth.login("lee")
    assert client.get(f"/projects/{project_id}/observations/{observation_id}").status_code == 404
    assert client.get(f"/api/observations/{observation_id}/deepzoom.dzi").status_code == 404
    assert client.get(f"/api/observations/{observation_id}/overlay").status_code == 404


def test_next_tile_leases_and_opens_the_tile_page(client, auth, scene):
    project_id, observation_id = scene
    auth.login("lee")
    response = client.post(f"/projects/{project_id}/observations/{observation_id}/next",
                           headers=json_headers(auth))
    tile = response.get_json()["tile"]
    assert (tile["x"], tile["y"]) == (0, 0)
    assert tile["url"] == f"/projects/{project_id}/observations/{observation_id}/tiles/" \
                          f"{tile['id']}/label"
    states = client.get(f"/api/observations/{observation_id}").get_json()["tiles"]
    assert [state["leases"] for state in states] == [1, 0]
    form = client.post(f"/projects/{project_id}/observations/{observation_id}/next",
                       data={"csrf_token": auth.csrf_token})
    assert form.status_code == 302 and form.headers["Location"].endswith(tile["url"])


def test_overlay_classes_confidence_latlon_and_counts(app, client, auth, scene):
    project_id, observation_id = scene
    with app.app_context():
        crater, other = (label_class.id for label_class in project_of(project_id).classes)
        crops = add_stored_images(app, project_id, 2)
        add_serving_model(project_id, {crops[0]: [0.3, 0.7], crops[1]: [0.9, 0.1]})
        db.session.add_all([
            Landmark(observation_id=observation_id, x_min=360, y_min=260, x_max=440, y_max=340,
                     label_class_id=crater, votes=2, annotators="2,3", image_id=crops[0]),
            Landmark(observation_id=observation_id, x_min=10, y_min=10, x_max=30, y_max=30,
                     label_class_id=crater, votes=1, annotators="2", image_id=crops[1]),
            Landmark(observation_id=observation_id, x_min=50, y_min=50, x_max=70, y_max=70,
                     label_class_id=crater, votes=2, annotators="2,3"),
            Landmark(observation_id=observation_id, x_min=90, y_min=90, x_max=99, y_max=99,
                     label_class_id=crater, votes=1, annotators="2", status="rejected")])
        db.session.commit()
    auth.login("lee")
    data = client.get(f"/api/observations/{observation_id}/overlay").get_json()
    by_source = {row["class_source"]: row for row in data["landmarks"]}
    assert len(data["landmarks"]) == 3  # the rejected one is left out
    assert by_source["prediction"]["class"] in ("other", "crater")
    assert {row["class"] for row in data["landmarks"]} == {"other", "crater"}
    assert data["counts"] == {"crater": 2, "other": 1}
    predicted = [row for row in data["landmarks"] if row["class_source"] == "prediction"]
    assert sorted(row["confidence"] for row in predicted) == pytest.approx([0.7, 0.9])
    assert by_source["boxes"]["latitude"] is None  # no label: no lat/lon
    listing = client.get(f"/projects/{project_id}/observations").get_data(as_text=True)
    assert 'class="landmark-total">3<' in listing and "crater 2, other 1" in listing


def test_size_frequency_numbers_from_the_label_scale(app, client, auth):
    pytest.importorskip("supervising_ui.landmarks.sfd")
    require_hirise_observation()
    with app.app_context():
        project_id = make_project("hirise", classes=["crater", "other"])
        observation, _job = import_observation(project_of(project_id), "browse", BROWSE,
                                               PDS3_LABEL)
        crater = project_of(project_id).classes[0].id
        for index, side in enumerate((10, 20, 40)):
            db.session.add(Landmark(observation_id=observation.id, x_min=900 + index * 50,
                                    y_min=1400, x_max=900 + index * 50 + side,
                                    y_max=1400 + side, label_class_id=crater, votes=2))
        db.session.commit()
        observation_id = observation.id
    auth.login("lee")
    data = client.get(f"/api/observations/{observation_id}/sfd?class=crater").get_json()
    assert data["count"] == 3
    # The footprint: the browse image without its black borders, at 2.911 m a pixel.
    full = BROWSE_SIZE[0] * BROWSE_SIZE[1] * 2.9112 ** 2 / 1e6
    assert 0.3 * full < data["area_km2"] < full
    assert data["diameters_m"][0] == pytest.approx(40 * 2.9112, rel=1e-3)
    assert data["cumulative_per_km2"][-1] == pytest.approx(3 / data["area_km2"], rel=1e-6)


def test_admin_sets_labelers_per_tile_and_minimum_votes(app, client, auth, scene):
    project_id, _observation_id = scene
    auth.login("ada")
    url = f"/admin/projects/{project_id}/observations/settings"
    saved = client.post(url, data={"csrf_token": auth.csrf_token, "labelers_per_tile": "3",
                                   "landmark_min_votes": "2"}, follow_redirects=True)
    assert "Observation settings saved" in saved.get_data(as_text=True)
    refused = client.post(url, data={"csrf_token": auth.csrf_token, "labelers_per_tile": "0",
                                     "landmark_min_votes": ""}, follow_redirects=True)
    assert "labelers per tile must be between 1 and 20" in refused.get_data(as_text=True)
    with app.app_context():
        project = project_of(project_id)
        assert (project.labelers_per_tile, project.landmark_min_votes) == (3, 2)
    client.post(url, data={"csrf_token": auth.csrf_token, "labelers_per_tile": "1",
                           "landmark_min_votes": ""})
    with app.app_context():
        assert project_of(project_id).landmark_min_votes is None
    auth.logout()
    auth.login("lee")
    assert client.post(url, data={"csrf_token": auth.csrf_token,
                                  "labelers_per_tile": "5"}).status_code == 403
