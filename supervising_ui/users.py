"""User management by admins: roles, deactivation, and who owns imported labels."""
from sqlalchemy import func, select

from .auth import AccountError
from .extensions import db
from .models import ROLES, User


def get_user(user_id: int) -> User:
    """Return the user with this id or raise AccountError."""
    user = db.session.get(User, user_id)
    if user is None:
        raise AccountError(f"no user with id {user_id}")
    return user


def find_user_by_name(username: str) -> User | None:
    """Return the user called username, or None."""
    return db.session.scalar(select(User).where(User.username == username))


def list_users() -> list[User]:
    """Return every user, admins first, then by name."""
    return list(db.session.scalars(select(User).order_by(User.role, User.username)))


def _active_admin_count() -> int:
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
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    if user.id == acting.id and role != "admin":
        raise AccountError("you cannot take the admin role from yourself")
    if user.role == "admin" and role != "admin" and user.active and _active_admin_count() <= 1:
        raise AccountError("the last active admin must stay an admin")
    user.role = role
    db.session.commit()


def label_owner(username: str | None) -> User | None:
    """Return the admin to whom imported labels go: the named one, else the first admin."""
    if username:
        user = db.session.scalar(select(User).where(User.username == username))
        if user is None:
            raise AccountError(f"no user called {username!r}")
        return user
    return db.session.scalar(select(User).where(User.role == "admin", User.active.is_(True))
                             .order_by(User.id))
