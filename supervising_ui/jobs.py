"""Background work: a job is a row whose progress pages poll; Huey carries it to a worker.

A handler is registered per job kind in create_app with ``register_handler(kind, function)``
and called as ``function(job, reporter)`` inside an app context in the worker process; it
returns a dict stored as the job's result. The web process only ever calls ``submit()``;
pages poll ``status_report()`` through the one job-status endpoint (job_views.py).
"""
import logging
import threading
import time
import traceback
from datetime import timedelta
from pathlib import Path
from typing import Callable

from flask import Flask, current_app
from huey import MemoryHuey, RedisHuey, SqliteHuey
from sqlalchemy import and_, exists, select, update
from sqlalchemy.orm import aliased

from .extensions import db
from .models import Job, ModelVersion, Project, utcnow
from .timestamps import iso_utc

log = logging.getLogger(__name__)

HANDLERS: dict[str, Callable] = {}
# Kinds of which a project runs one at a time.
EXCLUSIVE_KINDS = {"retrain"}
# The job log keeps its last this many characters.
LOG_LIMIT = 64_000
# A queued exclusive job waits this long before trying again while another one runs.
RETRY_DELAY_SECONDS = 3


class JobBusy(Exception):
    """A job of this kind is already queued or running for the project."""

    def __init__(self, job: Job):
        super().__init__(f"job {job.id} ({job.kind}) is already {job.state} for this project")
        self.job = job


class JobRefused(Exception):
    """A job that cannot go on for a reason the user can act on; its message is the job's error."""


def register_handler(kind: str, function: Callable) -> None:
    """Make function(job, reporter) the handler of jobs of this kind (called in create_app)."""
    HANDLERS[kind] = function


def handler(kind: str):
    """Register the decorated function as the handler of jobs of this kind."""
    def register(function):
        register_handler(kind, function)
        return function
    return register


def init_app(app: Flask) -> None:
    """Create the Huey queue named by JOB_QUEUE and its one task, bound to app."""
    queue = app.config["JOB_QUEUE"]
    if queue == "memory":
        huey = MemoryHuey("supervising_ui", immediate=True)
    elif queue.startswith("redis://"):
        huey = RedisHuey("supervising_ui", url=queue)
    else:
        huey = SqliteHuey("supervising_ui", filename=str(Path(app.instance_path) / "jobs.sqlite3"))

    def execute(job_id: int) -> None:
        with app.app_context():
            run_job(job_id)

    app.extensions["huey"] = huey
    app.extensions["execute_job"] = huey.task(name="execute_job")(execute)


def submit(kind: str, project_id: int | None = None, params: dict | None = None,
           created_by_id: int | None = None) -> Job:
    """Queue a job; raise JobBusy where an exclusive kind is already queued or running."""
    if kind not in HANDLERS:
        raise ValueError(f"no handler for job kind {kind!r}")
    if kind in EXCLUSIVE_KINDS:
        reap_stale_jobs()
        _lock_project(project_id)
        active = db.session.scalar(select(Job).where(
            Job.kind == kind, Job.project_id == project_id, Job.state.in_(("queued", "running"))))
        if active is not None:
            busy = JobBusy(active)
            db.session.rollback()  # release the project lock
            raise busy
    job = Job(kind=kind, project_id=project_id, params=params or {}, created_by_id=created_by_id)
    db.session.add(job)
    db.session.commit()
    try:
        current_app.extensions["execute_job"](job.id)
    except Exception as error:  # the queue is down: the row must not block later submits
        log.exception("could not queue job %s (%s)", job.id, kind)
        _finish(job.id, state="failed", error=f"could not queue the job: {error}")
        raise
    db.session.refresh(job)
    return job


def _lock_project(project_id: int | None) -> None:
    """Serialise submits per project: a no-op write takes the project's row (or SQLite's) lock."""
    if project_id is not None:
        db.session.execute(update(Project).where(Project.id == project_id).values(
            id=Project.id).execution_options(synchronize_session=False))


def _claim(job: Job) -> bool:
    """Mark a queued job running, unless an exclusive sibling runs; return whether it did."""
    conditions = [Job.id == job.id, Job.state == "queued"]
    if job.kind in EXCLUSIVE_KINDS:
        sibling = aliased(Job)
        conditions.append(~exists().where(and_(
            sibling.project_id == job.project_id, sibling.kind == job.kind,
            sibling.state == "running")))
    now = utcnow()
    result = db.session.execute(update(Job).where(*conditions).values(
        state="running", started_at=now, heartbeat_at=now).execution_options(
        synchronize_session=False))
    db.session.commit()
    return result.rowcount == 1


def run_job(job_id: int) -> None:
    """Run one queued job to completion in this process, recording its outcome."""
    job = db.session.get(Job, job_id)
    if job is None or job.state != "queued":
        return
    if not _claim(job):
        log.info("job %s waits: another %s job runs for project %s", job.id, job.kind,
                 job.project_id)
        current_app.extensions["execute_job"].schedule((job_id,), delay=RETRY_DELAY_SECONDS)
        return
    db.session.refresh(job)
    reporter = ProgressReporter(job.id, current_app.config["JOB_HEARTBEAT_SECONDS"])
    reporter.start()
    try:
        result = HANDLERS[job.kind](job, reporter) or {}
        _finish(job.id, state="done", progress=1.0, result=result,
                model_version_id=result.get("model_version_id"))
    except JobRefused as error:
        db.session.rollback()
        log.warning("job %s (%s) refused: %s", job_id, job.kind, error)
        _finish(job.id, state="failed", error=str(error), log_tail=f"refused: {error}\n")
    except Exception as error:  # any failure of a job is recorded, never raised into the worker
        db.session.rollback()
        log.exception("job %s (%s) failed", job_id, job.kind)
        _finish(job.id, state="failed", error=f"{type(error).__name__}: {error}",
                log_tail=traceback.format_exc())
    finally:
        reporter.stop()


def _finish(job_id: int, state: str, log_tail: str = "", **values) -> None:
    """Store a job's final state in a transaction of its own."""
    job = db.session.get(Job, job_id)
    job.state = state
    job.finished_at = utcnow()
    job.log = ((job.log or "") + log_tail)[-LOG_LIMIT:]
    for name, value in values.items():
        setattr(job, name, value)
    db.session.commit()


def reap_stale_jobs(stale_after_seconds: float | None = None) -> int:
    """Fail running jobs whose worker stopped sending heartbeats; return how many."""
    if stale_after_seconds is None:
        stale_after_seconds = current_app.config["JOB_STALE_SECONDS"]
    cutoff = utcnow() - timedelta(seconds=stale_after_seconds)
    stale = (Job.state == "running", Job.heartbeat_at < cutoff)
    if db.session.scalar(select(Job.id).where(*stale).limit(1)) is None:
        return 0  # the common case stays a read: pages poll this
    result = db.session.execute(update(Job).where(*stale).values(
        state="failed", finished_at=utcnow(),
        error="the worker stopped while running this job (killed or crashed); start it again")
        .execution_options(synchronize_session=False))
    db.session.commit()
    if result.rowcount:
        log.warning("reaped %d job(s) whose worker stopped", result.rowcount)
    return result.rowcount


def job_status(job: Job) -> dict:
    """Return the public view of a job, as the API and the admin page show it."""
    version = db.session.get(ModelVersion, job.model_version_id) if job.model_version_id else None
    return {"job_id": job.id, "kind": job.kind, "state": job.state,
            "progress": round(job.progress or 0.0, 4), "message": job.message, "error": job.error,
            "model_version": version.version if version else None,
            "model_version_id": job.model_version_id, "project_id": job.project_id,
            "params": job.params, "created_at": iso_utc(job.created_at),
            "started_at": iso_utc(job.started_at), "finished_at": iso_utc(job.finished_at)}


def status_report(job_id: int, include_log: bool = False) -> dict | None:
    """Reap stale jobs, then return a job's status with its result (and log), or None."""
    reap_stale_jobs()
    job = db.session.get(Job, job_id)
    if job is None:
        return None
    report = job_status(job) | {"result": job.result or {}}
    if include_log:
        report["log"] = job.log
    return report


def follow_job(job_id: int, echo: Callable[[str], None], poll_seconds: float = 1.0) -> dict:
    """Poll a job until it is done or failed, echoing each change of progress; return its status."""
    last_line = None
    while True:
        reap_stale_jobs()
        db.session.expire_all()
        job = db.session.get(Job, job_id)
        if job is None:
            raise ValueError(f"no job with id {job_id}")
        status = job_status(job)
        line = f"{status['state']:>8} {100 * status['progress']:5.1f}%  {status['message']}".rstrip()
        if line != last_line:
            echo(line)
            last_line = line
        db.session.commit()  # end the read transaction: the next poll must see the worker's writes
        if status["state"] in ("done", "failed"):
            return status
        time.sleep(poll_seconds)


def run_worker() -> None:
    """Consume jobs in this process until interrupted (one at a time: training uses all cores)."""
    reap_stale_jobs()
    huey = current_app.extensions["huey"]
    # max_delay: an idle worker still polls the queue every second, so a job starts promptly.
    huey.create_consumer(workers=1, worker_type="thread", periodic=False, max_delay=1.0).run()


class ProgressReporter:
    """Writes a running job's progress, log lines and heartbeat in short transactions."""

    def __init__(self, job_id: int, heartbeat_seconds: float):
        self.job_id = job_id
        self.heartbeat_seconds = heartbeat_seconds
        self._engine = db.engine
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)

    def start(self) -> None:
        """Start sending heartbeats."""
        self._thread.start()

    def stop(self) -> None:
        """Stop sending heartbeats."""
        self._stopped.set()
        self._thread.join(timeout=self.heartbeat_seconds + 1)

    def progress(self, fraction: float, message: str = "") -> None:
        """Record how far the job is (0..1) and what it is doing."""
        self._update(progress=max(0.0, min(1.0, float(fraction))), message=message,
                     heartbeat_at=utcnow())

    def log(self, line: str) -> None:
        """Append a line to the job's log."""
        with self._engine.begin() as connection:
            current = connection.execute(select(Job.log).where(Job.id == self.job_id)).scalar()
            connection.execute(update(Job).where(Job.id == self.job_id).values(
                log=((current or "") + line.rstrip("\n") + "\n")[-LOG_LIMIT:]))

    def _update(self, **values) -> None:
        with self._engine.begin() as connection:
            connection.execute(update(Job).where(Job.id == self.job_id).values(**values))

    def _beat(self) -> None:
        while not self._stopped.wait(self.heartbeat_seconds):
            try:
                self._update(heartbeat_at=utcnow())
            except Exception:  # a busy database must not kill the job; the next beat retries
                log.warning("heartbeat of job %s failed", self.job_id, exc_info=True)
