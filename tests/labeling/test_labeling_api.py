"""The labeling page and JSON API: sessions with CSRF, tokens, images by id, suggestions."""
import threading
import uuid

import pytest
from sqlalchemy import func, select

from supervising_ui.accounts import membership
from supervising_ui.accounts.users import create_api_token, revoke_api_tokens
from supervising_ui.extensions import db
from supervising_ui.labeling import suggestions, views
from supervising_ui.models import Image, Label, Project, User

from ..helpers import (
    add_images,
    add_serving_model,
    add_stored_images,
    jpeg_bytes,
    make_project,
)


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def token_for(app, user_id):
    with app.app_context():
        return create_api_token(db.session.get(User, user_id))


def test_labeling_page_shows_classes_with_their_keys(app, client, auth):
    with app.app_context():
        project_id = make_project(classes=[f"class{i}" for i in range(12)])
    auth.login("lee")
    page = client.get(f"/projects/{project_id}/label").get_data(as_text=True)
    assert "label.js" in page and 'name="csrf-token"' in page
    assert "<kbd>1</kbd><span>class0</span>" in page
    assert "<kbd>a</kbd><span>class9</span>" in page and "<kbd>c</kbd><span>class11</span>" in page
    assert client.get("/projects/999/label").status_code == 404
    assert views.class_keys(["x"] * 40)[9:13] == [
        {"name": "x", "key": "a"}, {"name": "x", "key": "b"}, {"name": "x", "key": "c"},
        {"name": "x", "key": "d"}], "l, n, s and u are action keys"
    assert not {"l", "n", "s", "u"} & set(views.CLASS_KEYS)


def test_home_page_links_to_labeling(app, client, auth):
    with app.app_context():
        project_id = make_project()
    auth.login("lee")
    assert f'/projects/{project_id}/label"' in client.get("/").get_data(as_text=True)


def test_session_flow_next_submit_repeat_and_csrf(app, client, auth):
    with app.app_context():
        project_id = make_project()
        [image_id] = add_images(project_id, 1, meta={"sol": 12})
    auth.login("lee")
    given = client.get(f"/api/projects/{project_id}/next").get_json()
    assert given["image_id"] == image_id and given["image_url"] == f"/api/images/{image_id}/file"
    assert given["filename"] == "img_00000.jpg" and given["metadata"]["sol"] == 12
    assert given["lease_expires_at"].endswith("Z") and given["suggestion"] is None
    assert given["pick"] == "random"
    decision = {"label": "crater", "request_id": str(uuid.uuid4()), "seconds_spent": 2.5}
    url = f"/api/images/{image_id}/labels"
    assert client.post(url, json=decision).status_code == 400, "CSRF header required"
    headers = {"X-CSRFToken": auth.csrf_token}
    first = client.post(url, json=decision, headers=headers)
    assert first.status_code == 201
    assert first.get_json()["label"] == "crater" and first.get_json()["seconds_spent"] == 2.5
    again = client.post(url, json=decision, headers=headers)
    assert again.status_code == 200 and again.get_json()["id"] == first.get_json()["id"]
    other = client.post(url, json={"label": "other", "request_id": "new"}, headers=headers)
    assert other.status_code == 409 and "already labeled" in other.get_json()["error"]
    assert client.get(f"/api/projects/{project_id}/next").status_code == 204
    with app.app_context():
        assert db.session.scalar(select(func.count(Label.id))) == 1


def test_bad_submissions_get_clear_errors(app, client, auth):
    with app.app_context():
        project_id = make_project()
        [image_id] = add_images(project_id, 1)
    auth.login("lee")
    headers = {"X-CSRFToken": auth.csrf_token}
    url = f"/api/images/{image_id}/labels"
    unknown = client.post(url, json={"label": "volcano", "request_id": "a"}, headers=headers)
    assert unknown.status_code == 400
    assert unknown.get_json()["error"] == \
        "unknown class 'volcano': use one of crater, dark_dune, other"
    huge = client.post(url, json={"label": "v" * 500_000, "request_id": "h"}, headers=headers)
    assert huge.status_code == 400 and len(huge.get_json()["error"]) < 200  # a prefix, not all
    not_json = client.post(url, data="label=crater", headers=headers)
    assert not_json.status_code == 400 and "JSON object" in not_json.get_json()["error"]
    no_id = client.post(url, json={"label": "crater"}, headers=headers)
    assert no_id.status_code == 400 and "request_id is required" in no_id.get_json()["error"]
    missing = client.post("/api/images/999/labels", json={"label": "crater", "request_id": "b"},
                          headers=headers)
    assert missing.status_code == 404
    huge = client.post(url, json={"label": "crater", "request_id": "c", "seconds_spent": 1e9},
                       headers=headers)
    assert huge.status_code == 201 and huge.get_json()["seconds_spent"] == 3600.0


def test_api_token_from_the_console_works_without_csrf(app, client, runner, users):
    with app.app_context():
        project_id = make_project()
        add_images(project_id, 2)
    result = runner.invoke(args=["create-token", "liu"])
    assert result.exit_code == 0, result.output
    token = result.output.strip()
    listed = client.get("/api/projects", headers=bearer(token)).get_json()["projects"]
    assert [(p["id"], p["classes"]) for p in listed] == \
        [(project_id, ["crater", "dark_dune", "other"])]
    given = client.get(f"/api/projects/{project_id}/next", headers=bearer(token)).get_json()
    stored = client.post(f"/api/images/{given['image_id']}/labels", headers=bearer(token),
                         json={"label": "other", "request_id": "r1"})
    assert stored.status_code == 201
    assert client.get(f"/api/projects/{project_id}/next",
                      headers=bearer("wrong")).status_code == 401
    with app.app_context():
        revoke_api_tokens(db.session.get(User, users["liu"]))
    for method, url in (("GET", f"/api/projects/{project_id}/next"),
                        ("POST", f"/api/images/{given['image_id']}/later"),
                        ("GET", f"/api/images/{given['image_id']}/file")):
        assert client.open(url, method=method, headers=bearer(token)).status_code == 401
    assert runner.invoke(args=["create-token", "nobody"]).exit_code == 1


def test_images_are_served_by_id_only_with_caching_headers(app, client, auth):
    with app.app_context():
        project_id = make_project()
        [image_id] = add_stored_images(app, project_id, 1)
    auth.login("lee")
    response = client.get(f"/api/images/{image_id}/file")
    assert response.status_code == 200 and response.mimetype == "image/jpeg"
    assert response.data == jpeg_bytes(1000 * project_id)
    assert "private" in response.headers["Cache-Control"]
    assert "immutable" in response.headers["Cache-Control"]
    etag = response.headers["ETag"]
    assert client.get(f"/api/images/{image_id}/file",
                      headers={"If-None-Match": etag}).status_code == 304
    for url in ("/api/images/999/file", "/api/images/../../etc/passwd/file",
                "/api/images/%2e%2e%2fsecret/file", "/api/images/abc/file",
                "/api/images/-1/file"):
        assert client.get(url).status_code == 404, url
    # A query string naming a path changes nothing: the file comes from the row's key.
    assert client.get(f"/api/images/{image_id}/file?path=/etc/passwd").data == response.data


def test_missing_or_malformed_stored_file_is_a_404_not_a_crash(app, client, auth):
    with app.app_context():
        project_id = make_project()
        [listed] = add_images(project_id, 1)  # a row whose file was never stored
        image = db.session.get(Image, listed)
        bad = Image(project_id=project_id, storage_key="../../etc/passwd", original_name="x",
                    content_hash="f" * 64, width=1, height=1)
        db.session.add(bad)
        db.session.commit()
        bad_id, listed_id = bad.id, image.id
    auth.login("lee")
    for image_id in (listed_id, bad_id):
        response = client.get(f"/api/images/{image_id}/file")
        assert response.status_code == 404
        assert response.get_json()["error"] == f"image {image_id} has no stored file"


def test_projects_without_access_are_refused(app, client, auth):
    with app.app_context():
        open_id = make_project("open")
        closed_id = make_project("closed")
        [closed_image] = add_stored_images(app, closed_id, 1)
        add_images(open_id, 1)
        # Members only, and lee is not a member (tests/test_membership.py covers the rest).
        membership.change_members(db.session.get(Project, closed_id), members_only=True)
    auth.login("lee")
    headers = {"X-CSRFToken": auth.csrf_token}
    assert client.get(f"/api/images/{closed_image}/file").status_code == 404
    assert client.get(f"/api/projects/{closed_id}/next").status_code == 404
    assert client.post(f"/api/images/{closed_image}/labels", headers=headers,
                       json={"label": "crater", "request_id": "x"}).status_code == 404
    assert client.post(f"/api/images/{closed_image}/later", headers=headers).status_code == 404
    assert client.get(f"/projects/{closed_id}/label").status_code == 404
    assert [p["id"] for p in client.get("/api/projects").get_json()["projects"]] == [open_id]
    assert client.get(f"/api/projects/{open_id}/next").status_code == 200


def test_double_click_stores_one_label(app, users):
    """Two simultaneous submits of the same decision (same request_id) store one label."""
    with app.app_context():
        project_id = make_project(labels_per_image=3)
        [image_id] = add_images(project_id, 1)
    token = token_for(app, users["lee"])
    barrier, statuses, bodies = threading.Barrier(4), [], []

    def press():
        client = app.test_client()
        barrier.wait()
        response = client.post(f"/api/images/{image_id}/labels", headers=bearer(token),
                               json={"label": "crater", "request_id": "same-click"})
        statuses.append(response.status_code)
        bodies.append(response.get_json())

    threads = [threading.Thread(target=press) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
        assert not thread.is_alive()
    assert sorted(statuses) == [200, 200, 200, 201], bodies
    assert len({body["id"] for body in bodies}) == 1
    with app.app_context():
        assert db.session.scalar(select(func.count(Label.id))) == 1
        assert db.session.get(Image, image_id).label_count == 1


def test_later_and_undo_over_the_api(app, client, auth):
    with app.app_context():
        project_id = make_project()
        ids = add_images(project_id, 3)
    auth.login("lee")
    headers = {"X-CSRFToken": auth.csrf_token}
    first = client.get(f"/api/projects/{project_id}/next").get_json()["image_id"]
    assert client.post(f"/api/images/{first}/later", headers=headers).get_json() == \
        {"image_id": first, "put_off": True, "unsure": False}
    second = client.get(f"/api/projects/{project_id}/next").get_json()["image_id"]
    assert second != first
    client.post(f"/api/images/{second}/labels", headers=headers,
                json={"label": "dark_dune", "request_id": "d1"})
    undone = client.post(f"/api/projects/{project_id}/undo", headers=headers).get_json()
    assert (undone["image_id"], undone["previous_label"], undone["pick"]) == \
        (second, "dark_dune", "undo")
    assert client.get(f"/api/projects/{project_id}/next").get_json()["image_id"] == second
    relabeled = client.post(f"/api/images/{second}/labels", headers=headers,
                            json={"label": "crater", "request_id": "d2"})
    assert relabeled.status_code == 201
    progress = client.get(f"/api/projects/{project_id}/progress").get_json()
    assert progress == {"mine_today": 1, "mine_total": 1, "done": 1, "total": 3,
                        "labels_per_image": 1}
    assert set(ids) >= {first, second}
    client.post(f"/api/projects/{project_id}/undo", headers=headers)
    nothing = client.post(f"/api/projects/{project_id}/undo", headers=headers)
    assert nothing.status_code == 404 and "no label" in nothing.get_json()["error"]


def test_suggestion_is_shown_and_recorded_by_the_server(app, client, auth, users):
    with app.app_context():
        project_id = make_project()
        [image_id] = add_images(project_id, 1)
        add_serving_model(project_id, {image_id: [0.2, 0.7, 0.1]}, version=3)
    auth.login("lee")
    given = client.get(f"/api/projects/{project_id}/next").get_json()
    assert given["suggestion"] == {"label": "dark_dune", "confidence": pytest.approx(0.7),
                                   "model_version": 3,
                                   "top": [["dark_dune", 0.7], ["crater", 0.2], ["other", 0.1]]}
    # Whatever the client claims, the server records what it served.
    client.post(f"/api/images/{image_id}/labels", headers={"X-CSRFToken": auth.csrf_token},
                json={"label": "crater", "request_id": "s1", "suggestion_shown": False})
    with app.app_context():
        label = db.session.scalar(select(Label))
        assert label.suggestion_shown is True
        assert label.suggested_class.name == "dark_dune"
        assert label.suggestion_confidence == pytest.approx(0.7)
        assert label.suggestion_model_version_id is not None


def test_hidden_suggestions_are_recorded_as_not_shown(app, client, auth):
    with app.app_context():
        project_id = make_project(hide_suggestion_share=1.0)
        [image_id] = add_images(project_id, 1)
        add_serving_model(project_id, {image_id: [0.6, 0.3, 0.1]})
    auth.login("lee")
    assert client.get(f"/api/projects/{project_id}/next").get_json()["suggestion"] is None
    client.post(f"/api/images/{image_id}/labels", headers={"X-CSRFToken": auth.csrf_token},
                json={"label": "crater", "request_id": "h1"})
    with app.app_context():
        label = db.session.scalar(select(Label))
        assert label.suggestion_shown is False
        assert label.suggested_class.name == "crater", "the hidden prediction is kept"


def test_hidden_suggestion_fraction_is_stable_and_close_to_the_share():
    hidden = [suggestions.suggestion_hidden(image_id, 7, 0.3) for image_id in range(4000)]
    assert 0.28 < sum(hidden) / len(hidden) < 0.32
    assert hidden == [suggestions.suggestion_hidden(image_id, 7, 0.3) for image_id in range(4000)]
    other_model = [suggestions.suggestion_hidden(image_id, 8, 0.3) for image_id in range(4000)]
    assert other_model != hidden, "a new model version hides a different sample"
    assert not any(suggestions.suggestion_hidden(i, 7, 0.0) for i in range(100))
    assert all(suggestions.suggestion_hidden(i, 7, 1.0) for i in range(100))


def test_a_new_label_asks_for_a_retrain_and_a_queue_failure_never_fails_the_submit(
        app, client, auth, monkeypatch):
    from supervising_ui.learning import triggers as retraining
    with app.app_context():
        project_id = make_project()
        image_ids = add_images(project_id, 3)
    asked = []

    def broken_queue(project):
        asked.append((project.id, project.retrain_every))
        raise RuntimeError("queue storage unavailable")

    monkeypatch.setattr(retraining, "maybe_trigger_retrain", broken_queue)
    auth.login("lee")
    headers = {"X-CSRFToken": auth.csrf_token}
    decision = {"label": "crater", "request_id": str(uuid.uuid4())}
    url = f"/api/images/{image_ids[0]}/labels"
    assert client.post(url, json=decision, headers=headers).status_code == 201
    assert client.post(url, json=decision, headers=headers).status_code == 200
    assert asked == [(project_id, 0)], "asked once, for the new label only, not for the repeat"
    with app.app_context():
        assert db.session.scalar(select(func.count(Label.id))) == 1
