"""Cancelling a job: admins stop a queued or running job; what it left half-made is discarded.

A queued job fails at once (the worker's claim takes only queued jobs, so it never starts);
a running one is marked, and its worker stops it at its next progress report (a second or
so: runtime.ProgressReporter raises JobCancelled), discards its half-made work as on a
failure, and records it as failed with the error "cancelled by an admin".
"""
from sqlalchemy import update

from ..extensions import db
from ..models import Job, utcnow
from .queue import CANCELLED, JobRefused


def cancel_job(job_id: int, user) -> Job:
    """Cancel job_id on behalf of an admin user; return the job (JobRefused if it is over)."""
    job = db.session.get(Job, job_id)
    if job is None:
        raise LookupError(f"no job with id {job_id}")
    queued = db.session.execute(update(Job).where(Job.id == job_id, Job.state == "queued").values(
        state="failed", error=f"{CANCELLED} before it started", cancelled_by_id=user.id,
        finished_at=utcnow()).execution_options(synchronize_session=False)).rowcount
    if not queued:
        running = db.session.execute(update(Job).where(
            Job.id == job_id, Job.state == "running").values(
            cancelled_by_id=user.id, message="cancelling: stops at its next progress report")
            .execution_options(synchronize_session=False)).rowcount
        if not running:
            db.session.rollback()
            raise JobRefused(f"job {job_id} is {job.state} already: nothing to cancel")
    db.session.commit()
    db.session.refresh(job)
    return job
