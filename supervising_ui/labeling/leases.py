"""The lease that holds an image for one labeler, and how labeling writes take their turn.

An image is held while ``leased_to_id`` is set and ``lease_expires_at`` lies ahead; an
expired lease is as good as none. A claim is one conditional UPDATE that only wins if the
image still needs labels and nobody else holds a valid lease on it, committed at once:

- SQLite: the caller read a few candidates without locks; the UPDATE decides who wins, and
  ``serialized_write`` lets one writer in at a time (held_lease and claim_first below);
- PostgreSQL: pg_claim.py reads and claims in one statement, each candidate read
  ``FOR UPDATE SKIP LOCKED``, so concurrent claims skip each other's rows.

The hot paths run prebuilt statements with bound parameters: building SQLAlchemy expressions
per request cost more CPU than the queries themselves.
"""
from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, bindparam, func, or_, select, update

from ..database import open_connection
from ..extensions import db
from ..models import Image
from .settings import ProjectSettings, lease_seconds

try:
    import fcntl
except ImportError:  # not POSIX: SQLite's own busy handler does the waiting
    fcntl = None

IMAGE = Image.__table__


@dataclass(frozen=True)
class Assignment:
    """An image handed to a labeler: its id, when the lease ends and how it was picked."""

    image_id: int
    lease_expires_at: datetime | None
    # "held" (the labeler's own lease again), "uncertainty", "audit", "random",
    # "put_off" (an image the labeler put off with Later), "undo".
    pick: str
    # What the claim read back: original_name, width, height, meta (None: not read).
    image: dict | None = None


def run(statement, **params):
    """Execute a Core statement on the session's connection (no ORM work per row)."""
    return db.session.connection().execute(statement, params)


def is_postgres() -> bool:
    """Return whether the session talks to PostgreSQL."""
    return db.engine.dialect.name == "postgresql"


def statements_commit_alone() -> None:
    """On PostgreSQL, let each statement of this request commit by itself: no BEGIN and no
    COMMIT, two round trips fewer, and a claim's row lock ends with its statement.

    Only for requests that read, or whose writes are each one statement (the claim); a request
    that already holds a connection (a token looked up afresh) keeps its transaction.
    """
    if is_postgres() and open_connection(db.session()) is None:
        db.session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})


def lease_free_or_mine(user_id, now):
    """Return the condition: nobody else holds a valid lease on the image."""
    return or_(IMAGE.c.leased_to_id.is_(None), IMAGE.c.leased_to_id == user_id,
               IMAGE.c.lease_expires_at.is_(None), IMAGE.c.lease_expires_at <= now)


def wanted_labels():
    """The labels an image takes: its labels_wanted (adaptive redundancy) or :labels_per_image."""
    return func.coalesce(IMAGE.c.labels_wanted, bindparam("labels_per_image"))


def takes_labels():
    """The condition: the image still takes a label, fewer than it wants or a gold image (which
    every labeler answers once, whatever its count)."""
    return or_(IMAGE.c.label_count < wanted_labels(), IMAGE.c.gold_class_id.is_not(None))


def completed_by_one_more(one):
    """The condition: one more label completes the image (never a gold image); one: the
    statement's literal 1."""
    return and_(IMAGE.c.label_count + one >= wanted_labels(), IMAGE.c.gold_class_id.is_(None))


# --- serialized writes on SQLite ------------------------------------------------------------

_thread_lock = threading.Lock()
_lock_files: dict[tuple[int, str], int] = {}


@contextmanager
def serialized_write():
    """Around a short labeling write on a SQLite file, let one writer in at a time.

    SQLite admits one writer; the others poll with sleeps of up to 100 ms, which shows as
    long latency tails under load. Waiting here instead (a thread lock, then flock on a file
    beside the database for the other worker processes) wakes the next writer as soon as the
    previous one commits. A no-op on PostgreSQL.
    """
    path = _lock_path()
    if path is None:
        yield
        return
    with _thread_lock:
        descriptor = _lock_file(path)
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(descriptor, fcntl.LOCK_UN)


def _lock_path() -> str | None:
    """Return the lock file of a file-based SQLite database, else None."""
    url = db.engine.url
    if fcntl is None or url.get_backend_name() != "sqlite" or url.database in (None, "",
                                                                                ":memory:"):
        return None
    return url.database + ".write-lock"


def _lock_file(path: str) -> int:
    """Return this process's descriptor of the lock file (flock locks are per open file)."""
    key = (os.getpid(), path)
    if key not in _lock_files:
        _lock_files[key] = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    return _lock_files[key]


# --- holding and claiming ---------------------------------------------------------------------

_HELD_LEASES = (
    select(IMAGE.c.id)
    .where(IMAGE.c.leased_to_id == bindparam("user_id"),
           IMAGE.c.project_id == bindparam("project_id"),
           IMAGE.c.lease_expires_at > bindparam("now"),
           takes_labels())
    .order_by(IMAGE.c.lease_expires_at).limit(2))
# What a claim reads back for the labeler (saves a select per "next"), and for the image file
# and submit requests that follow (access.keep_handed_image).
SHOWN_COLUMNS = (IMAGE.c.original_name, IMAGE.c.width, IMAGE.c.height, IMAGE.c.metadata,
                 IMAGE.c.storage_key, IMAGE.c.content_hash)
_REFRESH_LEASE = (
    update(IMAGE)
    .where(IMAGE.c.id == bindparam("image_id"), IMAGE.c.leased_to_id == bindparam("user_id"))
    .values(lease_expires_at=bindparam("expires_at"))
    .returning(*SHOWN_COLUMNS))
# The claim: won only if the image still needs labels and nobody else holds a valid lease.
_CLAIM = (
    update(IMAGE)
    .where(IMAGE.c.id == bindparam("image_id"),
           takes_labels(),
           lease_free_or_mine(bindparam("user_id"), bindparam("now")))
    .values(leased_to_id=bindparam("user_id"), lease_expires_at=bindparam("expires_at"))
    .returning(*SHOWN_COLUMNS))


def held_lease(project: ProjectSettings, user_id: int, now: datetime,
               after_image_id: int | None) -> Assignment | None:
    """Return the user's own valid lease in this project (refreshed), so a reload burns nothing."""
    held = [image_id for image_id in run(
        _HELD_LEASES, user_id=user_id, project_id=project.id, now=now,
        labels_per_image=project.labels_per_image).scalars() if image_id != after_image_id]
    if not held:
        return None
    expires_at = now + timedelta(seconds=lease_seconds())
    with serialized_write():
        shown = run(_REFRESH_LEASE, image_id=held[0], user_id=user_id,
                    expires_at=expires_at).first()
        db.session.commit()
    return Assignment(held[0], expires_at, "held", shown_fields(shown)) if shown else None


def claim_first(candidates: list[int], params: dict) -> tuple[int, dict] | None:
    """Lease (and commit) the first candidate nobody else holds; return (id, shown fields).

    params holds the claim's other values: labels_per_image, user_id, now, expires_at.
    The conditional UPDATE decides, and the transaction lasts from that UPDATE to its commit
    (SQLite). When every candidate is lost the transaction is rolled back here, the claim's own.
    """
    with serialized_write():
        for image_id in candidates:
            won = run(_CLAIM, **params, image_id=image_id).first()
            if won is not None:
                db.session.commit()
                return image_id, shown_fields(won)
        db.session.rollback()
    return None


def shown_fields(row) -> dict:
    """Return the image fields a claim read back (SHOWN_COLUMNS' values, in order)."""
    return {"original_name": row[0], "width": row[1], "height": row[2], "meta": row[3],
            "storage_key": row[4], "content_hash": row[5]}
