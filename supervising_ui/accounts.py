"""Accounts: users, passwords, roles and API tokens (the service; the views are in auth.py)."""
import hashlib
import secrets

from sqlalchemy import bindparam, func, select

from .extensions import db
from .models import ROLES, ApiToken, User, utcnow

MIN_PASSWORD_LENGTH = 8
# Built once: every API request runs it.
_USER_OF_TOKEN = select(User).join(ApiToken, ApiToken.user_id == User.id).where(
    ApiToken.token_digest == bindparam("digest"), ApiToken.revoked_at.is_(None),
    User.active.is_(True))


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


def active_user(user_id: int) -> User | None:
    """Return the user with this id if the account is active, else None."""
    user = db.session.get(User, user_id)
    return user if user is not None and user.active else None


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
            raise AccountError(f"no user called {username!r}")
        return user
    return first_active_admin()


def generate_password() -> str:
    """Return a fresh random password for a new account."""
    return secrets.token_urlsafe(12)


def check_password_strength(password: str) -> None:
    """Refuse passwords too short to be safe."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")


def _check_role(role: str) -> None:
    """Refuse a role that is not one of ROLES."""
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")


def create_user(username: str, role: str = "labeler", password: str | None = None):
    """Create a user; return (user, password), the password generated when none is given."""
    username = username.strip()
    if not username:
        raise AccountError("a user name is required")
    _check_role(role)
    if find_user(username) is not None:
        raise AccountError(f"user {username!r} already exists")
    password = password if password is not None else generate_password()
    check_password_strength(password)
    user = User(username=username, role=role)
    user.set_password(password)
    db.session.add(user)
    db.session.commit()
    return user, password


def authenticate(username: str, password: str) -> User | None:
    """Return the active user with these credentials, or None."""
    user = find_user(username)
    if user is None or not user.active or not user.check_password(password):
        return None
    return user


def change_password(user: User, current: str, new: str) -> None:
    """Set a new password for user after checking the current one."""
    if not user.check_password(current):
        raise AccountError("the current password is wrong")
    check_password_strength(new)
    user.set_password(new)
    db.session.commit()


def _active_admin_count() -> int:
    """Return how many active admin accounts there are."""
    return db.session.scalar(select(func.count()).select_from(User).where(
        User.role == "admin", User.active.is_(True)))


def set_active(user: User, active: bool, acting: User) -> None:
    """Deactivate or reactivate user; nobody can deactivate themselves."""
    if not active and user.id == acting.id:
        raise AccountError("you cannot deactivate your own account")
    user.active = active
    db.session.commit()


def set_role(user: User, role: str, acting: User) -> None:
    """Give user the role admin or labeler; the last active admin keeps the admin role."""
    _check_role(role)
    if user.id == acting.id and role != "admin":
        raise AccountError("you cannot take the admin role from yourself")
    if user.role == "admin" and role != "admin" and user.active and _active_admin_count() <= 1:
        raise AccountError("the last active admin must stay an admin")
    user.role = role
    db.session.commit()


def token_digest(token: str) -> str:
    """Return the SHA-256 hex digest under which a token is stored."""
    return hashlib.sha256(token.encode()).hexdigest()


def user_of_token(token: str) -> User | None:
    """Return the active user whose live API token this is, or None."""
    return db.session.scalar(_USER_OF_TOKEN, {"digest": token_digest(token)})


def create_api_token(user: User) -> str:
    """Create and store a new API token for user; return the token (shown once)."""
    token = secrets.token_urlsafe(32)
    db.session.add(ApiToken(user_id=user.id, token_digest=token_digest(token)))
    db.session.commit()
    return token


def revoke_api_tokens(user: User) -> int:
    """Revoke every live token of user; return how many."""
    tokens = db.session.scalars(select(ApiToken).where(
        ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))).all()
    for api_token in tokens:
        api_token.revoked_at = utcnow()
    db.session.commit()
    return len(tokens)
