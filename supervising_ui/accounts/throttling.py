"""Login throttling: failed logins counted per account per client address, with a much
higher ceiling per address.

The normal lock is per account *and* address: ten wrong passwords for one account from one
address block that account from that address only, so a stranger cannot lock anyone out
from elsewhere and a typo-prone colleague behind the same proxy or NAT does not lock out the
team. An address that fails far more often (LOGIN_FAILURES_PER_ADDRESS, any names) is
blocked as a whole: that is guessing, not typing. Behind a reverse proxy the client address
comes from X-Forwarded-For only when TRUSTED_PROXY_HOPS says how many proxies to trust
(web/guards.trust_proxies); otherwise every user shares the proxy's address and only the
per-account lock separates them.

The count lives in the database, not in a process, so that every gunicorn worker and every
host on the same database sees it. An attempt is written before its password is checked, so
that parallel guesses count against each other; a success removes that account's failures
from that address, and a refused attempt is not counted, so waiting is enough to get back in.
The password-change form's check of the current password counts the same way.
"""
import math
from datetime import datetime, timedelta
from typing import Callable

from flask import current_app
from sqlalchemy import delete, select

from ..extensions import db
from ..models import LoginAttempt, User, utcnow
from . import users as accounts

# Failures of one account from one address that block it there.
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
    return _counted(username, client_address, lambda: accounts.authenticate(username, password))


def change_password(user: User, current: str, new: str, client_address: str | None) -> None:
    """Set user's new password after a counted check of the current one.

    Raises AccountError (weak new password, wrong current one) or LoginThrottled. The new
    password is judged first, so that a weak one costs no attempt.
    """
    accounts.check_password_strength(new, user.username)
    checked = _counted(user.username, client_address,
                       lambda: user if user.check_password(current) else None)
    if checked is None:
        raise accounts.AccountError("the current password is wrong")
    accounts.set_new_password(user, new)


def _counted(username: str, client_address: str | None, check: Callable[[], User | None]):
    """Record an attempt, refuse it when blocked, else run check: its failure stays counted."""
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
    user = check()
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
    """Return how long the account at this address, or the address, is blocked (0: not)."""
    same_account = _blocked_until(attempt, MAX_FAILURES,
                                  LoginAttempt.username == attempt.username,
                                  LoginAttempt.client_address == attempt.client_address)
    same_address = _blocked_until(attempt, current_app.config["LOGIN_FAILURES_PER_ADDRESS"],
                                  LoginAttempt.client_address == attempt.client_address)
    seconds = (max(same_account, same_address) - attempt.attempted_at).total_seconds()
    return max(1, math.ceil(seconds)) if seconds > 0 else 0


def _blocked_until(attempt: LoginAttempt, limit: int, *conditions) -> datetime:
    """Return when the limit-th newest other failure matching conditions leaves the window."""
    oldest_counted = db.session.scalar(
        select(LoginAttempt.attempted_at)
        .where(*conditions, LoginAttempt.attempted_at > attempt.attempted_at - WINDOW,
               LoginAttempt.id != attempt.id)
        .order_by(LoginAttempt.attempted_at.desc()).offset(max(limit, 1) - 1).limit(1))
    return oldest_counted + WINDOW if oldest_counted is not None else attempt.attempted_at


def _prune(now: datetime) -> None:
    """Delete failures too old to count (through the index on attempted_at)."""
    db.session.execute(delete(LoginAttempt).where(LoginAttempt.attempted_at <= now - WINDOW))
