"""Accounts: users, their API tokens, login attempts and project memberships."""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask_login import UserMixin
from werkzeug.security import check_password_hash, generate_password_hash

from ..extensions import db
from .common import utcnow

# A reviewer labels and reviews others' labels (the review queue) but does not administer.
ROLES = ("admin", "reviewer", "labeler")


class User(UserMixin, db.Model):
    """A person who logs in: an admin or a labeler."""

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    username: so.Mapped[str] = so.mapped_column(sa.String(80), unique=True)
    password_hash: so.Mapped[str] = so.mapped_column(sa.String(256))
    role: so.Mapped[str] = so.mapped_column(sa.String(16), default="labeler")
    active: so.Mapped[bool] = so.mapped_column(sa.Boolean, default=True)
    created_at: so.Mapped[datetime] = so.mapped_column(sa.DateTime, default=utcnow)
    # Part of every session cookie; raising it (logout, new password, role or state change)
    # ends every copy of every cookie issued before.
    session_version: so.Mapped[int] = so.mapped_column(sa.Integer, default=1, server_default="1")

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

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    user_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("user.id"), index=True)
    token_digest: so.Mapped[str] = so.mapped_column(sa.String(64), unique=True)
    # What the owner calls it ("nightly import"), so that they know which one to revoke.
    label: so.Mapped[str] = so.mapped_column(sa.String(120), default="", server_default="")
    created_at: so.Mapped[datetime] = so.mapped_column(sa.DateTime, default=utcnow)
    expires_at: so.Mapped[datetime] = so.mapped_column(sa.DateTime)
    # Refreshed at most once a minute, so that API requests do not each write a row.
    last_used_at: so.Mapped[datetime | None] = so.mapped_column(sa.DateTime)
    revoked_at: so.Mapped[datetime | None] = so.mapped_column(sa.DateTime)

    user: so.Mapped[User] = so.relationship()

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
        sa.Index("ix_login_attempt_username", "username", "attempted_at"),
        sa.Index("ix_login_attempt_address", "client_address", "attempted_at"),
    )

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    # The name as typed (cut to the column's length): unknown names are throttled too.
    username: so.Mapped[str] = so.mapped_column(sa.String(80))
    client_address: so.Mapped[str] = so.mapped_column(sa.String(64))
    attempted_at: so.Mapped[datetime] = so.mapped_column(sa.DateTime, default=utcnow, index=True)


class ProjectMember(db.Model):
    """A member of a members_only project; the key (user_id, project_id) serves every lookup."""

    user_id: so.Mapped[int] = so.mapped_column(
        sa.ForeignKey("user.id", ondelete="CASCADE"), primary_key=True)
    project_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("project.id", ondelete="CASCADE"),
                                                  primary_key=True)
