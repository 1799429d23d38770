"""database.py: PostgreSQL's connection options, the idle-connection check, and read-only
requests that end with COMMIT (so psycopg keeps its prepared statements)."""
import pytest
from sqlalchemy import event, select, text, update

from supervising_ui import database
from supervising_ui.extensions import db
from supervising_ui.models import Project

from .conftest import TEST_DATABASE_URL
from .helpers import make_project

postgres_only = pytest.mark.skipif(not TEST_DATABASE_URL,
                                   reason="PostgreSQL: set SUPERVISING_UI_TEST_DATABASE_URL")


def test_the_commit_mode_is_checked_and_passed_to_postgresql():
    config = {"DATABASE_URL": "postgresql+psycopg://u@h/d", "DATABASE_SYNCHRONOUS_COMMIT": "off"}
    assert database.postgres_connect_args(config) == {
        "options": "-c synchronous_commit=off", "prepare_threshold": database.PREPARE_THRESHOLD}
    config |= {"DATABASE_URL": "postgresql://u@h/d", "DATABASE_SYNCHRONOUS_COMMIT": " ON"}
    assert database.postgres_connect_args(config) == {"options": "-c synchronous_commit=on"}
    with pytest.raises(ValueError, match="use one of off, local"):
        database.postgres_connect_args(config | {"DATABASE_SYNCHRONOUS_COMMIT": "sometimes"})


@postgres_only
def test_postgresql_connections_carry_the_options(app):
    with app.app_context():
        assert db.session.scalar(text("SHOW synchronous_commit")) == "off"
        driver = db.session.connection().connection.driver_connection
        assert driver.prepare_threshold == database.PREPARE_THRESHOLD


@postgres_only
def test_a_read_only_request_ends_with_commit_one_that_wrote_is_rolled_back(app, client, auth):
    with app.app_context():
        make_project()
        engine = db.engine
    ended = []
    event.listen(engine, "commit", lambda connection: ended.append("commit"))
    event.listen(engine, "rollback", lambda connection: ended.append("rollback"))
    auth.login("lee")
    ended.clear()
    assert client.get("/api/projects").status_code == 200
    assert ended == ["commit"]

    # A write left open at the end of a request is rolled back, as before.
    with app.app_context():
        db.session.execute(update(Project).values(name="renamed"))
        ended.clear()
        database.end_read_only_transaction(None)
        assert ended == []
        db.session.remove()
        assert db.session.scalar(select(Project.name)) == "mars"


@postgres_only
def test_prepared_statements_survive_read_only_requests(app, client, auth):
    with app.app_context():
        make_project()
        engine = db.engine
    auth.login("lee")
    for _ in range(3):  # the same connection each time (one request at a time)
        assert client.get("/api/projects").status_code == 200
    with engine.connect() as connection:
        prepared = connection.execute(text(
            "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE '%project%'"
        )).scalar()
    assert prepared >= 1, "the settings query stayed prepared"


@postgres_only
def test_a_connection_the_server_dropped_while_idle_is_replaced(app, client, auth, monkeypatch):
    with app.app_context():
        project_id = make_project()
    auth.login("lee")
    assert client.get(f"/api/projects/{project_id}/progress").status_code == 200
    monkeypatch.setattr(database, "PING_AFTER_IDLE_SECONDS", 0.0)
    import psycopg
    # A restart of the server, as the app's pool sees it: every other backend of the database
    # ends, the pooled connection of the requests above among them.
    with psycopg.connect(TEST_DATABASE_URL.replace("postgresql+psycopg", "postgresql"),
                         autocommit=True) as killer:
        ended = killer.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()").fetchone()[0]
    assert ended >= 1
    for _ in range(3):
        assert client.get(f"/api/projects/{project_id}/progress").status_code == 200
