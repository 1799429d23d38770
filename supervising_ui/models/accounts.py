"""Accounts: users, their API tokens, login attempts and project memberships."""
from __future__ import annotations

from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import Boolean, DateTime, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from ..extensions import db
from .common import utcnow

# A reviewer labels and reviews others' labels (the review queue) but does not administer.
ROLES = ("admin", "reviewer", "labeler")


class User(UserMixin, db.Model):
    """A person who logs in: an admin or a labeler."""

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(16), default="labeler")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # Part of every session cookie; raising it (logout, new password, role or state change)
    # ends every copy of every cookie issued before.
    session_version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")

    def set_password(self, password: str) -> None:
        """Store a salted hash of password."""
        self.password_hash = generate_password_hash(password)

    def check_password(self, password: str) -> bool:
        """Return whether password matches the stored hash."""
        return check_password_hash(self.password_hash, password)

    def get_id(self) -> str:
        """Return what the session keeps of this user: "id:session_version"."""
        return f"{self.id}:{self.session_version}"

    @property
    def is_active(self) -> bool:
        """Deactivated users cannot log in or use tokens."""
        return self.active

    @property
    def is_admin(self) -> bool:
        """Return whether this user has the admin role."""
        return self.role == "admin"

    @property
    def may_review(self) -> bool:
        """Return whether this user may use the review queue (admins and reviewers)."""
        return self.role in ("admin", "reviewer")


class ApiToken(db.Model):
    """A bearer token for scripts; only its SHA-256 digest is stored."""

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id"), index=True)
    token_digest: Mapped[str] = mapped_column(String(64), unique=True)
    # What the owner calls it ("nightly import"), so that they know which one to revoke.
    label: Mapped[str] = mapped_column(String(120), default="", server_default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    # Refreshed at most once a minute, so that API requests do not each write a row.
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)

    user: Mapped[User] = relationship()

    @property
    def state(self) -> str:
        """Return "revoked", "expired" or "live"."""
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if self.expires_at <= utcnow() else "live"


class LoginAttempt(db.Model):
    """A failed login (or one still being checked), counted per account and client address.

    Kept in the database so that every server process and host sees the same count; rows
    older than the throttling window are deleted as new failures come in.
    """

    __table_args__ = (
        Index("ix_login_attempt_username", "username", "attempted_at"),
        Index("ix_login_attempt_address", "client_address", "attempted_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # The name as typed (cut to the column's length): unknown names are throttled too.
    username: Mapped[str] = mapped_column(String(80))
    client_address: Mapped[str] = mapped_column(String(64))
    attempted_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)


class ProjectMember(db.Model):
    """A member of a members_only project; the key (user_id, project_id) serves every lookup."""

    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"),
                                            primary_key=True)
