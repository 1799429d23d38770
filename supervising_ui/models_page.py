"""The model page of a project (versions, metrics, jobs) and the retrain JSON API."""
from pathlib import Path

from flask import (Blueprint, abort, flash, jsonify, redirect, render_template, request, send_file,
                   url_for)
from flask_login import current_user
from sqlalchemy import case, func, select

from . import jobs, retraining
from .auth import admin_required
from .extensions import db
from .models import Job, Label, ModelVersion, Project

blueprint = Blueprint("models_page", __name__)

RECENT_JOBS = 10
CHART_WIDTH, CHART_HEIGHT, CHART_PAD = 480, 220, 36


def get_project_or_404(project_id: int) -> Project:
    """The project with this id, or a 404."""
    project = db.session.get(Project, project_id)
    if project is None:
        abort(404, description=f"no project with id {project_id}")
    return project


def suggestion_acceptance(project_id: int) -> list[dict]:
    """Per model version: labels on which a suggestion was shown, and how many agreed with it."""
    accepted = func.sum(case((Label.suggested_class_id == Label.label_class_id, 1), else_=0))
    rows = db.session.execute(
        select(ModelVersion.version, func.count(Label.id), accepted)
        .select_from(Label).outerjoin(ModelVersion, ModelVersion.id == Label.suggestion_model_version_id)
        .where(Label.project_id == project_id, Label.suggestion_shown.is_(True))
        .group_by(ModelVersion.version).order_by(ModelVersion.version)).all()
    return [{"version": version, "shown": shown, "accepted": int(agreed or 0),
             "rate": (agreed or 0) / shown if shown else None} for version, shown, agreed in rows]


def accuracy_chart(versions: list[ModelVersion]) -> dict:
    """SVG coordinates of held-out accuracy against the number of labels, one point per version."""
    points = [(v.num_labels, v.metrics.get("held_out_accuracy"), v) for v in versions
              if v.metrics.get("held_out_accuracy") is not None]
    if not points:
        return {"points": [], "width": CHART_WIDTH, "height": CHART_HEIGHT}
    most = max(labels for labels, _, _ in points) or 1
    span_x, span_y = CHART_WIDTH - 2 * CHART_PAD, CHART_HEIGHT - 2 * CHART_PAD

    def place(labels, accuracy):
        return (round(CHART_PAD + span_x * labels / most, 1),
                round(CHART_HEIGHT - CHART_PAD - span_y * accuracy, 1))
    placed = [{"x": x, "y": y, "labels": labels, "accuracy": accuracy, "version": v.version,
               "serving": v.is_serving}
              for labels, accuracy, v in points for x, y in [place(labels, accuracy)]]
    return {"points": placed, "width": CHART_WIDTH, "height": CHART_HEIGHT, "pad": CHART_PAD,
            "max_labels": most, "polyline": " ".join(f"{p['x']},{p['y']}" for p in placed),
            "y_ticks": [{"value": tick, "y": place(0, tick)[1]} for tick in (0, 0.25, 0.5, 0.75, 1)]}


def model_overview(project: Project, shown_version_id: int | None = None) -> dict:
    """Everything the model page shows of a project, without HTTP."""
    jobs.reap_stale_jobs()
    versions = db.session.scalars(select(ModelVersion).where(
        ModelVersion.project_id == project.id).order_by(ModelVersion.version)).all()
    serving = next((v for v in versions if v.is_serving), None)
    shown = next((v for v in versions if v.id == shown_version_id), None) \
        or serving or (versions[-1] if versions else None)
    recent = db.session.scalars(select(Job).where(
        Job.project_id == project.id, Job.kind == "retrain").order_by(Job.id.desc())
        .limit(RECENT_JOBS)).all()
    return {"project": project, "versions": list(reversed(versions)), "serving": serving,
            "shown": shown, "jobs": recent, "last_job": recent[0] if recent else None,
            "acceptance": suggestion_acceptance(project.id), "chart": accuracy_chart(versions),
            "kinds": list(retraining.TRAINING_MODES)}


@blueprint.get("/projects/<int:project_id>/models")
def index(project_id):
    """The model page: versions over time, metrics of one version, retrain jobs."""
    project = get_project_or_404(project_id)
    overview = model_overview(project, request.args.get("version", type=int))
    return render_template("models/index.html", **overview)


@blueprint.post("/projects/<int:project_id>/models/retrain")
@admin_required
def retrain(project_id):
    """The "Retrain now" button."""
    project = get_project_or_404(project_id)
    try:
        job = retraining.request_retrain(project, request.form.get("kind", "quick"), current_user.id)
        flash(f"Retrain job {job.id} queued.", "info")
    except jobs.JobBusy as busy:
        flash(f"A retrain (job {busy.job.id}) is already {busy.job.state} for this project.", "error")
    except retraining.RetrainError as error:
        flash(str(error).capitalize() + ".", "error")
    return redirect(url_for("models_page.index", project_id=project.id))


@blueprint.get("/projects/<int:project_id>/models/<int:version_id>/<name>")
def plot(project_id, version_id, name):
    """A plot PNG of a model version, by version id and a fixed file name (never a path)."""
    version = db.session.get(ModelVersion, version_id)
    if version is None or version.project_id != project_id or name not in retraining.PLOT_FILES:
        abort(404)
    path = Path(version.path) / name
    if not path.is_file():
        abort(404)
    return send_file(path, mimetype="image/png", max_age=3600)


@blueprint.post("/api/projects/<int:project_id>/retrain")
@admin_required
def api_retrain(project_id):
    """Queue a retrain: 202 with the job id, 409 with the running job's id."""
    if db.session.get(Project, project_id) is None:
        return jsonify(error=f"no project with id {project_id}"), 404
    body = request.get_json(silent=True)
    body = body if isinstance(body, dict) else {}
    try:
        job = retraining.request_retrain(db.session.get(Project, project_id),
                                         str(body.get("kind", "quick")), current_user.id,
                                         body.get("epochs"), body.get("tta_views"))
    except jobs.JobBusy as busy:
        return jsonify(error=str(busy), job_id=busy.job.id, state=busy.job.state), 409
    except retraining.RetrainError as error:
        return jsonify(error=str(error)), 400
    return jsonify(jobs.job_status(job)), 202, {"Location": url_for("jobs.status", job_id=job.id)}
