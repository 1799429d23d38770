"""A lost database connection on the request path: safe requests run again once on a fresh
connection, the rest answer 503 with Retry-After and a JSON error that says to retry."""
import sqlite3
import uuid

import pytest
from sqlalchemy.exc import OperationalError

from supervising_ui import database, faults
from supervising_ui.extensions import db
from supervising_ui.labeling import counts, decisions
from supervising_ui.models import Label

from ..conftest import TEST_DATABASE_URL
from ..helpers import add_images, make_project

postgres_only = pytest.mark.skipif(not TEST_DATABASE_URL,
                                   reason="PostgreSQL: set SUPERVISING_UI_TEST_DATABASE_URL")


def lost_connection() -> OperationalError:
    """What SQLAlchemy raises when the server closed the connection under a statement."""
    return OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly"),
                            connection_invalidated=True)


def failing_first(real, times: int = 1):
    """real, but raising a lost connection on its first `times` calls; .calls counts them."""
    def wrapper(*args, **kwargs):
        wrapper.calls += 1
        if wrapper.calls <= times:
            raise lost_connection()
        return real(*args, **kwargs)
    wrapper.calls = 0
    return wrapper


@pytest.fixture
def labeling(app, client, auth):
    """A project of 3 image rows and 'lee' logged in; return the project id."""
    with app.app_context():
        project_id = make_project()
        add_images(project_id, 3)
    auth.login("lee")
    return project_id


def test_what_counts_as_a_lost_connection():
    assert faults.connection_lost(lost_connection())
    locked = OperationalError("UPDATE", {}, sqlite3.OperationalError("database is locked"))
    assert not faults.connection_lost(locked), "SQLite waits; that is not a lost connection"
    import psycopg
    refused = OperationalError("SELECT 1", {}, psycopg.OperationalError("connection refused"))
    assert faults.connection_lost(refused), "the server is down or restarting"
    assert faults.connection_lost(OperationalError("SELECT 1", {}, psycopg.errors.AdminShutdown(
        "terminating connection due to administrator command")))
    assert not faults.connection_lost(ValueError("no"))


def test_a_read_that_lost_its_connection_runs_again(client, labeling, monkeypatch):
    flaky = failing_first(counts.labeling_counts)
    monkeypatch.setattr(counts, "labeling_counts", flaky)
    response = client.get(f"/api/projects/{labeling}/progress")
    assert response.status_code == 200 and flaky.calls == 2


def test_a_read_that_loses_it_twice_is_503_with_retry_after(client, labeling, monkeypatch):
    flaky = failing_first(counts.labeling_counts, times=2)
    monkeypatch.setattr(counts, "labeling_counts", flaky)
    response = client.get(f"/api/projects/{labeling}/progress")
    assert response.status_code == 503 and flaky.calls == 2, "run again once, not more"
    assert response.headers["Retry-After"] == "2"
    assert response.json["error"] == ("the connection to the database was lost: the request may "
                                      "not have been carried out; retry it")


def test_a_label_submit_runs_again_under_its_request_id(app, client, auth, labeling, monkeypatch):
    flaky = failing_first(decisions.record_label)
    monkeypatch.setattr(decisions, "record_label", flaky)
    image_id = client.get(f"/api/projects/{labeling}/next").json["image_id"]
    response = client.post(f"/api/images/{image_id}/labels",
                           json={"label": "crater", "request_id": str(uuid.uuid4())},
                           headers={"X-CSRFToken": auth.csrf_token})
    assert response.status_code == 201 and flaky.calls == 2
    with app.app_context():
        assert db.session.query(Label).count() == 1


def test_a_write_that_is_not_safe_to_repeat_is_503(client, auth, labeling, monkeypatch):
    flaky = failing_first(decisions.put_off)
    monkeypatch.setattr(decisions, "put_off", flaky)
    image_id = client.get(f"/api/projects/{labeling}/next").json["image_id"]
    response = client.post(f"/api/images/{image_id}/later",
                           headers={"X-CSRFToken": auth.csrf_token})
    assert response.status_code == 503 and flaky.calls == 1
    assert response.headers["Retry-After"] == "2" and "retry it" in response.json["error"]


# --------------------------------------------------------------------------- PostgreSQL


def terminate_other_backends() -> int:
    """pg_terminate_backend on every other backend of the test database (the app's pool)."""
    import psycopg
    with psycopg.connect(TEST_DATABASE_URL.replace("postgresql+psycopg", "postgresql"),
                         autocommit=True) as killer:
        return killer.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()").fetchone()[0]


@postgres_only
def test_terminated_backends_cost_no_safe_request(app, client, auth, labeling, monkeypatch):
    monkeypatch.setattr(database, "PING_AFTER_IDLE_SECONDS", 3600.0)  # no check before use
    assert client.get(f"/api/projects/{labeling}/progress").status_code == 200
    assert terminate_other_backends() >= 1
    assert client.get(f"/api/projects/{labeling}/progress").status_code == 200
    given = client.get(f"/api/projects/{labeling}/next")
    assert given.status_code == 200
    assert terminate_other_backends() >= 1
    request_id = str(uuid.uuid4())
    answer = client.post(f"/api/images/{given.json['image_id']}/labels",
                         json={"label": "crater", "request_id": request_id},
                         headers={"X-CSRFToken": auth.csrf_token})
    assert answer.status_code == 201, answer.get_data(as_text=True)
    with app.app_context():
        assert [label.request_id for label in db.session.query(Label)] == [request_id]


@postgres_only
def test_a_terminated_backend_under_an_unsafe_write_is_503(app, client, auth, labeling,
                                                           monkeypatch):
    monkeypatch.setattr(database, "PING_AFTER_IDLE_SECONDS", 3600.0)
    image_id = client.get(f"/api/projects/{labeling}/next").json["image_id"]
    assert terminate_other_backends() >= 1
    response = client.post(f"/api/images/{image_id}/later",
                           headers={"X-CSRFToken": auth.csrf_token})
    assert response.status_code == 503 and response.headers["Retry-After"] == "2"
    assert client.post(f"/api/images/{image_id}/later",
                       headers={"X-CSRFToken": auth.csrf_token}).status_code == 200, \
        "the retry goes through on a fresh connection"
