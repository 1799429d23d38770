"""Login throttling: failed logins counted per account and per client address.

The count lives in the database, not in a process, so that every gunicorn worker and every
host on the same database sees it. An attempt is written before its password is checked, so
that parallel guesses count against each other; a success removes that account's failures
from that address, and a refused attempt is not counted, so waiting is enough to get back in.
"""
import math
from datetime import datetime, timedelta

from sqlalchemy import delete, select

from ..extensions import db
from ..models import LoginAttempt, User, utcnow
from . import users as accounts

MAX_FAILURES = 10
WINDOW = timedelta(minutes=15)
_NAME_LENGTH = LoginAttempt.__table__.c.username.type.length
_ADDRESS_LENGTH = LoginAttempt.__table__.c.client_address.type.length


class LoginThrottled(Exception):
    """Too many failed logins for this account or from this address; retry_after is seconds."""

    def __init__(self, retry_after: int):
        super().__init__(f"too many failed logins: try again in {retry_after} seconds")
        self.retry_after = retry_after


def log_in(username: str, password: str, client_address: str | None) -> User | None:
    """Return the user these credentials belong to, or None; raise LoginThrottled when blocked."""
    attempt = LoginAttempt(username=_key(username.strip(), _NAME_LENGTH),
                           client_address=_key(client_address or "unknown", _ADDRESS_LENGTH),
                           attempted_at=utcnow())
    db.session.add(attempt)
    db.session.commit()
    retry_after = _seconds_blocked(attempt)
    if retry_after:
        db.session.delete(attempt)  # a refused attempt does not prolong the block
        db.session.commit()
        raise LoginThrottled(retry_after)
    user = accounts.authenticate(username, password)
    if user is None:
        _prune(attempt.attempted_at)
    else:
        db.session.execute(delete(LoginAttempt).where(
            LoginAttempt.username == attempt.username,
            LoginAttempt.client_address == attempt.client_address))
    db.session.commit()
    return user


def _key(text: str, length: int) -> str:
    """Return text as a column can store it: valid UTF-8, no NUL, at most length characters."""
    return text.encode("utf-8", "replace").decode().replace("\x00", "?")[:length]


def _seconds_blocked(attempt: LoginAttempt) -> int:
    """Return how long the account or address of attempt is blocked (0: not blocked)."""
    blocked_until = max(_blocked_until(LoginAttempt.username, attempt),
                        _blocked_until(LoginAttempt.client_address, attempt))
    seconds = (blocked_until - attempt.attempted_at).total_seconds()
    return max(1, math.ceil(seconds)) if seconds > 0 else 0


def _blocked_until(column, attempt: LoginAttempt) -> datetime:
    """Return when the MAX_FAILURES-th newest other failure with attempt's value leaves the window."""
    value = getattr(attempt, column.key)
    oldest_counted = db.session.scalar(
        select(LoginAttempt.attempted_at)
        .where(column == value, LoginAttempt.attempted_at > attempt.attempted_at - WINDOW,
               LoginAttempt.id != attempt.id)
        .order_by(LoginAttempt.attempted_at.desc()).offset(MAX_FAILURES - 1).limit(1))
    return oldest_counted + WINDOW if oldest_counted is not None else attempt.attempted_at


def _prune(now: datetime) -> None:
    """Delete failures too old to count (through the index on attempted_at)."""
    db.session.execute(delete(LoginAttempt).where(LoginAttempt.attempted_at <= now - WINDOW))
