"""Shared fixtures: an app on a fresh database, a client, users and a login helper.

Set SUPERVISING_UI_TEST_DATABASE_URL (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)
to run the suite against PostgreSQL instead of a temporary SQLite file. Under pytest-xdist
(`-n 2`) each worker process gets its own database beside that one (`test_gw0`, ...),
created on first use, so workers never truncate each other's tables.

PyTorch runs one thread per process here (OMP_NUM_THREADS=1, inherited by the worker, serve
and console subprocesses the tests start): `-n auto` already runs a test process per core,
and two threads per process on two busy cores cost 2-4 times the CPU for the same training
step (spinning threads wait for each other). Set OMP_NUM_THREADS to choose another count.
"""
import contextlib
import os
import re
import shutil
import sqlite3
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before anything imports torch

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from werkzeug.security import generate_password_hash

from supervising_ui import create_app
from supervising_ui.accounts.users import create_user
from supervising_ui.database import create_or_migrate
from supervising_ui.extensions import db
from supervising_ui.models import accounts as account_tables

# The browser tests' fixtures (live_server, browser), for every test module that asks.
pytest_plugins = ["tests.browser"]


def pytest_collection_modifyitems(items):
    """Run the tests marked slow first: pytest-xdist then ends both workers on short tests
    instead of one worker running a 30 s test while the other has nothing left."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def _database_of_this_worker(url: str | None) -> str | None:
    """Return url, or under pytest-xdist a database of this worker's own (created if missing)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not url or not worker:
        return url
    base = make_url(url)
    own = base.set(database=f"{base.database}_{worker}")
    engine = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            exists = connection.scalar(text("SELECT 1 FROM pg_database WHERE datname = :name"),
                                       {"name": own.database})
            if not exists:
                connection.execute(text(f'CREATE DATABASE "{own.database}"'))
    finally:
        engine.dispose()
    return own.render_as_string(hide_password=False)


TEST_DATABASE_URL = _database_of_this_worker(os.environ.get("SUPERVISING_UI_TEST_DATABASE_URL"))
SHARED_HIRISE = Path(__file__).resolve().parents[2] / "shared" / "data" / "hirise"
SHARED_MSL = SHARED_HIRISE.parent / "msl"
PASSWORD = "correct horse battery"
# Accounts that fixtures create are stored with this cheap scrypt cost: werkzeug's default
# (scrypt:32768:8:1) costs ~0.17 s of CPU per hash and per login, most of a short test. Logins
# still check them through werkzeug's real code (the cost is read from the stored hash); the
# tests about hashing create their own users at the real cost.
FIXTURE_HASH_METHOD = "scrypt:1024:8:1"
_schema_ready = False


def _reset_postgres() -> None:
    """Migrate the PostgreSQL test database once per session, then empty its tables per test."""
    global _schema_ready
    if not _schema_ready:
        with db.engine.begin() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        create_or_migrate()
        _schema_ready = True
    tables = ", ".join(f'"{table.name}"' for table in db.metadata.sorted_tables)
    with db.engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture(scope="session")
def sqlite_schema(tmp_path_factory) -> Path:
    """A SQLite database that Alembic brought to the newest schema, once per test process.

    Each test's app starts from a copy (~0.03 s instead of ~0.12 s of migrations). The tests
    that set up an instance from nothing (init, serve, the worker) still run the migrations.
    """
    path = tmp_path_factory.mktemp("schema") / "schema.sqlite3"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SUPERVISING_UI_INSTANCE", str(path.parent / "instance"))
        app = create_app({"TESTING": True, "SECRET_KEY": "test", "JOB_QUEUE": "memory",
                          "DATABASE_URL": f"sqlite:///{path}"})
        with app.app_context():
            create_or_migrate()
            db.session.remove()
            db.engine.dispose()
    with contextlib.closing(sqlite3.connect(path)) as connection:
        connection.execute("PRAGMA journal_mode=DELETE")  # all in one file, the WAL emptied
    return path


@pytest.fixture
def app(request, tmp_path, monkeypatch):
    """Return an app whose instance folder and database are fresh for this test."""
    monkeypatch.setenv("SUPERVISING_UI_INSTANCE", str(tmp_path / "instance"))
    for name in list(os.environ):
        if name.startswith("SUPERVISING_UI_") and name not in (
                "SUPERVISING_UI_INSTANCE", "SUPERVISING_UI_TEST_DATABASE_URL"):
            monkeypatch.delenv(name)
    database = tmp_path / "test.sqlite3"
    if not TEST_DATABASE_URL:
        shutil.copyfile(request.getfixturevalue("sqlite_schema"), database)
    # RETRAIN_TOP_BLOCKS 0: quick retrains train the head alone, seconds faster per retrain;
    # test_retraining and tests/ml cover the default (the last block retrained too).
    # New projects start with the learning loop off here (random order, no automatic
    # retrain), so that a test's labels queue no retrain it did not ask for; tests of the
    # loop's defaults build their own app (tests/projects/test_first_hour.py). Imports queue
    # no embed job (tests/learning/test_embedding.py covers it).
    config = {"TESTING": True, "SECRET_KEY": "test", "JOB_QUEUE": "memory",
              "DATABASE_URL": TEST_DATABASE_URL or f"sqlite:///{database}",
              "IMPORT_ROOT": str(tmp_path / "import_root"), "RETRAIN_TOP_BLOCKS": 0,
              "NEW_PROJECT_SERVING_ORDER": "random", "NEW_PROJECT_RETRAIN_EVERY": 0,
              "EMBED_AT_IMPORT": 0}
    app = create_app(config)
    if TEST_DATABASE_URL:
        with app.app_context():
            _reset_postgres()
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture(scope="session")
def embedding_cache(tmp_path_factory) -> str:
    """One CACHE_DIR per test process for the tests that train: embeddings are keyed by image
    content, and the generated images (helpers.make_stored_project, the demo's) are the same
    in every test, so each is computed once per process."""
    return str(tmp_path_factory.mktemp("cache"))


@pytest.fixture
def client(app):
    """Return a test client for app."""
    return app.test_client()


@pytest.fixture
def runner(app):
    """Return a CLI runner for app's console commands."""
    return app.test_cli_runner()


@contextlib.contextmanager
def cheap_password_hashes():
    """Inside: passwords set on accounts are hashed with FIXTURE_HASH_METHOD."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(account_tables, "generate_password_hash", lambda password: generate_password_hash(
            password, method=FIXTURE_HASH_METHOD))
        yield


@pytest.fixture
def users(app):
    """Create an admin 'ada' and two labelers 'lee' and 'liu'; return their ids by name."""
    with app.app_context(), cheap_password_hashes():
        return {name: create_user(name, role=role, password=PASSWORD)[0].id
                for name, role in (("ada", "admin"), ("lee", "labeler"), ("liu", "labeler"))}


def csrf_token_from(html: str) -> str:
    """Return the CSRF token embedded in a page."""
    match = re.search(r'name="csrf-token" content="([^"]+)"', html) or \
        re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "page carries no CSRF token"
    return match.group(1)


class AuthActions:
    """Log a test client in and out through the real login form."""

    def __init__(self, client):
        self._client = client
        self.csrf_token = None

    def login(self, username="ada", password=PASSWORD):
        """Log in and remember the session's CSRF token for later POSTs."""
        page = self._client.get("/login")
        token = csrf_token_from(page.get_data(as_text=True))
        response = self._client.post("/login", data={
            "username": username, "password": password, "csrf_token": token})
        self.csrf_token = csrf_token_from(self._client.get("/").get_data(as_text=True)) \
            if response.status_code == 302 else None
        return response

    def logout(self):
        """Log out through the logout form."""
        return self._client.post("/logout", data={"csrf_token": self.csrf_token})


@pytest.fixture
def auth(client, users):
    """Return login helpers for client; the users fixture has created the accounts."""
    return AuthActions(client)


def require_hirise():
    """Skip the calling test when ../shared/data/hirise is absent."""
    if not (SHARED_HIRISE / "manifest.csv").exists():
        pytest.skip("../shared/data/hirise is not present")
    return SHARED_HIRISE


@pytest.fixture
def held_queue(app, monkeypatch):
    """Keep submitted jobs queued (no worker): return the list of job ids sent to the queue."""
    sent = []
    monkeypatch.setitem(app.extensions, "execute_job", sent.append)
    return sent


def require_msl():
    """Skip the calling test when ../shared/data/msl is absent."""
    if not (SHARED_MSL / "manifest.csv").exists():
        pytest.skip("../shared/data/msl is not present")
    return SHARED_MSL
