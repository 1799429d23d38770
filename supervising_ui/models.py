"""Database models (SQLAlchemy 2 typed mappings)."""
from __future__ import annotations

import random
from datetime import datetime, timezone

from flask_login import UserMixin
from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from .extensions import db

ROLES = ("admin", "labeler")
SERVING_ORDERS = ("random", "least_confidence", "margin", "entropy")
JOB_STATES = ("queued", "running", "done", "failed")


def utcnow() -> datetime:
    """Return the current time as a naive UTC datetime (the form stored in every column)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def new_random_key() -> float:
    """Return the random sort key that lets assignment pick a random image through an index."""
    return random.random()


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


class Project(db.Model):
    """A labeling project: a class list, its images, its learning loop and who may label it."""

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    labels_per_image: Mapped[int] = mapped_column(Integer, default=1)
    # Metadata column that groups correlated images (e.g. source observation) for held-out splits.
    group_column: Mapped[str | None] = mapped_column(String(80))
    serving_order: Mapped[str] = mapped_column(String(32), default="random")
    # Share of uncertainty-ordered picks replaced by random ones, as an unbiased audit stream.
    audit_share: Mapped[float] = mapped_column(Float, default=0.2)
    # Share of images on which no suggestion is shown, to measure anchoring.
    hide_suggestion_share: Mapped[float] = mapped_column(Float, default=0.0)
    # Retrain automatically after this many new labels; 0 turns it off.
    retrain_every: Mapped[int] = mapped_column(Integer, default=0)
    # "Label this batch first": the serving order keeps to this import batch until it is done.
    # No foreign key: it would make project and import_batch refer to each other.
    priority_batch_id: Mapped[int | None] = mapped_column(Integer)
    members_only: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    # The learning loop's models see the images in colour (red, green, blue) instead of grayscale.
    color_input: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    classes: Mapped[list[LabelClass]] = relationship(
        back_populates="project", order_by="LabelClass.position", cascade="all, delete-orphan")

    @property
    def class_names(self) -> list[str]:
        """Return the class names in their display order."""
        return [label_class.name for label_class in self.classes]


class ProjectMember(db.Model):
    """A member of a members_only project; the key (user_id, project_id) serves every lookup."""

    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"),
                                            primary_key=True)


class LabelClass(db.Model):
    """One class of a project's ordered class list."""

    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    position: Mapped[int] = mapped_column(Integer, default=0)

    project: Mapped[Project] = relationship(back_populates="classes")


class ImportBatch(db.Model):
    """One import run into a project: when, by whom, from where, and how many images it added."""

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    # What was imported, in words: "manifest manifest.csv", "upload of 12 files"...
    source: Mapped[str] = mapped_column(String(512), default="")
    # Kept in step with the images committed, in the same transactions.
    image_count: Mapped[int] = mapped_column(Integer, default=0)

    created_by: Mapped[User | None] = relationship()


class Image(db.Model):
    """An image in managed storage; served by id only, never by a path from a request."""

    __table_args__ = (
        UniqueConstraint("project_id", "content_hash"),
        # Assignment walks this index from a random point: cost stays flat with project size.
        Index("ix_image_pick", "project_id", "label_count", "random_key"),
        # A labeler's own leases, found without scanning the project (a reload resumes one).
        Index("ix_image_lease", "leased_to_id", "lease_expires_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id"))
    storage_key: Mapped[str] = mapped_column(String(255))
    original_name: Mapped[str] = mapped_column(String(512), index=True)
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    # Free-form metadata: instrument, sol, source observation, acquisition time...
    meta: Mapped[dict] = mapped_column("metadata", JSON, default=dict)
    random_key: Mapped[float] = mapped_column(Float, default=new_random_key)
    # Number of labels so far; kept in step with the label table by the labeling code.
    label_count: Mapped[int] = mapped_column(Integer, default=0)
    leased_to_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    # The import run that added the image (None: imported before batches were recorded).
    import_batch_id: Mapped[int | None] = mapped_column(ForeignKey("import_batch.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    project: Mapped[Project] = relationship()


class Label(db.Model):
    """One labeler's decision on one image, with what the model suggested at the time."""

    __table_args__ = (
        UniqueConstraint("image_id", "user_id"),
        UniqueConstraint("user_id", "request_id"),
        Index("ix_label_project_created", "project_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id"))
    image_id: Mapped[int] = mapped_column(ForeignKey("image.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id"), index=True)
    label_class_id: Mapped[int] = mapped_column(ForeignKey("label_class.id"), index=True)
    # Client-chosen id of the submit; a retry with the same id returns the same label.
    request_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    seconds_spent: Mapped[float | None] = mapped_column(Float)
    suggestion_shown: Mapped[bool] = mapped_column(Boolean, default=False)
    suggested_class_id: Mapped[int | None] = mapped_column(ForeignKey("label_class.id"))
    suggestion_confidence: Mapped[float | None] = mapped_column(Float)
    suggestion_model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_version.id"))

    image: Mapped[Image] = relationship()
    user: Mapped[User] = relationship()
    label_class: Mapped[LabelClass] = relationship(foreign_keys=[label_class_id])
    suggested_class: Mapped[LabelClass | None] = relationship(foreign_keys=[suggested_class_id])


class Skip(db.Model):
    """A labeler put an image off with "Later": others get it first."""

    __table_args__ = (UniqueConstraint("image_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("image.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ModelVersion(db.Model):
    """A trained classifier of a project: its files on disk and its held-out metrics."""

    __table_args__ = (UniqueConstraint("project_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32))
    path: Mapped[str] = mapped_column(String(512))
    num_labels: Mapped[int] = mapped_column(Integer, default=0)
    metrics: Mapped[dict] = mapped_column(JSON, default=dict)
    is_serving: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Prediction(db.Model):
    """A model version's prediction for one image, with the scores that rank its uncertainty."""

    __table_args__ = (
        UniqueConstraint("model_version_id", "image_id"),
        # One index per serving order: least confidence, smallest margin, largest entropy.
        Index("ix_prediction_confidence", "model_version_id", "confidence"),
        Index("ix_prediction_margin", "model_version_id", "margin"),
        Index("ix_prediction_entropy", "model_version_id", "entropy"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_version.id"))
    image_id: Mapped[int] = mapped_column(ForeignKey("image.id"), index=True)
    label_class_id: Mapped[int] = mapped_column(ForeignKey("label_class.id"))
    # Probability of the predicted class.
    confidence: Mapped[float] = mapped_column(Float)
    # Top probability minus the second one.
    margin: Mapped[float] = mapped_column(Float)
    # Shannon entropy of the distribution, in nats.
    entropy: Mapped[float] = mapped_column(Float)
    # Full distribution: {class name: probability}.
    probabilities: Mapped[dict] = mapped_column(JSON, default=dict)

    label_class: Mapped[LabelClass] = relationship()


class Job(db.Model):
    """Background work (import, retraining) whose progress a page polls."""

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int | None] = mapped_column(ForeignKey("project.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    message: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str | None] = mapped_column(Text)
    log: Mapped[str] = mapped_column(Text, default="")
    params: Mapped[dict] = mapped_column(JSON, default=dict)
    result: Mapped[dict] = mapped_column(JSON, default=dict)
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_version.id"))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    # Refreshed by the worker while it runs; a stale heartbeat means the worker died.
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime)
    # The worker process that claimed the job: a reaper on the same host sees at once when
    # that process is gone, without waiting for the heartbeat to go stale.
    worker_pid: Mapped[int | None] = mapped_column(Integer)
    worker_host: Mapped[str | None] = mapped_column(String(255))
    # Times a worker shutdown (SIGTERM) cut the job off; the first re-queues it, the second fails it.
    interruptions: Mapped[int] = mapped_column(Integer, default=0)


# --- The search index: what supervising_ui/search reads, kept current by search/index.py ------


class SearchState(db.Model):
    """A project's search generation: every write to its search rows raises it by one."""

    project_id: Mapped[int] = mapped_column(ForeignKey("project.id"), primary_key=True,
                                            autoincrement=False)
    generation: Mapped[int] = mapped_column(Integer, default=0)


class SearchImage(db.Model):
    """An image as search sees it: consensus label, serving prediction, the class they give."""

    __table_args__ = (
        # A search process catches up by reading only the rows written since it last looked.
        Index("ix_search_image_generation", "project_id", "generation"),
        Index("ix_search_image_filename", "project_id", "filename"),
    )

    image_id: Mapped[int] = mapped_column(ForeignKey("image.id"), primary_key=True,
                                          autoincrement=False)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id"))
    generation: Mapped[int] = mapped_column(Integer, default=0)
    filename: Mapped[str] = mapped_column(String(512))
    # Class ids carry no foreign key: a class merge rewrites them (search/index.py).
    label_class_id: Mapped[int | None] = mapped_column(Integer)
    predicted_class_id: Mapped[int | None] = mapped_column(Integer)
    confidence: Mapped[float | None] = mapped_column(Float)
    model_version_id: Mapped[int | None] = mapped_column(Integer)
    # The human label if there is one, else the prediction; 1.0 for a human label.
    class_id: Mapped[int | None] = mapped_column(Integer)
    class_confidence: Mapped[float | None] = mapped_column(Float)
    # 0 no consensus label, 1 labeled, 2 labeled and the serving model disagrees.
    status: Mapped[int] = mapped_column(SmallInteger, default=0)


class SearchColumn(db.Model):
    """A metadata key of a project's images, as a search facet."""

    __table_args__ = (UniqueConstraint("project_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id"))
    key: Mapped[str] = mapped_column(String(120))


class SearchValue(db.Model):
    """One distinct value of a metadata column: its text and, for numbers, the number."""

    __table_args__ = (UniqueConstraint("column_id", "text"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    column_id: Mapped[int] = mapped_column(ForeignKey("search_column.id"))
    text: Mapped[str] = mapped_column(String(512))
    number: Mapped[float | None] = mapped_column(Float)


class SearchMeta(db.Model):
    """An image's value in one metadata column (the indexed form of Image.meta)."""

    __table_args__ = (
        Index("ix_search_meta_value", "project_id", "column_id", "value_id", "image_id"),
    )

    image_id: Mapped[int] = mapped_column(ForeignKey("image.id"), primary_key=True,
                                          autoincrement=False)
    column_id: Mapped[int] = mapped_column(ForeignKey("search_column.id"), primary_key=True,
                                           autoincrement=False)
    value_id: Mapped[int] = mapped_column(ForeignKey("search_value.id"))
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id"))
