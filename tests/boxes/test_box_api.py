"""The box API: drawing, moving, deleting, who may change which box, Done and Later, the
tile picture, and the landmarks a merge makes of two labelers' boxes."""
from io import BytesIO

from PIL import Image
from sqlalchemy import func, select

from supervising_ui.extensions import db
from supervising_ui.models import Box, Landmark, Observation, ObservationTile, TileDone, TileLease

from ..helpers import make_project
from ..review.helpers import make_reviewer
from .helpers import box_body, make_observation


def _setup(app):
    with app.app_context():
        return make_observation()


def _post(client, auth, url, body):
    return client.post(url, json=body, headers={"X-CSRFToken": auth.csrf_token})


def test_draw_move_and_delete_own_boxes(app, client, auth):
    observation_id, tiles = _setup(app)
    auth.login("lee")
    url = f"/api/observations/{observation_id}/tiles/{tiles[0]}/boxes"
    created = _post(client, auth, url, box_body(40, 40, 80, 80, shape="circle"))
    assert created.status_code == 201, created.get_json()
    box = created.get_json()
    assert (box["shape"], box["label"], box["x_min"], box["source"]) == ("circle", "crater", 40, "drawn")
    moved = client.patch(f"/api/boxes/{box['id']}", json={"x_min": 45, "x_max": 85, "label": "other"},
                         headers={"X-CSRFToken": auth.csrf_token})
    assert moved.status_code == 200
    assert (moved.get_json()["x_min"], moved.get_json()["label"]) == (45, "other")
    listed = client.get(url).get_json()
    assert [item["id"] for item in listed["boxes"]] == [box["id"]]
    assert listed["proposals"] == []
    gone = client.delete(f"/api/boxes/{box['id']}", headers={"X-CSRFToken": auth.csrf_token})
    assert gone.status_code == 200
    assert client.get(url).get_json()["boxes"] == []


def test_bad_boxes_are_refused_with_a_reason(app, client, auth):
    observation_id, tiles = _setup(app)
    auth.login("lee")
    url = f"/api/observations/{observation_id}/tiles/{tiles[0]}/boxes"
    for body, words in ((box_body(10, 10, 20, 20, label="volcano"), "label must be one of"),
                        (box_body(10, 10, 10.5, 20), "smaller than"),
                        ({"x_min": "a"}, "corners as numbers"),
                        (box_body(200, 10, 240, 40), "outside tile"),
                        (box_body(10, 10, 20, 20, shape="star"), "shape must be")):
        answer = _post(client, auth, url, body)
        assert answer.status_code == 400 and words in answer.get_json()["error"], body
    # Clipped to the observation (300 x 200): a box past its edge keeps what lies inside.
    clipped = _post(client, auth, f"/api/observations/{observation_id}/tiles/{tiles[3]}/boxes",
                    box_body(280, 150, 330, 230)).get_json()
    assert (clipped["x_max"], clipped["y_max"]) == (300, 200)
    with app.app_context():
        assert db.session.scalar(select(func.count(Box.id))) == 1


def test_labelers_change_only_their_own_boxes(app, client, auth):
    observation_id, tiles = _setup(app)
    auth.login("lee")
    box = _post(client, auth, f"/api/observations/{observation_id}/tiles/{tiles[0]}/boxes",
                box_body(40, 40, 80, 80)).get_json()
    auth.logout()
    auth.login("liu")
    headers = {"X-CSRFToken": auth.csrf_token}
    assert client.patch(f"/api/boxes/{box['id']}", json={"x_min": 0}, headers=headers).status_code == 403
    assert client.delete(f"/api/boxes/{box['id']}", headers=headers).status_code == 403
    assert client.get(f"/api/observations/{observation_id}/tiles/{tiles[0]}/boxes").get_json()["boxes"] == []
    # No CSRF token: refused before anything is read.
    assert client.delete(f"/api/boxes/{box['id']}").status_code == 400
    with app.app_context():
        assert db.session.get(Box, box["id"]).x_min == 40


def test_missing_and_mismatched_ids_are_404(app, client, auth):
    observation_id, tiles = _setup(app)
    with app.app_context():
        _, other_tiles = make_observation(make_project("venus"), name="obs-2")
    auth.login("lee")
    assert client.get(f"/api/observations/{observation_id}/tiles/{other_tiles[0]}/boxes").status_code == 404
    assert client.get(f"/api/observations/999/tiles/{tiles[0]}/boxes").status_code == 404
    assert client.delete("/api/boxes/999", headers={"X-CSRFToken": auth.csrf_token}).status_code == 404


def test_done_and_later(app, client, auth, users):
    observation_id, tiles = _setup(app)
    for name in ("lee", "liu"):
        auth.login(name)
        answer = _post(client, auth, f"/api/observations/{observation_id}/tiles/{tiles[0]}/done", {})
        assert answer.status_code == 200
        _post(client, auth, f"/api/observations/{observation_id}/tiles/{tiles[0]}/done", {})  # twice: once
        auth.logout()
    assert answer.get_json()["done_count"] == 2
    auth.login("lee")
    assert _post(client, auth, f"/api/observations/{observation_id}/tiles/{tiles[1]}/later",
                 {}).status_code == 200
    with app.app_context():
        assert db.session.scalar(select(func.count(TileDone.id))) == 2
        assert db.session.get(ObservationTile, tiles[0]).done_count == 2
        assert db.session.scalar(select(TileLease.later).where(TileLease.tile_id == tiles[1],
                                                               TileLease.user_id == users["lee"]))


def test_tile_page_and_picture(app, client, auth):
    observation_id, tiles = _setup(app)
    auth.login("lee")
    with app.app_context():
        project_id = db.session.get(Observation, observation_id).project_id
    page = client.get(f"/projects/{project_id}/observations/{observation_id}/tiles/{tiles[1]}/label")
    assert page.status_code == 200 and b"tile-viewer" in page.data
    assert client.get(f"/projects/{project_id + 1}/observations/{observation_id}/tiles/{tiles[1]}/label").status_code == 404
    picture = client.get(f"/api/observations/{observation_id}/tiles/{tiles[1]}/picture")
    assert picture.status_code == 200 and picture.mimetype == "image/png"
    # Tile 1 is x 150-300, y 0-150; with the 64-pixel margin, clipped: x 86-300, y 0-200.
    assert Image.open(BytesIO(picture.data)).size == (214, 200)


def test_two_labelers_boxes_merge_into_a_landmark(app, client, auth):
    observation_id, tiles = _setup(app)
    for name, shift in (("lee", 0), ("liu", 3)):
        auth.login(name)
        _post(client, auth, f"/api/observations/{observation_id}/tiles/{tiles[0]}/boxes",
              box_body(45 + shift, 45, 75 + shift, 75))
        _post(client, auth, f"/api/observations/{observation_id}/tiles/{tiles[0]}/boxes",
              box_body(100 + shift * 10, 100, 110 + shift * 10, 110))  # no overlap: 1 vote each
        auth.logout()
    with app.app_context():
        # The project's minimum is DEFAULT_MIN_VOTES (2): one landmark is stored.
        stored = db.session.scalars(select(Landmark)).all()
        assert [(mark.votes, mark.x_min) for mark in stored] == [(2, 46.5)]
    auth.login("lee")
    consensus = client.get(f"/api/observations/{observation_id}/landmarks").get_json()["landmarks"]
    assert [(row["human_votes"], row["class"]) for row in consensus] == [(2, "crater")]
    ones = client.get(f"/api/observations/{observation_id}/landmarks?min_votes=1").get_json()
    assert sorted(row["human_votes"] for row in ones["landmarks"]) == [1, 1, 2]  # merged now
    assert client.get(f"/api/observations/{observation_id}/landmarks?min_votes=x").status_code == 400


def test_only_reviewers_review_landmarks(app, client, auth):
    observation_id, tiles = _setup(app)
    with app.app_context():  # one person's box makes a landmark here
        db.session.get(Observation, observation_id).project.landmark_min_votes = 1
        db.session.commit()
    auth.login("lee")
    _post(client, auth, f"/api/observations/{observation_id}/tiles/{tiles[0]}/boxes",
          box_body(45, 45, 75, 75))
    with app.app_context():
        landmark_id = db.session.scalar(select(Landmark.id))
        make_reviewer("rae")
    url = f"/api/landmarks/{landmark_id}/review"
    assert _post(client, auth, url, {"decision": "accept"}).status_code == 403
    auth.logout()
    auth.login("rae")
    assert _post(client, auth, url, {"decision": "maybe"}).status_code == 400
    assert _post(client, auth, url, {"decision": "fix"}).status_code == 400
    fixed = _post(client, auth, url, {"decision": "fix", "label": "other"})
    assert fixed.get_json() == {"id": landmark_id, "status": "fixed"}
    auth.logout()
    # A fix sticks when the merge runs again (lee moves the box a little).
    auth.login("lee")
    box_id = client.get(f"/api/observations/{observation_id}/tiles/{tiles[0]}/boxes").get_json()["boxes"][0]["id"]
    client.patch(f"/api/boxes/{box_id}", json={"x_min": 46}, headers={"X-CSRFToken": auth.csrf_token})
    with app.app_context():
        landmark = db.session.get(Landmark, landmark_id)
        assert (landmark.status, landmark.x_min) == ("fixed", 45)
    # The landmark shows with the reviewer's class.
    rows = client.get(f"/api/observations/{observation_id}/landmarks").get_json()["landmarks"]
    assert [(row["id"], row["class"]) for row in rows] == [(landmark_id, "other")]
    page = client.get(f"/projects/1/observations/{observation_id}/landmarks/review")
    assert page.status_code == 403


def test_a_members_only_project_is_404_to_others(app, client, auth, users):
    observation_id, tiles = _setup(app)
    with app.app_context():
        project = db.session.get(Observation, observation_id).project
        project.members_only = True
        db.session.commit()
        project_id = project.id
    auth.login("lee")
    base = f"/api/observations/{observation_id}/tiles/{tiles[0]}"
    assert client.get(f"{base}/boxes").status_code == 404
    assert _post(client, auth, f"{base}/boxes", box_body(40, 40, 80, 80)).status_code == 404
    assert client.get(f"{base}/picture").status_code == 404
    assert client.get(f"/api/observations/{observation_id}/landmarks").status_code == 404
    assert client.get(f"/projects/{project_id}/observations/{observation_id}/tiles/{tiles[0]}/label").status_code == 404
