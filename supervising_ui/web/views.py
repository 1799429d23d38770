"""The home page: the projects a user may work on, or for an admin of an empty instance the
first-run page (create a project, or load the demo); the API's OpenAPI document; and the
project API for scripts (admin token): settings and exports."""
from importlib import resources

from flask import Blueprint, Response, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user

from ..accounts import membership
from ..accounts.guard import admin_required
from ..projects import api_settings, demo, export
from ..projects import service as projects

blueprint = Blueprint("web", __name__)
# The JSON API's OpenAPI document, written by hand beside this module (tests/web/test_openapi.py
# checks it against the routes; schemathesis fuzzes the API with it).
OPENAPI_FILE = "openapi.json"


@blueprint.get("/")
def home():
    """List the projects the user may see; an admin without any sees the first-run page."""
    project_list = membership.visible_projects(current_user)
    if not project_list and current_user.is_admin:
        return render_template("first_run.html", demo_project=demo.DEMO_PROJECT,
                               demo_images=demo.IMAGES_PER_CLASS * len(projects.PRESETS["hirise"]))
    return render_template("home.html", projects=project_list)


@blueprint.post("/demo")
@admin_required
def load_demo():
    """Create the demo project with its labels and queue its quick model; back to the home page."""
    messages, _ = demo.create_demo(admin=current_user, train_now=False)
    for message in messages:
        flash(message, "info")
    return redirect(url_for("web.home"))


@blueprint.get("/api/openapi.json")
def openapi():
    """The OpenAPI document of the JSON API."""
    text = resources.files(__package__).joinpath(OPENAPI_FILE).read_text("utf-8")
    return Response(text, mimetype="application/json")


def _visible_project_or_404(project_id: int):
    """The project, if the caller may see it; else a JSON 404 (like a missing one)."""
    project = membership.visible_project(current_user, project_id)
    if project is None:
        response = jsonify(error=f"no project {project_id} that you may see")
        response.status_code = 404
        return None, response
    return project, None


# One rule with both methods: an id out of range is then 404 for each (see review/views.py).
@blueprint.route("/api/projects/<int:project_id>/settings", methods=["GET", "PATCH"])
@admin_required
def settings_api(project_id):
    """GET: every setting of the project; PATCH: a JSON object of the settings to change, all
    checked before any is saved. Admins only."""
    project, missing = _visible_project_or_404(project_id)
    if missing:
        return missing
    if request.method == "GET":
        return jsonify(api_settings.settings_payload(project))
    try:
        return jsonify(api_settings.patch_settings(project, request.get_json(silent=True)))
    except projects.ProjectError as error:
        return jsonify(error=str(error)), 400


@blueprint.get("/api/projects/<int:project_id>/export")
@admin_required
def api_export(project_id):
    """An export: ?kind=labels|consensus|manifest|unsure&format=csv|json (admins)."""
    project, missing = _visible_project_or_404(project_id)
    if missing:
        return missing
    kind, export_format = request.args.get("kind", "labels"), request.args.get("format", "json")
    try:
        text = export.export_text(project, kind, export_format)
    except export.ExportError as error:
        return jsonify(error=str(error)), 400
    return Response(text, mimetype=export.MIMETYPES[export_format], headers={
        "Content-Disposition": export.content_disposition(project, kind, export_format)})
