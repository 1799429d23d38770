"""The one job-status endpoint that pages, scripts and the console's API clients poll."""
from flask import Blueprint, jsonify
from flask_login import current_user

from ..accounts.guard import admin_required
from . import status as job_status
from .cancel import cancel_job
from .queue import JobRefused

blueprint = Blueprint("jobs", __name__)


@blueprint.get("/api/jobs/<int:job_id>")
def status(job_id):
    """A job's state, progress, error, model version and result, for admins and its starter.

    Admins also get its log; anyone else gets 404, as for a job that does not exist.
    """
    report = job_status.status_report(job_id, current_user)
    if report is None:
        return jsonify(error=f"no job with id {job_id}"), 404
    return jsonify(report)


@blueprint.post("/api/jobs/<int:job_id>/cancel")
@admin_required
def cancel(job_id):
    """Cancel a queued or running job (admins): 200 with its status, 409 if it is over."""
    try:
        job = cancel_job(job_id, current_user)
    except LookupError as error:
        return jsonify(error=str(error)), 404
    except JobRefused as error:
        return jsonify(error=str(error)), 409
    return jsonify(job_status.job_status(job))
