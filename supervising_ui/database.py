"""Database set-up: engine options per backend, SQLite pragmas, create-or-migrate.

Both backends commit without waiting for the disk by default: SQLite in WAL mode with
``synchronous=NORMAL``, PostgreSQL with ``synchronous_commit=off`` (DATABASE_SYNCHRONOUS_COMMIT).
A crash of the app loses nothing either way; a crash of the machine (or of the PostgreSQL
server) may lose the last fraction of a second of commits, and never corrupts the database.
On PostgreSQL this matters beyond the wait itself: submits in one project take turns on
the project's search generation (search/index.py) until their commit, so a commit that waits
for the disk (about 3.5 ms on the development machine) makes every submit of the project wait.
"""
import logging
import time
from pathlib import Path

from flask import Flask
from flask_migrate import upgrade
from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.orm import Session
from sqlalchemy.pool import Pool

from .extensions import db, migrate

log = logging.getLogger(__name__)

MIGRATIONS_DIR = str(Path(__file__).resolve().parent / "migrations")
# Connections a process keeps: at least serve's threads per worker (8), so that a busy worker
# keeps its connections (and their prepared statements) rather than opening and closing more.
POOL_SIZE = 10
# A pooled PostgreSQL connection idle this long is checked with a round trip before use.
PING_AFTER_IDLE_SECONDS = 5.0
# psycopg prepares a statement on the server once a connection has run it this many times.
PREPARE_THRESHOLD = 1
SYNCHRONOUS_COMMIT_MODES = ("off", "local", "remote_write", "on", "remote_apply")


def init_app(app: Flask) -> None:
    """Bind SQLAlchemy and Flask-Migrate to app with engine options suited to its backend."""
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        # Writers wait for each other instead of failing with "database is locked".
        app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {"connect_args": {"timeout": 30}})
    else:
        app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {
            "pool_size": POOL_SIZE, "connect_args": postgres_connect_args(app.config)})
    db.init_app(app)
    migrate.init_app(app, db, directory=MIGRATIONS_DIR, render_as_batch=True)
    app.teardown_request(end_read_only_transaction)


def refresh_planner_statistics(*tables: str) -> None:
    """Have PostgreSQL re-sample these tables' statistics now and commit (nothing on SQLite).

    Called after an import adds many rows: until autovacuum analyzes the table (up to a
    minute or more later) the planner believes the project still holds the few rows it held
    before, and picks index scans that read every image of the project for each claim
    (measured: 4.7 ms instead of 0.02 ms per ``next`` on 3000 fresh images)."""
    if db.engine.dialect.name != "postgresql":
        return
    for table in tables:
        db.session.execute(text(f'ANALYZE "{table}"'))
    db.session.commit()


def postgres_connect_args(config) -> dict:
    """Return the connection options of PostgreSQL: the commit mode and, with psycopg 3,
    server-side prepared statements for every statement run twice on a connection (psycopg's
    own default waits for 5)."""
    mode = str(config["DATABASE_SYNCHRONOUS_COMMIT"]).strip().lower()
    if mode not in SYNCHRONOUS_COMMIT_MODES:
        raise ValueError(f"DATABASE_SYNCHRONOUS_COMMIT is {mode!r}: use one of "
                         f"{', '.join(SYNCHRONOUS_COMMIT_MODES)}")
    options = {"options": f"-c synchronous_commit={mode}"}
    if config["DATABASE_URL"].startswith("postgresql+psycopg:"):
        options["prepare_threshold"] = PREPARE_THRESHOLD
    return options


# --- PostgreSQL connections that sat idle are checked before use -----------------------------
# (SQLAlchemy's pool_pre_ping would check every one, a round trip per request. A connection
# that the server dropped while it was in use fails that one request; SQLAlchemy then replaces
# every connection of the pool made before the failure.)


@event.listens_for(Pool, "checkin")
def _idle_from_now(dbapi_connection, connection_record) -> None:
    """Note when a connection went back to the pool."""
    connection_record.info["idle_since"] = time.monotonic()


@event.listens_for(Pool, "checkout")
def _ping_if_idle(dbapi_connection, connection_record, connection_proxy) -> None:
    """Check a PostgreSQL connection that sat idle a while; a dead one is replaced."""
    idle_since = connection_record.info.get("idle_since")
    if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS or \
            type(dbapi_connection).__module__.startswith("sqlite3"):
        return
    try:
        dbapi_connection.autocommit = True  # the check opens no transaction
        try:
            cursor = dbapi_connection.cursor()
            cursor.execute("SELECT 1")
            cursor.close()
        finally:
            dbapi_connection.autocommit = False
    except Exception as error:  # any failure: let the pool connect afresh
        raise DisconnectionError(f"a pooled connection is gone: {error}") from error


# --- read-only requests end with COMMIT on PostgreSQL ------------------------------------------
# psycopg forgets every prepared statement of a connection when it rolls a transaction back
# (the transaction might have dropped what they refer to), and SQLAlchemy rolls back whatever
# a request left open: every request that only read (an image, a page) would cost the next
# ones on that connection their prepared statements. A transaction that ran nothing but
# SELECTs and has nothing to flush is committed instead (the same for the data).


@event.listens_for(Session, "after_begin")
def _remember_connection(session, transaction, connection) -> None:
    """Keep the connection of the session's transaction, for end_read_only_transaction."""
    session.info["connection"] = connection


def open_connection(session):
    """Return the connection the session holds now, or None when it holds none."""
    connection = session.info.get("connection")
    return None if connection is None or connection.closed else connection


@event.listens_for(Engine, "begin")
def _transaction_begins(connection) -> None:
    """A new transaction has written nothing yet."""
    connection.info["wrote"] = False


@event.listens_for(Engine, "before_cursor_execute")
def _note_writes(connection, cursor, statement, parameters, context, executemany) -> None:
    """Count anything but a plain SELECT as a write (a WITH may hide an UPDATE)."""
    if statement.lstrip()[:6].upper() != "SELECT":
        connection.info["wrote"] = True


def end_read_only_transaction(error) -> None:
    """At the end of a request: commit its PostgreSQL transaction if it only read."""
    connection = open_connection(db.session())
    db.session.info.pop("connection", None)
    if error is not None or connection is None or connection.dialect.name != "postgresql" or \
            not connection.in_transaction() or connection.info.get("wrote", True):
        return
    session = db.session()
    if not (session.new or session.dirty or session.deleted):
        try:
            session.commit()
        except DBAPIError as failure:  # the connection ended after the answer was made
            log.warning("could not end a read-only transaction: %s", failure)
            db.session.remove()


@event.listens_for(Engine, "connect")
def _configure_sqlite(dbapi_connection, connection_record) -> None:
    """Turn on WAL, a busy timeout and foreign keys for every new SQLite connection."""
    if type(dbapi_connection).__module__ != "sqlite3":
        return
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def create_or_migrate() -> None:
    """Create the database or bring it to the newest schema (inside an app context)."""
    upgrade(directory=MIGRATIONS_DIR)
