"""Admin pages: projects, class lists, image import, users, retraining."""
from flask import Blueprint, render_template

from .auth import admin_required

blueprint = Blueprint("admin", __name__, url_prefix="/admin")


@blueprint.get("/")
@admin_required
def index():
    """The admin overview."""
    return render_template("admin/index.html")
