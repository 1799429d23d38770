"""The home page: the projects a user may work on."""
from flask import Blueprint, render_template
from sqlalchemy import select

from .extensions import db
from .models import Project

blueprint = Blueprint("pages", __name__)


@blueprint.get("/")
def home():
    """List the projects."""
    projects = db.session.scalars(select(Project).order_by(Project.name)).all()
    return render_template("home.html", projects=projects)
