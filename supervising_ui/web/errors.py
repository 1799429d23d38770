"""Error responses: JSON for JSON clients, 503 for a full or read-only disk, 400 for numbers
no column can hold.

Every error under ``/api/`` (and for a client that asks for JSON first, like the upload
script) answers ``{"error": message}`` with its status; pages keep Flask's HTML. A full or
read-only disk, seen as an OSError (ENOSPC, EROFS, EDQUOT) or as the database's own error,
answers 503 with a plain reason instead of a traceback page.
"""
import errno
import logging
import sqlite3

from flask import Flask, jsonify, request
from sqlalchemy.exc import DataError, DBAPIError
from werkzeug.exceptions import BadRequest, HTTPException, ServiceUnavailable

log = logging.getLogger(__name__)

DISK_ERRNOS = {errno.ENOSPC: "the server's disk is full",
               errno.EROFS: "the server's disk is read-only",
               errno.EDQUOT: "the server's disk quota is used up"}
# What SQLite and PostgreSQL say when they cannot write.
DATABASE_DISK_MESSAGES = {"database or disk is full": "the database's disk is full",
                          "attempt to write a readonly database": "the database is read-only",
                          "no space left on device": "the database's disk is full"}
DATABASE_DISK_SQLSTATES = {"53100": "the database's disk is full",  # disk_full
                           "25006": "the database is read-only"}  # read_only_sql_transaction
RETRY_AFTER_SECONDS = 60


def init_app(app: Flask) -> None:
    """Register the error handlers."""
    app.register_error_handler(HTTPException, http_error)  # 500s of uncaught errors too
    app.register_error_handler(OSError, storage_error)
    app.register_error_handler(sqlite3.Error, storage_error)
    app.register_error_handler(DBAPIError, storage_error)
    app.register_error_handler(OverflowError, storage_error)


def wants_json() -> bool:
    """Return whether the current request should get errors as JSON."""
    return request.path.startswith("/api/") or \
        request.accept_mimetypes.best == "application/json"


def http_error(error: HTTPException):
    """Answer an HTTP error as {"error": message} to JSON clients; leave pages to Flask."""
    if error.response is not None or not wants_json():
        return error  # a view's own response (labeling's JSON errors), or an HTML page
    response = jsonify(error=error.description or error.name)
    response.status_code = error.code
    for name, value in error.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value  # Allow of 405, Retry-After of 429 and 503
    return response


def disk_trouble(error: BaseException) -> str | None:
    """Return a plain reason when error (or what it wraps) means a full or read-only disk."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in DISK_ERRNOS:
            return DISK_ERRNOS[error.errno]
        if getattr(error, "sqlstate", None) in DATABASE_DISK_SQLSTATES:
            return DATABASE_DISK_SQLSTATES[error.sqlstate]
        text = str(error).lower()
        for message, reason in DATABASE_DISK_MESSAGES.items():
            if message in text and isinstance(error, (sqlite3.Error, DBAPIError)):
                return reason
        error = getattr(error, "orig", None) or error.__cause__ or error.__context__
    return None


def storage_error(error: Exception):
    """Answer 503 for a full or read-only disk, 400 for a number out of range; re-raise the rest."""
    reason = disk_trouble(error)
    if reason is not None:
        log.error("%s %s: %s (%s)", request.method, request.path, reason, error)
        return http_error(ServiceUnavailable(
            f"{reason}: the request was not carried out; try again later",
            retry_after=RETRY_AFTER_SECONDS))
    if isinstance(error, (OverflowError, DataError)):
        # A number (or text) from the request that the database column cannot hold.
        log.warning("%s %s: value out of range: %s", request.method, request.path, error)
        return http_error(BadRequest("a number or text in the request is out of range"))
    raise error
