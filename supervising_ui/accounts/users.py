"""Accounts: users, passwords, roles, sessions and API tokens (the service; views in views.py)."""
import functools
import hashlib
import re
import secrets
from datetime import timedelta
from importlib import resources

from flask import current_app
from sqlalchemy import bindparam, func, or_, select, update
from sqlalchemy.orm import joinedload
from werkzeug.security import check_password_hash, generate_password_hash

from ..echo import shorten
from ..extensions import db
from ..models import ROLES, ApiToken, User, utcnow
from . import login_cache

MIN_PASSWORD_LENGTH = 10
# Common passwords (those of MIN_PASSWORD_LENGTH or more characters), shipped beside this module.
COMMON_PASSWORDS_FILE = "common_passwords.txt"
MAX_TOKEN_DAYS = 3650
TOKEN_LABEL_LENGTH = 120
# A token's last-used time is this coarse, so that the API does not write a row per request.
LAST_USED_RESOLUTION = timedelta(minutes=1)
LARGEST_ID = 2**63 - 1
_SESSION_ID = re.compile(r"([0-9]{1,18}):([0-9]{1,18})")
# Built once: every API request runs it.
_LIVE_TOKEN = select(User, ApiToken.id, ApiToken.expires_at, ApiToken.last_used_at).join(
    ApiToken, ApiToken.user_id == User.id).where(
    ApiToken.token_digest == bindparam("digest"), ApiToken.revoked_at.is_(None),
    ApiToken.expires_at > bindparam("now"), User.active.is_(True))


class AccountError(ValueError):
    """A request about accounts that cannot be carried out, with a message for the user."""


def get_user(user_id: int) -> User:
    """Return the user with this id or raise AccountError."""
    user = db.session.get(User, user_id)
    if user is None:
        raise AccountError(f"no user with id {user_id}")
    return user


def find_user(username: str) -> User | None:
    """Return the user called username (surrounding blanks ignored), or None."""
    return db.session.scalar(select(User).where(User.username == username.strip()))


def list_users() -> list[User]:
    """Return every user, admins first, then by name."""
    return list(db.session.scalars(select(User).order_by(User.role, User.username)))


def first_active_admin() -> User | None:
    """Return the oldest active admin account, or None when there is none."""
    return db.session.scalar(select(User).where(User.role == "admin", User.active.is_(True))
                             .order_by(User.id))


def label_owner(username: str | None) -> User | None:
    """Return the admin to whom imported labels go: the named one, else the first admin."""
    if username:
        user = find_user(username)
        if user is None:
            raise AccountError(f"no user called {shorten(username)!r}")
        return user
    return first_active_admin()


def generate_password(username: str = "") -> str:
    """Return a fresh random password for a new account (one that check_password_strength takes)."""
    while True:
        password = secrets.token_urlsafe(12)
        if password.strip().casefold() != username.strip().casefold():
            return password


@functools.cache
def common_passwords() -> frozenset[str]:
    """Return the shipped list of common passwords (lowercase), read once per process."""
    text = resources.files(__package__).joinpath(COMMON_PASSWORDS_FILE).read_text("utf-8")
    return frozenset(line.strip() for line in text.splitlines()
                     if line.strip() and not line.startswith("#"))


def check_password_strength(password: str, username: str = "") -> None:
    """Refuse passwords that are blank, short, the user name or on the common-password list."""
    if not password.strip():
        raise AccountError("a password cannot be blank")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    if username and password.strip().casefold() == username.strip().casefold():
        raise AccountError("a password cannot be the user name")
    if password.strip().lower() in common_passwords():
        raise AccountError("that password is on a list of common passwords that attackers "
                           "try first: choose another")


def _check_role(role: str) -> None:
    """Refuse a role that is not one of ROLES."""
    if role not in ROLES:
        raise AccountError(f"unknown role {shorten(role)!r}: use one of {', '.join(ROLES)}")


def create_user(username: str, role: str = "labeler", password: str | None = None):
    """Create a user; return (user, password), the password generated when none is given."""
    username = username.strip()
    if not username:
        raise AccountError("a user name is required")
    _check_role(role)
    if find_user(username) is not None:
        raise AccountError(f"user {shorten(username)!r} already exists")
    password = password if password is not None else generate_password(username)
    check_password_strength(password, username)
    user = User(username=username, role=role)
    user.set_password(password)
    db.session.add(user)
    db.session.commit()
    return user, password


@functools.cache
def _dummy_hash() -> str:
    """Return a hash of a random password, made like every user's (once per process)."""
    return generate_password_hash(secrets.token_urlsafe(16))


def _storable(text: str) -> bool:
    """Return whether text could be a stored name or password (no NUL, valid UTF-8)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def authenticate(username: str, password: str) -> User | None:
    """Return the active user with these credentials, or None.

    Unknown and deactivated accounts cost the same hash work as active ones, so that the
    answer time does not tell which user names exist.
    """
    user = find_user(username) if _storable(username) else None
    if not _storable(password):
        password = ""  # matches no stored hash, and still costs one hash check
    matches = check_password_hash(user.password_hash if user else _dummy_hash(), password)
    return user if user is not None and user.active and matches else None


def change_password(user: User, current: str, new: str) -> None:
    """Set a new password for user after checking the current one; end their other sessions."""
    if not user.check_password(current):
        raise AccountError("the current password is wrong")
    set_new_password(user, new)


def set_new_password(user: User, new: str) -> None:
    """Give user a new password (checked for strength) and end their other sessions."""
    check_password_strength(new, user.username)
    user.set_password(new)
    _raise_session_version(user)
    db.session.commit()


def session_user(session_id: str) -> User | None:
    """Return the active user of a session id ("id:session_version") that is still current.

    The user row is remembered for a few seconds (login_cache.py).
    """
    match = _SESSION_ID.fullmatch(session_id)
    if match is None:  # e.g. a cookie from before session versions
        return None
    user_id = int(match.group(1))
    kept = login_cache.remembered(("user", user_id), lambda: _detached_user(user_id))
    if kept is None or not kept.active or kept.session_version != int(match.group(2)):
        return None
    return login_cache.attach(kept)


def _detached_user(user_id: int) -> User | None:
    """Return a copy of the user that belongs to no session, or None."""
    user = db.session.get(User, user_id)
    return login_cache.detached_user(user) if user is not None else None


def end_sessions(user: User) -> None:
    """End every session of user: every copy of every cookie issued so far stops working."""
    _raise_session_version(user)
    db.session.commit()


def _raise_session_version(user: User) -> None:
    """Raise user's session version in the database (not from a stale copy in memory)."""
    user.session_version = User.session_version + 1


def _active_admin_count() -> int:
    """Return how many active admin accounts there are."""
    return db.session.scalar(select(func.count()).select_from(User).where(
        User.role == "admin", User.active.is_(True)))


def set_active(user: User, active: bool, acting: User) -> None:
    """Deactivate or reactivate user; nobody can deactivate themselves."""
    if not active and user.id == acting.id:
        raise AccountError("you cannot deactivate your own account")
    if user.active != active:
        user.active = active
        _raise_session_version(user)
    db.session.commit()


def set_role(user: User, role: str, acting: User) -> None:
    """Give user the role admin or labeler; the last active admin keeps the admin role."""
    _check_role(role)
    if user.id == acting.id and role != "admin":
        raise AccountError("you cannot take the admin role from yourself")
    if user.role == "admin" and role != "admin" and user.active and _active_admin_count() <= 1:
        raise AccountError("the last active admin must stay an admin")
    if user.role != role:
        user.role = role
        _raise_session_version(user)
    db.session.commit()


def token_digest(token: str) -> str:
    """Return the SHA-256 hex digest under which a token is stored."""
    return hashlib.sha256(token.encode()).hexdigest()


def user_of_token(token: str) -> User | None:
    """Return the active user whose live (unrevoked, unexpired) API token this is, or None.

    What the lookup found is remembered for a few seconds (login_cache.py); the expiry is
    checked on every call, and the last-used time is written at most once a minute.
    """
    now = utcnow()
    digest = token_digest(token)
    found = login_cache.remembered(("token", digest), lambda: _live_token(digest, now))
    if found is None or found["expires_at"] <= now:
        return None
    if found["last_used_at"] is None or now - found["last_used_at"] >= LAST_USED_RESOLUTION:
        _record_use(found["token_id"], now)
        found["last_used_at"] = now  # shared with other requests: they need not write it
    return login_cache.attach(found["user"])


def _live_token(digest: str, now) -> dict | None:
    """Return what the live token with this digest says (its user's columns, its id, expiry and
    last use), or None."""
    row = db.session.execute(_LIVE_TOKEN, {"digest": digest, "now": now}).first()
    if row is None:
        return None
    user, token_id, expires_at, last_used_at = row
    return {"user": login_cache.detached_user(user), "token_id": token_id,
            "expires_at": expires_at, "last_used_at": last_used_at}


def _record_use(token_id: int, now) -> None:
    """Set a token's last-used time, unless another request did so within the resolution."""
    db.session.execute(update(ApiToken).where(
        ApiToken.id == token_id,
        or_(ApiToken.last_used_at.is_(None),
            ApiToken.last_used_at <= now - LAST_USED_RESOLUTION)).values(last_used_at=now))
    db.session.commit()


def create_api_token(user: User, label: str = "", expires_days: int | None = None) -> str:
    """Create and store a new API token for user; return the token (shown once).

    It expires after expires_days, by default the API_TOKEN_DAYS setting.
    """
    days = current_app.config["API_TOKEN_DAYS"] if expires_days is None else expires_days
    if not 1 <= days <= MAX_TOKEN_DAYS:
        raise AccountError(f"a token lasts from 1 to {MAX_TOKEN_DAYS} days")
    label = label.strip()
    if len(label) > TOKEN_LABEL_LENGTH or not _storable(label):
        raise AccountError(f"a token label has at most {TOKEN_LABEL_LENGTH} characters")
    token = secrets.token_urlsafe(32)
    now = utcnow()
    db.session.add(ApiToken(user_id=user.id, token_digest=token_digest(token), label=label,
                            created_at=now, expires_at=now + timedelta(days=days)))
    db.session.commit()
    return token


def visible_tokens(viewer: User) -> list[ApiToken]:
    """Return the tokens viewer may see and revoke (an admin: everyone's), newest first."""
    query = select(ApiToken).options(joinedload(ApiToken.user)).order_by(
        ApiToken.created_at.desc(), ApiToken.id.desc())
    if not viewer.is_admin:
        query = query.where(ApiToken.user_id == viewer.id)
    return list(db.session.scalars(query))


def revoke_token(token_id: int, acting: User) -> ApiToken:
    """Revoke one token (the acting user's own, or anyone's for an admin); return it."""
    api_token = db.session.get(ApiToken, token_id, options=[joinedload(ApiToken.user)]) \
        if 1 <= token_id <= LARGEST_ID else None
    if api_token is None or (api_token.user_id != acting.id and not acting.is_admin):
        raise AccountError(f"no token with id {token_id}")  # the same for others' tokens
    if api_token.revoked_at is None:
        api_token.revoked_at = utcnow()
        db.session.commit()
    return api_token


def revoke_api_tokens(user: User) -> int:
    """Revoke every live token of user; return how many."""
    now = utcnow()
    tokens = db.session.scalars(select(ApiToken).where(
        ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None),
        ApiToken.expires_at > now)).all()
    for api_token in tokens:
        api_token.revoked_at = now
    db.session.commit()
    return len(tokens)
