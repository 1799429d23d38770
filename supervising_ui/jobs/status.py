"""What a job looks like from outside: its public status, the report a page polls (with server
paths cut for users other than admins), and the console's follow-until-done."""
import re
import time
from pathlib import PureWindowsPath
from typing import Callable

from ..accounts import membership
from ..extensions import db
from ..models import Job, ModelVersion
from ..timestamps import iso_utc
from .queue import reap_stale_jobs

# Absolute file paths (POSIX or Windows) in error text: users other than admins see none.
_ABSOLUTE_PATH = re.compile(r"(?<![\w:/.~-])/[^\s'\"():,;]+|\b[A-Za-z]:\\[^\s'\"():,;]+")


def job_status(job: Job) -> dict:
    """Return the public view of a job, as the API and the admin page show it."""
    version = db.session.get(ModelVersion, job.model_version_id) if job.model_version_id else None
    return {"job_id": job.id, "kind": job.kind, "state": job.state,
            "progress": round(job.progress or 0.0, 4), "message": job.message, "error": job.error,
            "model_version": version.version if version else None,
            "model_version_id": job.model_version_id, "project_id": job.project_id,
            "params": job.params, "created_at": iso_utc(job.created_at),
            "started_at": iso_utc(job.started_at), "finished_at": iso_utc(job.finished_at)}


def status_report(job_id: int, viewer) -> dict | None:
    """Reap stale jobs, then return a job's status and result for viewer, or None.

    Only admins and the user who started a job see it (and only while they may see its
    project); admins also get its log, others an error and message without server paths.
    """
    reap_stale_jobs()
    job = db.session.get(Job, job_id)
    if job is None or not (viewer.is_admin or job.created_by_id == viewer.id) or not (
            job.project_id is None or membership.visible_project(viewer, job.project_id)):
        return None
    report = job_status(job) | {"result": job.result or {}}
    if viewer.is_admin:
        report["log"] = job.log
    else:
        report["error"] = without_paths(report["error"])
        report["message"] = without_paths(report["message"])
    return report


def without_paths(text: str | None) -> str | None:
    """Return text with every absolute file path cut to its last part (for users, not admins)."""
    if not text:
        return text
    # PureWindowsPath splits on both separators, so it names the last part of either kind.
    return _ABSOLUTE_PATH.sub(lambda match: f"…/{PureWindowsPath(match.group(0)).name}", text)


def follow_job(job_id: int, echo: Callable[[str], None], poll_seconds: float = 1.0) -> dict:
    """Poll a job until it is done or failed, echoing each change of progress; return its status
    with its result (the console's view: it runs as the server's own user)."""
    last_line = None
    while True:
        reap_stale_jobs()
        db.session.expire_all()
        job = db.session.get(Job, job_id)
        if job is None:
            raise ValueError(f"no job with id {job_id}")
        status = job_status(job) | {"result": job.result or {}}
        line = f"{status['state']:>8} {100 * status['progress']:5.1f}%  {status['message']}".rstrip()
        if line != last_line:
            echo(line)
            last_line = line
        db.session.commit()  # end the read transaction: the next poll must see the worker's writes
        if status["state"] in ("done", "failed"):
            return status
        time.sleep(poll_seconds)
