"""The model page of a project (versions, metrics, jobs) and the retrain JSON API: views only."""
from flask import (
    Blueprint,
    abort,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_login import current_user

from ..accounts import membership
from ..accounts.guard import admin_required
from ..importing import batches
from ..jobs import queue as jobs
from ..jobs.status import job_status
from . import classify, report, triggers
from .dataset import RetrainError

blueprint = Blueprint("learning", __name__)


def _visible_project(project_id: int):
    """Return the project if the user may see it (membership.can_access), or answer 404."""
    project = membership.visible_project(current_user, project_id)
    if project is None:
        abort(404)
    return project


@blueprint.get("/projects/<int:project_id>/models")
def index(project_id):
    """The model page: versions over time, metrics of one version, retrain jobs, drift."""
    try:
        overview = report.model_overview(_visible_project(project_id),
                                         request.args.get("version", type=int),
                                         request.args.get("facet"),
                                         request.args.get("batch", type=int))
    except batches.BatchError as error:
        abort(404, str(error))
    return render_template("models/index.html", **overview)


@blueprint.post("/projects/<int:project_id>/models/priority-batch")
@admin_required
def priority_batch(project_id):
    """"Label this batch first" (a batch id) or back to the whole project (no batch id)."""
    project = _visible_project(project_id)
    try:
        batch = batches.set_priority_batch(project, request.form.get("batch_id", type=int))
        flash(f"Labelers get the images of import batch {batch.id} first." if batch else
              "Labelers get images from the whole project again.", "info")
    except batches.BatchError as error:
        flash(str(error).capitalize() + ".", "error")
    return redirect(url_for("learning.index", project_id=project.id) + "#drift")


@blueprint.post("/projects/<int:project_id>/models/batches/<int:batch_id>/predict")
@admin_required
def predict_batch(project_id, batch_id):
    """Queue the serving model's predictions of the images that lack them (this batch's too)."""
    project = _visible_project(project_id)
    try:
        job = classify.request_classify(project, current_user.id)
        flash(f"Classify job {job.id} queued." if job else "Every image has a prediction.",
              "info")
    except (classify.ClassifyError, jobs.JobBusy) as error:
        flash(str(error).capitalize() + ".", "error")
    return redirect(url_for("learning.index", project_id=project.id, batch=batch_id) + "#drift")


@blueprint.post("/projects/<int:project_id>/models/retrain")
@admin_required
def retrain(project_id):
    """The "Retrain now" button."""
    project = _visible_project(project_id)
    try:
        job = triggers.request_retrain(project, request.form.get("kind", "quick"), current_user.id)
        flash(f"Retrain job {job.id} queued.", "info")
    except jobs.JobBusy as busy:
        flash(f"A retrain (job {busy.job.id}) is already {busy.job.state} for this project.", "error")
    except RetrainError as error:
        flash(str(error).capitalize() + ".", "error")
    return redirect(url_for("learning.index", project_id=project.id))


@blueprint.get("/projects/<int:project_id>/models/<int:version_id>/<name>")
def plot(project_id, version_id, name):
    """A plot PNG of a model version, by version id and a fixed file name (never a path)."""
    path = report.plot_path(_visible_project(project_id).id, version_id, name)
    if path is None:
        abort(404)
    return send_file(path, mimetype="image/png", max_age=3600)


@blueprint.post("/api/projects/<int:project_id>/retrain")
@admin_required
def api_retrain(project_id):
    """Queue a retrain: 202 with the job id, 409 with the running job's id."""
    project = membership.visible_project(current_user, project_id)
    if project is None:
        return jsonify(error=f"no project with id {project_id}"), 404
    body = request.get_json(silent=True)
    body = body if isinstance(body, dict) else {}
    try:
        job = triggers.request_retrain(project, str(body.get("kind", "quick")), current_user.id,
                                       body.get("epochs"), body.get("tta_views"))
    except jobs.JobBusy as busy:
        return jsonify(error=str(busy), job_id=busy.job.id, state=busy.job.state), 409
    except RetrainError as error:
        return jsonify(error=str(error)), 400
    return jsonify(job_status(job)), 202, {"Location": url_for("jobs.status", job_id=job.id)}
