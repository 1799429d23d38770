"""Error responses: JSON for JSON clients, 503 for a full or read-only disk or a lost database
connection, 400 for numbers no column can hold.

Every error under ``/api/`` (and for a client that asks for JSON first, like the upload
script) answers ``{"error": message}`` with its status; pages keep Flask's HTML. A full or
read-only disk, seen as an OSError (ENOSPC, EROFS, EDQUOT) or as the database's own error,
answers 503 with a plain reason instead of a traceback page. A request that lost its
database connection (PostgreSQL restarted, its backend terminated, a stale pooled
connection) runs once more on a fresh connection where that is safe (reads, and views marked
``faults.retry_safe`` such as the label submit keyed by its request_id); otherwise, or when
the second run fails too, it answers 503 with Retry-After and says to retry.
"""
import logging
import sqlite3

from flask import Flask, current_app, g, jsonify, request
from sqlalchemy.exc import DataError, DBAPIError
from werkzeug.exceptions import (
    BadRequest,
    HTTPException,
    MethodNotAllowed,
    NotFound,
    ServiceUnavailable,
)
from werkzeug.routing import RequestRedirect

from ..extensions import db
from ..faults import connection_lost, disk_trouble, is_retry_safe

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 60
# A lost connection is usually back at once (a new one is made); a restart takes seconds.
CONNECTION_RETRY_AFTER_SECONDS = 2
# Methods whose requests change nothing (or, like `next`, may repeat): run again on a fresh
# connection after a lost one.
RETRY_METHODS = ("GET", "HEAD", "OPTIONS")


def init_app(app: Flask) -> None:
    """Register the error handlers."""
    app.register_error_handler(HTTPException, http_error)  # 500s of uncaught errors too
    app.register_error_handler(OSError, storage_error)
    app.register_error_handler(sqlite3.Error, storage_error)
    app.register_error_handler(DBAPIError, database_error)
    app.register_error_handler(OverflowError, storage_error)


def wants_json() -> bool:
    """Return whether the current request should get errors as JSON."""
    return request.path.startswith("/api/") or \
        request.accept_mimetypes.best == "application/json"


def http_error(error: HTTPException):
    """Answer an HTTP error as {"error": message} to JSON clients; leave pages to Flask."""
    if isinstance(error, MethodNotAllowed) and error.valid_methods \
            and not names_a_resource(error.valid_methods):
        error = NotFound()
    if error.response is not None or not wants_json():
        return error  # a view's own response (labeling's JSON errors), or an HTML page
    response = jsonify(error=error.description or error.name)
    response.status_code = error.code
    for name, value in error.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value  # Allow of 405, Retry-After of 429 and 503
    return response


def names_a_resource(methods) -> bool:
    """Whether the request's path matches a route under one of methods. An id out of range
    (the id converter refuses it) matches none, yet werkzeug answers 405 where the path has a
    rule per method: that is a 404, like the same id under a path with one rule."""
    adapter = current_app.url_map.bind_to_environ(request.environ)
    for method in methods or ():
        try:
            adapter.match(method=method)
        except RequestRedirect:
            return True
        except HTTPException:
            continue
        return True
    return False


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


def database_error(error: DBAPIError):
    """Run a safe request again once after a lost database connection; else 503 to retry.

    Other database errors go to storage_error (a full disk, a number out of range).
    """
    if not connection_lost(error):
        return storage_error(error)
    db.session.remove()  # the pool replaces the dead connection (and those made before it)
    view = current_app.view_functions.get(request.endpoint)
    if not g.get("database_retried") and (request.method in RETRY_METHODS or is_retry_safe(view)):
        g.database_retried = True
        log.warning("%s %s: the database connection was lost (%s); running it again",
                    request.method, request.path, error.orig or error)
        try:  # the request's checks (login, CSRF) run again too, then the view
            response = current_app.preprocess_request()
            return response if response is not None else current_app.dispatch_request()
        except Exception as again:  # handled as the first run's error would have been
            return current_app.handle_user_exception(again)
    log.error("%s %s: the database connection was lost (%s)", request.method, request.path,
              error.orig or error)
    return http_error(ServiceUnavailable(
        "the connection to the database was lost: the request may not have been carried out; "
        "retry it", retry_after=CONNECTION_RETRY_AFTER_SECONDS))
