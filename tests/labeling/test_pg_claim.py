"""PostgreSQL's claim (labeling/pg_claim.py): the whole pick chain is one statement, a submit
one more, and the claim runs only as far as its first step that finds an image."""
import uuid

import pytest
from sqlalchemy import event, text

from supervising_ui.accounts.users import create_api_token
from supervising_ui.extensions import db
from supervising_ui.labeling import pg_claim
from supervising_ui.models import Image, User, utcnow

from ..conftest import TEST_DATABASE_URL
from ..helpers import add_images, make_project

pytestmark = pytest.mark.skipif(not TEST_DATABASE_URL,
                                reason="PostgreSQL: set SUPERVISING_UI_TEST_DATABASE_URL")


def test_a_label_costs_its_claim_and_its_submit_statements_that_commit_alone(app, client, users):
    with app.app_context():
        project_id = make_project()
        add_images(project_id, 20)
        token = create_api_token(db.session.get(User, users["lee"]))
        engine = db.engine
    headers = {"Authorization": f"Bearer {token}"}
    client.get("/api/projects", headers=headers)  # the token is looked up and remembered
    statements, alone = [], []

    def note(connection, cursor, statement, *rest):
        statements.append(statement)
        alone.append(connection.connection.driver_connection.autocommit)
    event.listen(engine, "before_cursor_execute", note)
    given = client.get(f"/api/projects/{project_id}/next", headers=headers).get_json()
    # The project's settings (then remembered for a moment: labeling/snapshots.py), the claim.
    assert [s.split()[0] for s in statements] == ["SELECT", "WITH"], statements
    assert "FOR UPDATE SKIP LOCKED" in statements[1] and "RETURNING" in statements[1]
    assert alone == [True, True], "no BEGIN/COMMIT round trips around the settings and claim"
    statements.clear()
    alone.clear()
    # The image that next handed out is known: its file needs no query.
    assert client.get(given["image_url"], headers=headers).status_code == 404  # no file here
    assert statements == []
    response = client.post(f"/api/images/{given['image_id']}/labels", headers=headers,
                           json={"label": "crater", "request_id": str(uuid.uuid4())})
    assert response.status_code == 201
    # The count, the label and the search row in one statement that commits by itself.
    assert [s.split()[0] for s in statements] == ["WITH"], statements
    assert alone == [True]
    statements.clear()
    alone.clear()
    assert client.get(f"/api/projects/{project_id}/next", headers=headers).status_code == 200
    assert [s.split()[0] for s in statements] == ["WITH"], "the next label: its claim alone"


def test_the_claim_stops_at_the_first_step_that_finds_an_image(app, users):
    with app.app_context():
        project_id = make_project()
        add_images(project_id, 20)
        steps = (("random", "walk", False), ("put_off", "walk_put_off", False))
        statement = pg_claim._claim_statement(steps, 1, "random")
        connection = db.session.connection()
        compiled = statement.compile(connection)
        now = utcnow()
        params = compiled.construct_params({
            "in_project_id": project_id, "labels_per_image": 1, "user_id": users["lee"],
            "now": now, "expires_at": now, "exclude_image_id": -1, "batch_id": None,
            "start": 0.0, "model_version_id": None})
        driver = connection.connection.driver_connection
        plan = "\n".join(row[0] for row in driver.execute(
            "EXPLAIN (ANALYZE, COSTS OFF) " + compiled.string, params))
        db.session.rollback()  # ANALYZE ran the claim: undo it
        # From 0.0 upward the first walk finds an image: the wrapped half and the put-off
        # walks are never run, so they lock nothing.
        assert plan.count("never executed") >= 3, plan
        assert db.session.execute(text("SELECT count(*) FROM image WHERE leased_to_id IS NOT NULL")
                                  ).scalar() == 0


def test_a_refused_submit_changes_nothing_though_its_statement_commits_alone(app, client, users):
    with app.app_context():
        project_id = make_project()
        [image_id] = add_images(project_id, 1)
        token = create_api_token(db.session.get(User, users["lee"]))
    headers = {"Authorization": f"Bearer {token}"}
    given = client.get(f"/api/projects/{project_id}/next", headers=headers).get_json()
    url = f"/api/images/{given['image_id']}/labels"
    unknown = client.post(url, headers=headers, json={"label": "volcano", "request_id": "a"})
    assert unknown.status_code == 400 and "unknown class" in unknown.get_json()["error"]
    with app.app_context():
        image = db.session.get(Image, image_id)
        assert image.label_count == 0 and image.leased_to_id == users["lee"], "lease kept"
    assert client.post(url, headers=headers, json={"label": "crater", "request_id": "b"}
                       ).status_code == 201
    repeat = client.post(url, headers=headers, json={"label": "other", "request_id": "c"})
    assert repeat.status_code == 409
    with app.app_context():
        assert db.session.get(Image, image_id).label_count == 1
