"""The one job-status endpoint that pages, scripts and the console's API clients poll."""
from flask import Blueprint, jsonify
from flask_login import current_user

from . import status as job_status

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
