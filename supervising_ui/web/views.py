"""The home page: the projects a user may work on, or for an admin of an empty instance the
first-run page (create a project, or load the demo); and the API's OpenAPI document."""
from importlib import resources

from flask import Blueprint, Response, flash, redirect, render_template, url_for
from flask_login import current_user

from ..accounts import membership
from ..accounts.guard import admin_required
from ..projects import demo
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
