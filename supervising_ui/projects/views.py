"""Admin pages of projects: the list, settings, members, class lists, images and the export.

Admins only; importing, users and models have their own views beside their domains."""
from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)

from ..accounts import membership
from ..accounts.guard import admin_required
from ..importing import uploads
from ..learning import classify
from ..models import SERVING_ORDERS, Project
from . import export
from . import service as projects

blueprint = Blueprint("projects", __name__, url_prefix="/admin")
IMAGES_PER_PAGE = 50


@blueprint.before_request
@admin_required
def require_admin():
    """Every admin page is for admins only (403 for everyone else)."""


def _back_to_project(project: Project, **arguments):
    return redirect(url_for("projects.project", project_id=project.id, **arguments))


@blueprint.get("/")
@admin_required
def index():
    """List projects with their image counts, and offer the form that creates one."""
    return render_template("admin/index.html", projects=projects.list_projects(),
                           counts=projects.project_counts(), presets=projects.PRESETS)


@blueprint.post("/projects")
@admin_required
def create_project():
    """Create a project from a preset or a class list."""
    form = request.form
    try:
        preset = form.get("preset") or None
        classes = projects.parse_class_list(form.get("classes", "")) if not preset else None
        labels_per_image = int(form.get("labels_per_image") or 1)
        project = projects.create_project(form.get("name", ""), classes=classes, preset=preset,
                                          description=form.get("description", ""),
                                          labels_per_image=labels_per_image)
    except ValueError as error:  # ProjectError, or a labels-per-image that is not a number
        flash(f"Project not created: {error}.", "error")
        return redirect(url_for("projects.index"))
    flash(f"Created project {project.name!r}.", "info")
    return _back_to_project(project)


@blueprint.get("/projects/<int:project_id>")
@admin_required
def project(project_id):
    """A project's settings, members, class list, import forms, imports and classifications."""
    project = projects.get_project_or_404(project_id)
    return render_template("admin/project.html", project=project,
                           usage=projects.label_counts_by_class(project),
                           counts=projects.project_counts().get(project.id, {}),
                           import_jobs=uploads.recent_imports(project),
                           classify_jobs=classify.recent_jobs(project),
                           serving_orders=SERVING_ORDERS,
                           access=membership.project_access(project),
                           choosable_users=membership.choosable_users(),
                           import_root_set=bool(current_app.config.get("IMPORT_ROOT")),
                           watch_job=request.args.get("job", type=int))


@blueprint.post("/projects/<int:project_id>/settings")
@admin_required
def project_settings(project_id):
    """Save a project's settings."""
    project = projects.get_project_or_404(project_id)
    return _edit_project(project, lambda: projects.update_settings(project, request.form),
                         "Settings saved.", refused="Settings not saved")


@blueprint.post("/projects/<int:project_id>/members")
@admin_required
def project_members(project_id):
    """Choose who may label a project: every labeler, or only the labelers ticked."""
    project = projects.get_project_or_404(project_id)
    return _edit_project(project, lambda: membership.describe(project, membership.set_members(
        project, request.form.get("access", ""), request.form.getlist("member"))),
        "Saved: {}.", refused="Members not saved", errors=(membership.MembershipError,))


@blueprint.post("/projects/<int:project_id>/classes")
@admin_required
def add_class(project_id):
    """Add a class at the end of the class list."""
    project = projects.get_project_or_404(project_id)
    return _edit_project(project, lambda: projects.add_class(project, request.form.get("name", "")),
                       "Class added.")


@blueprint.post("/projects/<int:project_id>/classes/<int:class_id>/rename")
@admin_required
def rename_class(project_id, class_id):
    """Rename a class."""
    project = projects.get_project_or_404(project_id)
    return _edit_project(project, lambda: projects.rename_class(
        projects.get_class(project, class_id), request.form.get("name", "")), "Class renamed.")


@blueprint.post("/projects/<int:project_id>/classes/<int:class_id>/description")
@admin_required
def describe_class(project_id, class_id):
    """Set a class's description in the labelers' field guide."""
    project = projects.get_project_or_404(project_id)
    return _edit_project(project, lambda: projects.describe_class(
        projects.get_class(project, class_id), request.form.get("description", "")),
        "Description saved.")


@blueprint.post("/projects/<int:project_id>/classes/<int:class_id>/move")
@admin_required
def move_class(project_id, class_id):
    """Move a class one place up or down."""
    project = projects.get_project_or_404(project_id)
    offset = -1 if request.form.get("direction") == "up" else 1
    return _edit_project(project, lambda: projects.move_class(
        projects.get_class(project, class_id), offset), None)


@blueprint.post("/projects/<int:project_id>/classes/<int:class_id>/delete")
@admin_required
def delete_class(project_id, class_id):
    """Delete an unused class, or merge a used one into another class."""
    project = projects.get_project_or_404(project_id)
    merge_into_id = request.form.get("merge_into", type=int)

    def delete():
        label_class = projects.get_class(project, class_id)
        target = projects.get_class(project, merge_into_id) if merge_into_id else None
        moved = projects.delete_class(label_class, merge_into=target)
        return f"merged into {target.name!r} ({moved} rows moved)" if target else "deleted"
    return _edit_project(project, delete, "Class {}.")


def _edit_project(project: Project, edit, message: str | None, refused: str | None = None,
                  errors=(projects.ProjectError,)):
    """Run one edit of a project, flash its outcome and go back to the project page.

    message may hold "{}" for what edit returns; a refusal is flashed as "<refused>: <why>."
    (or the reason alone, capitalized, without refused).
    """
    try:
        outcome = edit()
        if message:
            flash(message.format(outcome) if "{}" in message else message, "info")
    except errors as error:
        reason = str(error)
        flash(f"{refused}: {reason}." if refused else f"{reason[:1].upper()}{reason[1:]}.",
              "error")
    return _back_to_project(project)


@blueprint.get("/projects/<int:project_id>/images")
@admin_required
def images(project_id):
    """A project's images with their metadata, 50 per page."""
    project = projects.get_project_or_404(project_id)
    page = min(max(request.args.get("page", 1, type=int), 1), 10**9)  # no OFFSET overflow
    page_images, total, columns = projects.image_page(project, page, IMAGES_PER_PAGE)
    pages = max(1, -(-total // IMAGES_PER_PAGE))
    return render_template("admin/images.html", project=project, images=page_images,
                           total=total, columns=columns, page=page, pages=pages)


@blueprint.get("/projects/<int:project_id>/export")
@admin_required
def export_download(project_id):
    """Download an export of a project: ?kind=labels|consensus|manifest&format=csv|json."""
    project = projects.get_project_or_404(project_id)
    kind = request.args.get("kind", "labels")
    export_format = request.args.get("format", "csv")
    try:
        text = export.export_text(project, kind, export_format)
    except export.ExportError as error:
        return Response(str(error) + "\n", status=400, mimetype="text/plain")
    return Response(text, mimetype=export.MIMETYPES[export_format], headers={
        "Content-Disposition": export.content_disposition(project, kind, export_format)})
