"""The home page: the projects a user may work on."""
from flask import Blueprint, render_template

from . import projects

blueprint = Blueprint("pages", __name__)


@blueprint.get("/")
def home():
    """List the projects."""
    return render_template("home.html", projects=projects.list_projects())
