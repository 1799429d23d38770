"""The admin's import forms: uploads and server folders, queued as background jobs."""
from flask import Blueprint, abort, flash, jsonify, redirect, request, url_for
from flask_login import current_user

from ..accounts import membership
from ..accounts.guard import admin_required
from ..models import Project
from . import ImportRefused, uploads

blueprint = Blueprint("importing", __name__, url_prefix="/admin")


def _project_or_404(project_id: int) -> Project:
    """Return the project (admins see every one), or answer 404."""
    project = membership.visible_project(current_user, project_id)
    if project is None:
        abort(404)
    return project


def _back_to_project(project: Project, **arguments):
    return redirect(url_for("projects.project", project_id=project.id, **arguments))


@blueprint.post("/projects/<int:project_id>/import/upload")
@admin_required
def import_upload(project_id):
    """Stage uploaded images, zips and an optional manifest, and queue their import."""
    project = _project_or_404(project_id)
    return _start_import(project, lambda: uploads.submit_upload_import(
        project, request.files.getlist("files"), current_user.id))


@blueprint.post("/projects/<int:project_id>/import/server")
@admin_required
def import_server(project_id):
    """Queue the import of a folder and/or manifest below IMPORT_ROOT on the server."""
    project = _project_or_404(project_id)
    return _start_import(project, lambda: uploads.submit_server_import(
        project, request.form.get("folder", ""), request.form.get("manifest", ""),
        current_user.id))


def _start_import(project: Project, submit):
    """Queue an import; answer JSON to the page's script, else redirect to the project page."""
    wants_json = request.accept_mimetypes.best == "application/json"
    try:
        job = submit()
    except ImportRefused as error:
        if wants_json:
            return jsonify(error=str(error)), 400
        flash(f"Import not started: {error}.", "error")
        return _back_to_project(project)
    if wants_json:
        return jsonify(job_id=job.id, status_url=url_for("jobs.status", job_id=job.id)), 202
    return _back_to_project(project, job=job.id)
