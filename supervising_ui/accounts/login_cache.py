"""Who a token or a session cookie belongs to, remembered for a few seconds in each process.

Every request asks who is calling before anything else; at many labelers that lookup was a
database round trip per request. Each app keeps what accounts.py read (a live token's user
and expiry, a user row) for ``LOGIN_CACHE_SECONDS`` (default 5; 0 turns it off); the rules
(expiry, active, session version) are checked against the remembered values on every
request, so an expired token is refused at once.

A change to a user or a token through the ORM in this process (logout, new password, role,
deactivation, revocation) forgets everything remembered here, at its flush and again at its
commit. Another process (the other gunicorn workers, a second server) sees such a change
within ``LOGIN_CACHE_SECONDS``: that is the window in which a revoked token or an ended
session may still work there.
"""
from __future__ import annotations

from typing import Any, Callable, Hashable

from flask import Flask
from sqlalchemy import event
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.util import identity_key

from ..extensions import db
from ..models import ApiToken, User
from ..timed_cache import TimedCache, forget_in_app, remembered_in_app

# Columns of a user kept here (all of them: the user joins a session without a query).
USER_COLUMNS = tuple(column.key for column in User.__table__.columns)


def init_app(app: Flask) -> None:
    """Give app its cache and forget it on every ORM change of a user or a token."""
    app.extensions["login_cache"] = TimedCache(float(app.config["LOGIN_CACHE_SECONDS"]))
    if not event.contains(Session, "after_flush", _after_flush):
        event.listen(Session, "after_flush", _after_flush)
        event.listen(Session, "after_commit", _after_commit)


def remembered(key: Hashable, load: Callable[[], Any]) -> Any:
    """Return load()'s value for key from the current app's cache (load() when it is off)."""
    return remembered_in_app("login_cache", key, load)


def detached_user(user: User) -> User:
    """Return a copy of user that belongs to no session (what the cache keeps)."""
    copy = User(**{name: getattr(user, name) for name in USER_COLUMNS})
    make_transient_to_detached(copy)
    return copy


def attach(kept: User) -> User:
    """Return the session's user for a copy the cache keeps, without a query.

    The instance already in the session is returned as it is; otherwise a copy of the kept
    one joins the session as if loaded (nothing to flush), so that views may use and change
    it like any other. The kept copy itself never joins a session: requests share it.
    """
    existing = db.session.identity_map.get(identity_key(User, kept.id))
    if existing is not None:
        return existing
    return db.session.merge(kept, load=False)


def _forget_current() -> None:
    """Forget the current app's cache, if there is one."""
    forget_in_app("login_cache")


def _after_flush(session, flush_context) -> None:
    """Forget on a flush that changed or deleted a user or a token (again after its commit)."""
    changed = (*session.dirty, *session.deleted)
    if any(isinstance(instance, (User, ApiToken)) for instance in changed):
        session.info["forget_logins"] = True
        _forget_current()


def _after_commit(session) -> None:
    """Forget once more after a commit whose flush changed a user or a token."""
    if session.info.pop("forget_logins", False):
        _forget_current()
