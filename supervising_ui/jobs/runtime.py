"""What a running job and its worker process know of themselves.

The progress, log and heartbeat rows a job writes as it runs; the shutdown signal that stops a
job at its next progress report; and the identity (pid, host) by which a reaper on the same
host tells that a job's worker process is gone. Imports nothing else of the job machinery.
"""
import functools
import logging
import os
import socket
import threading
from pathlib import Path

from sqlalchemy import event, select, update

from ..extensions import db
from ..models import Job, utcnow

log = logging.getLogger(__name__)

# The job log keeps its last this many characters.
LOG_LIMIT = 64_000
# Set while this process's worker shuts down: the running job stops at its next progress report.
SHUTDOWN = threading.Event()
# What a job's status says once it was queued again because its worker died.
RESTARTED_NOTE = "restarted after its worker stopped"


class JobCancelled(BaseException):
    """An admin cancelled the running job; raised from its next progress report (a
    BaseException for the same reason as JobInterrupted)."""


class JobInterrupted(BaseException):
    """The worker is shutting down; raised from a running job's next progress report.

    A BaseException, like KeyboardInterrupt, so that no ``except Exception`` in a handler
    swallows it on its way back to run_job.
    """


@functools.cache
def host_identity() -> str:
    """This host's name and pid namespace: where a recorded worker pid means that process."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:  # no /proc: the host name alone
        namespace = ""
    return f"{socket.gethostname()} {namespace}".strip()[:255]


def process_alive(pid: int) -> bool:
    """Whether process pid exists on this host and has not ended (a zombie has ended)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc: the signal said the process exists
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def restart_note(interruptions: int, message: str | None) -> str:
    """What every progress message of a job's second run adds: why it runs again (the message
    its re-queue left tells a dead worker from a shutdown)."""
    if not interruptions:
        return ""
    return RESTARTED_NOTE if message == RESTARTED_NOTE else "restarted after a worker shutdown"


def name_connections(name: str) -> None:
    """Name this process's PostgreSQL connections, so pg_stat_activity tells who holds what."""
    engine = db.engine
    if engine.dialect.name != "postgresql":
        return

    @event.listens_for(engine, "connect")
    def set_application_name(dbapi_connection, connection_record):
        autocommit = dbapi_connection.autocommit
        dbapi_connection.autocommit = True
        cursor = dbapi_connection.cursor()
        cursor.execute("SELECT set_config('application_name', %s, false)", (name,))
        cursor.close()
        dbapi_connection.autocommit = autocommit

    engine.dispose()  # connections opened before got no name


class ProgressReporter:
    """Writes a running job's progress, log lines and heartbeat in short transactions.

    The progress it records never goes down (a later stage that counts from 0 again leaves
    it where it was), and note, where given, follows every message ("restarted after its
    worker stopped").
    """

    def __init__(self, job_id: int, heartbeat_seconds: float, note: str = ""):
        self.job_id = job_id
        self.heartbeat_seconds = heartbeat_seconds
        self.note = note
        self.reached = 0.0
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
        """Record how far the job is (0..1) and what it is doing; raise JobInterrupted on
        shutdown, JobCancelled once an admin cancelled the job."""
        _stop_if_shutting_down()
        self.reached = max(self.reached, min(1.0, float(fraction)))
        if self.note:
            message = f"{message} ({self.note})" if message else self.note
        with self._engine.begin() as connection:
            connection.execute(update(Job).where(Job.id == self.job_id).values(
                progress=self.reached, message=message, heartbeat_at=utcnow()))
            cancelled = connection.execute(select(Job.cancelled_by_id).where(
                Job.id == self.job_id)).scalar()
        if cancelled is not None:
            raise JobCancelled("cancelled by an admin")

    def log(self, line: str) -> None:
        """Append a line to the job's log; raise JobInterrupted while the worker shuts down."""
        _stop_if_shutting_down()
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


def _stop_if_shutting_down() -> None:
    """Raise JobInterrupted once this process's worker was asked to stop."""
    if SHUTDOWN.is_set():
        raise JobInterrupted("the worker is shutting down")
