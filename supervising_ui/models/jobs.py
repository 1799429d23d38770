"""Background jobs: imports, retrains, classifications."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from .common import utcnow

JOB_STATES = ("queued", "running", "done", "failed")


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
    # The admin who cancelled the job: a queued one fails at once, a running one stops at its
    # next progress report and its half-made work is discarded (jobs/cancel.py).
    cancelled_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))


# --- The search index: what supervising_ui/search reads, kept current by search/index.py ------
