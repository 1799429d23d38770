"""What a failure means: a full or read-only disk, or a lost database connection.

One home for both readings, shared by the error pages (web/errors.py), the console and the
importer (which stops cleanly on a full disk). A view whose request may safely run twice
says so with ``retry_safe``: a request that lost its database connection is then run once
more on a fresh one instead of failing (reads do so anyway).
"""
import errno
import sqlite3
from typing import Callable

from sqlalchemy.exc import DBAPIError

DISK_ERRNOS = {errno.ENOSPC: "the server's disk is full",
               errno.EROFS: "the server's disk is read-only",
               errno.EDQUOT: "the server's disk quota is used up"}
# What SQLite and PostgreSQL say when they cannot write.
DATABASE_DISK_MESSAGES = {"database or disk is full": "the database's disk is full",
                          "attempt to write a readonly database": "the database is read-only",
                          "no space left on device": "the database's disk is full"}
DATABASE_DISK_SQLSTATES = {"53100": "the database's disk is full",  # disk_full
                           "25006": "the database is read-only"}  # read_only_sql_transaction
# PostgreSQL's codes of a connection that ended or cannot be made: class 08 (connection
# exception) and the server's shutdowns (admin_shutdown: pg_terminate_backend, a restart;
# crash_shutdown; cannot_connect_now: still starting).
CONNECTION_SQLSTATES = {"57P01", "57P02", "57P03"}


def _chain(error: BaseException):
    """Yield error and what it wraps (SQLAlchemy's orig, the cause, the context), once each."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = getattr(error, "orig", None) or error.__cause__ or error.__context__


def disk_trouble(error: BaseException) -> str | None:
    """Return a plain reason when error (or what it wraps) means a full or read-only disk."""
    for link in _chain(error):
        if isinstance(link, OSError) and link.errno in DISK_ERRNOS:
            return DISK_ERRNOS[link.errno]
        if getattr(link, "sqlstate", None) in DATABASE_DISK_SQLSTATES:
            return DATABASE_DISK_SQLSTATES[link.sqlstate]
        text = str(link).lower()
        for message, reason in DATABASE_DISK_MESSAGES.items():
            if message in text and isinstance(link, (sqlite3.Error, DBAPIError)):
                return reason
    return None


def connection_lost(error: BaseException) -> bool:
    """Whether error means the database connection ended or could not be made (PostgreSQL
    restarted, the backend was terminated, a pooled connection went stale)."""
    for link in _chain(error):
        if isinstance(link, DBAPIError) and link.connection_invalidated:
            return True
        sqlstate = getattr(link, "sqlstate", None)
        if sqlstate is not None and (sqlstate.startswith("08") or sqlstate in CONNECTION_SQLSTATES):
            return True
        # psycopg's own OperationalError with no code: the server closed the connection, or
        # it refused a new one. (SQLite's OperationalError, "database is locked", is not this.)
        if type(link).__module__.startswith("psycopg") and sqlstate is None and \
                type(link).__name__ == "OperationalError":
            return True
    return False


def retry_safe(view: Callable) -> Callable:
    """Mark a view that may run twice (an idempotent write, e.g. keyed by a request_id)."""
    view.retry_safe = True
    return view


def is_retry_safe(view: Callable | None) -> bool:
    """Whether a view was marked retry_safe."""
    return bool(getattr(view, "retry_safe", False))
