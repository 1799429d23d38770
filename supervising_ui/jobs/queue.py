"""Background work: a job is a row whose progress pages poll; Huey carries it to a worker.

A handler is registered per job kind in create_app with ``register_handler(kind, function)``
and called as ``function(job, reporter)`` inside an app context in the worker process; it
returns a dict stored as the job's result. The web process only ever calls ``submit()``;
pages poll ``status.status_report()`` through the one job-status endpoint (views.py).

A job records the process (pid and host) that claimed it, so a job whose worker died is
reaped as soon as a reaper on that host sees the process gone; the heartbeat catches the rest.
A reaped job of a kind that can run twice (register_handler's can_run_twice) is queued again
once ("restarted after its worker stopped"), any other is failed with the reason. A worker
that gets SIGTERM stops its job at the job's next progress report and queues it again once;
an optional ``discard`` function per kind undoes what an unfinished job left half-made.
"""
import logging
import os
import sys
import threading
import time
import traceback
from datetime import timedelta
from pathlib import Path
from typing import Callable

from flask import Flask, current_app
from huey import MemoryHuey, RedisHuey, SqliteHuey
from sqlalchemy import and_, exists, func, select, update
from sqlalchemy.orm import aliased

from ..extensions import db
from ..models import Job, Project, utcnow
from . import minutely
from .runtime import (
    LOG_LIMIT,
    RESTARTED_NOTE,
    SHUTDOWN,
    JobCancelled,
    JobInterrupted,
    ProgressReporter,
    host_identity,
    name_connections,
    process_alive,
    restart_note,
)

log = logging.getLogger(__name__)

HANDLERS: dict[str, Callable] = {}
# Per kind: discard(job) undoes what a failed or interrupted job left half-made.
DISCARDS: dict[str, Callable] = {}
# Kinds of which a project runs one at a time (register_handler's exclusive).
EXCLUSIVE_KINDS: set[str] = set()
# A queued exclusive job waits this long before trying again while another one runs.
RETRY_DELAY_SECONDS = 3
# Kinds whose job may run again from the start after its worker died (can_run_twice).
RERUNNABLE_KINDS: set[str] = set()
# What the worker runs in a thread as it starts (the learning loop's heavy imports).
WARM_UPS: list[Callable[[], None]] = []
# A job cut off by a worker shutdown or death is queued again this many times, then failed.
MAX_INTERRUPTIONS = 1
# The error of a job an admin cancelled (jobs/cancel.py).
CANCELLED = "cancelled by an admin"
# The log line a reaper leaves (a later shutdown's message tells the two apart).
GONE_LOG_PREFIX = "worker gone: "
# The jobs this process runs now, each with an event set when its run is over.
_running: dict[int, threading.Event] = {}


class JobBusy(Exception):
    """A job of this kind is already queued or running for the project."""

    def __init__(self, job: Job):
        super().__init__(f"job {job.id} ({job.kind}) is already {job.state} for this project")
        self.job = job


class JobRefused(Exception):
    """A job that cannot go on for a reason the user can act on; its message is the job's error.

    result, if given, is stored as the failed job's result (what it did before it stopped).
    """

    def __init__(self, message: str, result: dict | None = None):
        super().__init__(message)
        self.result = result


def register_handler(kind: str, function: Callable, discard: Callable | None = None,
                     exclusive: bool = False, can_run_twice: bool = False) -> None:
    """Make function(job, reporter) the handler of jobs of this kind (called in create_app).

    discard(job), if given, undoes what a job of this kind left when it failed or was cut
    off; an exclusive kind runs one job at a time per project (submit refuses a second); a
    job of a kind that can run twice (its second run, after discard, does what one run
    would) is queued again once when its worker dies.
    """
    HANDLERS[kind] = function
    if discard is not None:
        DISCARDS[kind] = discard
    if exclusive:
        EXCLUSIVE_KINDS.add(kind)
    if can_run_twice:
        RERUNNABLE_KINDS.add(kind)


def init_app(app: Flask) -> None:
    """Create the Huey queue named by JOB_QUEUE, its job task and the minutely task, bound to app."""
    queue = app.config["JOB_QUEUE"]
    if queue == "memory":
        huey = MemoryHuey("supervising_ui", immediate=True)
    elif queue.startswith("redis://"):
        huey = RedisHuey("supervising_ui", url=queue)
    else:
        huey = SqliteHuey("supervising_ui", filename=str(Path(app.instance_path) / "jobs.sqlite3"))

    def execute(job_id: int) -> None:
        with app.app_context():
            try:
                run_job(job_id)
            finally:
                db.session.remove()  # no connection, let alone a transaction, between jobs

    app.extensions["huey"] = huey
    app.extensions["execute_job"] = huey.task(name="execute_job")(execute)
    app.extensions["minutely"] = minutely.add_task(app, huey)


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
    db.session.flush()
    job_id = job.id  # read before the commit expires it: queueing opens no transaction here
    db.session.commit()
    try:
        current_app.extensions["execute_job"](job_id)
    except Exception as error:  # the queue is down: the row must not block later submits
        log.exception("could not queue job %s (%s)", job_id, kind)
        _finish(job_id, state="failed", error=f"could not queue the job: {error}", claimed=False)
        raise
    db.session.refresh(job)
    return job


def _lock_project(project_id: int | None) -> None:
    """Serialise submits per project: a no-op write takes the project's row (or SQLite's) lock."""
    if project_id is not None:
        db.session.execute(update(Project).where(Project.id == project_id).values(
            id=Project.id).execution_options(synchronize_session=False))


def _claim(job: Job) -> bool:
    """Mark a queued job running in this process, unless an exclusive sibling runs; say whether."""
    conditions = [Job.id == job.id, Job.state == "queued"]
    if job.kind in EXCLUSIVE_KINDS:
        sibling = aliased(Job)
        conditions.append(~exists().where(and_(
            sibling.project_id == job.project_id, sibling.kind == job.kind,
            sibling.state == "running")))
    now = utcnow()
    result = db.session.execute(update(Job).where(*conditions).values(
        state="running", started_at=now, heartbeat_at=now, worker_pid=os.getpid(),
        worker_host=host_identity()).execution_options(synchronize_session=False))
    db.session.commit()
    return result.rowcount == 1


def run_job(job_id: int) -> None:
    """Run one queued job to completion in this process, recording its outcome."""
    job = db.session.get(Job, job_id)
    if job is None or job.state != "queued":
        return
    # Before the claim commits: a reaper here must never see it running yet not in _running.
    finished = _running[job.id] = threading.Event()
    if not _claim(job):
        del _running[job.id]
        log.info("job %s waits: another %s job runs in project %s", job.id, job.kind, job.project_id)
        current_app.extensions["execute_job"].schedule((job_id,), delay=RETRY_DELAY_SECONDS)
        return
    db.session.refresh(job)
    reporter = ProgressReporter(job.id, current_app.config["JOB_HEARTBEAT_SECONDS"],
                                note=restart_note(job.interruptions, job.message))
    reporter.start()
    try:
        if job.interruptions:
            _discard(job)  # what the cut-off run left half-made
        result = HANDLERS[job.kind](job, reporter) or {}
        _finish(job.id, state="done", progress=1.0, result=result,
                model_version_id=result.get("model_version_id"))
    except JobCancelled:
        db.session.rollback()
        log.warning("job %s (%s) cancelled while it ran", job_id, job.kind)
        _discard(job)
        _finish(job.id, state="failed", error=CANCELLED, log_tail="cancelled while it ran\n")
    except JobInterrupted:
        db.session.rollback()
        log.warning("job %s (%s) interrupted by the worker's shutdown", job_id, job.kind)
        _discard(job)
        _interrupt(job_id)
    except JobRefused as error:
        db.session.rollback()
        log.warning("job %s (%s) refused: %s", job_id, job.kind, error)
        _finish(job.id, state="failed", error=str(error), log_tail=f"refused: {error}\n",
                **({"result": error.result} if error.result is not None else {}))
    except Exception as error:  # any failure of a job is recorded, never raised into the worker
        db.session.rollback()
        log.exception("job %s (%s) failed", job_id, job.kind)
        _discard(job)
        _finish(job.id, state="failed", error=f"{type(error).__name__}: {error}",
                log_tail=traceback.format_exc())
    finally:
        reporter.stop()
        del _running[job_id]
        finished.set()


def _finish(job_id: int, state: str, log_tail: str = "", claimed: bool = True, **values) -> None:
    """Store a job's final state in a transaction of its own.

    claimed: only while the job still runs in this process (a shutdown may have queued it again).
    """
    job = db.session.get(Job, job_id, populate_existing=True)
    if claimed and (job.state != "running" or job.worker_pid != os.getpid()):
        log.warning("job %s is %s elsewhere now: its outcome here (%s) is dropped", job_id,
                    job.state, state)
        db.session.commit()
        return
    job.state = state
    job.finished_at = utcnow()
    job.log = ((job.log or "") + log_tail)[-LOG_LIMIT:]
    for name, value in values.items():
        setattr(job, name, value)
    db.session.commit()


def _discard(job: Job) -> None:
    """Let the job's kind undo what the job left half-made; a failure here is only logged."""
    discard = DISCARDS.get(job.kind)
    if discard is None:
        return
    try:
        discard(db.session.get(Job, job.id))
    except Exception:  # the job's outcome is recorded all the same
        db.session.rollback()
        log.exception("could not discard what job %s (%s) left behind", job.id, job.kind)


def _interrupt(job_id: int) -> None:
    """Queue a job that this worker's shutdown cut off again, or fail it if it happened before."""
    job = db.session.get(Job, job_id, populate_existing=True)
    db.session.commit()
    if job is None:
        return
    again = job.interruptions < MAX_INTERRUPTIONS
    values = {"interruptions": job.interruptions + 1, "worker_pid": None, "worker_host": None,
              "log": ((job.log or "") + "interrupted: the worker was stopped (SIGTERM)\n")
              [-LOG_LIMIT:]}
    if again:
        values |= {"state": "queued", "progress": 0.0, "started_at": None, "heartbeat_at": None,
                   "message": "interrupted by a worker shutdown; queued again"}
    else:
        before = "its worker had stopped before" if GONE_LOG_PREFIX in (job.log or "") else None
        values |= {"state": "failed", "finished_at": utcnow(), "error": (
            f"interrupted by a worker shutdown after a restart ({before}); start it again"
            if before else "interrupted twice by a worker shutdown; start it again")}
    # Only the run of this process: a reaper may have failed the job meanwhile.
    changed = db.session.execute(update(Job).where(
        Job.id == job_id, Job.state == "running", Job.worker_pid == os.getpid())
        .values(**values).execution_options(synchronize_session=False)).rowcount
    db.session.commit()
    if changed and again:
        _queue_again(job_id)


def _queue_again(job_id: int) -> None:
    """Send a job that was put back to "queued" to the queue; fail it if the queue is down."""
    try:
        current_app.extensions["execute_job"](job_id)
    except Exception as error:  # the queue is down: fail the job rather than strand it
        log.exception("could not queue job %s again", job_id)
        _finish(job_id, state="failed", error=f"could not queue the job again: {error}",
                claimed=False)


def reap_stale_jobs(stale_after_seconds: float | None = None) -> int:
    """Queue again, or fail, running jobs whose worker is gone (its process ended, or it went
    silent); say how many.

    On the host that ran a job, the recorded pid tells at once; elsewhere a heartbeat older
    than JOB_STALE_SECONDS does. A job of a kind that can run twice is queued again once
    (what its dead run left is discarded first); a second death fails it with the reason.
    """
    if stale_after_seconds is None:
        stale_after_seconds = current_app.config["JOB_STALE_SECONDS"]
    cutoff = utcnow() - timedelta(seconds=stale_after_seconds)
    running = db.session.execute(select(
        Job.id, Job.kind, Job.interruptions, Job.heartbeat_at, Job.worker_pid, Job.worker_host)
        .where(Job.state == "running")).all()
    reaped = 0
    for row in running:  # usually none: pages poll this
        reason = _why_gone(row, cutoff)
        if reason is None:
            continue
        again = row.kind in RERUNNABLE_KINDS and (row.interruptions or 0) < MAX_INTERRUPTIONS
        changed = db.session.execute(update(Job).where(
            Job.id == row.id, Job.state == "running",
            Job.worker_pid.is_(None) if row.worker_pid is None else Job.worker_pid == row.worker_pid,
            Job.heartbeat_at.is_(None) if row.heartbeat_at is None
            else Job.heartbeat_at <= row.heartbeat_at)
            .values(**_gone_values(row, reason, again))
            .execution_options(synchronize_session=False)).rowcount
        db.session.commit()
        if changed:
            reaped += 1
            log.warning("reaped job %s: %s; %s", row.id, reason,
                        "queued again" if again else "failed")
            _discard(db.session.get(Job, row.id))  # before a second run could start
            if again:
                _queue_again(row.id)
    return reaped


def _gone_values(row, reason: str, again: bool) -> dict:
    """What a reaper writes into a running job whose worker is gone: queued again, or failed."""
    values = {"log": func.coalesce(Job.log, "") + f"{GONE_LOG_PREFIX}{reason}\n"}
    if again:
        return values | {"state": "queued", "interruptions": (row.interruptions or 0) + 1,
                         "progress": 0.0, "started_at": None, "heartbeat_at": None,
                         "worker_pid": None, "worker_host": None, "message": RESTARTED_NOTE}
    if row.interruptions and row.kind in RERUNNABLE_KINDS:
        reason += ", after it had been restarted once"
    return values | {"state": "failed", "finished_at": utcnow(), "error": f"{reason}; start it again"}


def _why_gone(row, cutoff) -> str | None:
    """Why the worker of a running job is known to be gone, or None while it may still run."""
    if row.worker_pid is not None and row.worker_host == host_identity():
        if not process_alive(row.worker_pid):
            return "the worker process stopped while running this job (killed or crashed)"
        if row.worker_pid == os.getpid() and row.id not in _running:
            return "the worker was restarted while running this job"
    if row.heartbeat_at is None or row.heartbeat_at < cutoff:
        return "the worker stopped while running this job (killed or crashed)"
    return None


def run_worker() -> None:
    """Consume jobs in this process until stopped (one at a time: training uses all cores).

    SIGTERM stops the running job at its next progress report (within
    JOB_SHUTDOWN_GRACE_SECONDS) and queues it again; SIGINT lets it finish first.
    """
    name_connections("supervising-ui worker")
    reap_stale_jobs()
    db.session.remove()  # hold no connection, let alone a snapshot, while waiting for jobs
    SHUTDOWN.clear()
    for warm_up in WARM_UPS:  # in a thread: a job that comes at once need not wait for it
        threading.Thread(target=warm_up, name="warm-up", daemon=True).start()
    huey = current_app.extensions["huey"]
    # An idle worker polls the queue every second; periodic: it queues minutely.py's task too.
    huey.create_consumer(workers=1, worker_type="thread", periodic=True, max_delay=1.0).run()
    if not _stop_running_job(current_app.config["JOB_SHUTDOWN_GRACE_SECONDS"]):
        # The job's thread is still busy (deep in torch, say): leave now, as a kill would,
        # rather than let the interpreter's teardown abort under it.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def _stop_running_job(grace_seconds: float) -> bool:
    """Ask running jobs to stop; queue again here any that do not within grace_seconds.

    Returns whether every job stopped by itself.
    """
    SHUTDOWN.set()
    deadline = time.monotonic() + grace_seconds
    stopped = True
    for job_id, finished in list(_running.items()):
        if not finished.wait(max(0.0, deadline - time.monotonic())):
            log.warning("job %s did not stop within %s s; queuing it again", job_id, grace_seconds)
            stopped = False
            _interrupt(job_id)
            _discard(db.session.get(Job, job_id))
    db.session.remove()
    return stopped


