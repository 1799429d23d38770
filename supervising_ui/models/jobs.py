"""Background jobs: imports, retrains, classifications."""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
import sqlalchemy.orm as so

from ..extensions import db
from .common import utcnow

JOB_STATES = ("queued", "running", "done", "failed")


class Job(db.Model):
    """Background work (import, retraining) whose progress a page polls."""

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    project_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("project.id"), index=True)
    kind: so.Mapped[str] = so.mapped_column(sa.String(32))
    state: so.Mapped[str] = so.mapped_column(sa.String(16), default="queued", index=True)
    progress: so.Mapped[float] = so.mapped_column(sa.Float, default=0.0)
    message: so.Mapped[str] = so.mapped_column(sa.Text, default="")
    error: so.Mapped[str | None] = so.mapped_column(sa.Text)
    log: so.Mapped[str] = so.mapped_column(sa.Text, default="")
    params: so.Mapped[dict] = so.mapped_column(sa.JSON, default=dict)
    result: so.Mapped[dict] = so.mapped_column(sa.JSON, default=dict)
    model_version_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("model_version.id"))
    created_by_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("user.id"))
    created_at: so.Mapped[datetime] = so.mapped_column(sa.DateTime, default=utcnow)
    started_at: so.Mapped[datetime | None] = so.mapped_column(sa.DateTime)
    finished_at: so.Mapped[datetime | None] = so.mapped_column(sa.DateTime)
    # Refreshed by the worker while it runs; a stale heartbeat means the worker died.
    heartbeat_at: so.Mapped[datetime | None] = so.mapped_column(sa.DateTime)
    # The worker process that claimed the job: a reaper on the same host sees at once when
    # that process is gone, without waiting for the heartbeat to go stale.
    worker_pid: so.Mapped[int | None] = so.mapped_column(sa.Integer)
    worker_host: so.Mapped[str | None] = so.mapped_column(sa.String(255))
    # Times a worker shutdown (SIGTERM) cut the job off; the first re-queues it, the second fails it.
    interruptions: so.Mapped[int] = so.mapped_column(sa.Integer, default=0)
    # The admin who cancelled the job: a queued one fails at once, a running one stops at its
    # next progress report and its half-made work is discarded (jobs/cancel.py).
    cancelled_by_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("user.id"))


# --- The search index: what supervising_ui/search reads, kept current by search/index.py ------
