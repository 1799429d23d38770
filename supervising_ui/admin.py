"""Admin pages: projects, class lists, settings, members, image import and users (admins only)."""
from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_login import current_user

from . import accounts, membership, projects, storage
from .auth import admin_required
from .importing import ImportRefused, uploads
from .learning import classify
from .models import SERVING_ORDERS, Project

blueprint = Blueprint("admin", __name__, url_prefix="/admin")
IMAGES_PER_PAGE = 50


@blueprint.before_request
@admin_required
def require_admin():
    """Every admin page is for admins only (403 for everyone else)."""


def _back_to_project(project: Project, **arguments):
    return redirect(url_for("admin.project", project_id=project.id, **arguments))


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
        return redirect(url_for("admin.index"))
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


@blueprint.post("/projects/<int:project_id>/import/upload")
@admin_required
def import_upload(project_id):
    """Stage uploaded images, zips and an optional manifest, and queue their import."""
    project = projects.get_project_or_404(project_id)
    return _start_import(project, lambda: uploads.submit_upload_import(
        project, request.files.getlist("files"), current_user.id))


@blueprint.post("/projects/<int:project_id>/import/server")
@admin_required
def import_server(project_id):
    """Queue the import of a folder and/or manifest below IMPORT_ROOT on the server."""
    project = projects.get_project_or_404(project_id)
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


@blueprint.get("/images/<int:image_id>/thumbnail")
@admin_required
def image_thumbnail(image_id):
    """A small cached JPEG of an image, found by its id only, for the image table."""
    image = projects.get_image_or_404(image_id)
    try:
        path = storage.thumbnail_path(current_app.config["IMAGE_STORE"],
                                      current_app.config["CACHE_DIR"], image.storage_key)
    except (OSError, ValueError):  # missing or unreadable stored file: logged, not a crash
        current_app.logger.exception("no thumbnail for image %s", image_id)
        abort(404)
    return send_file(path, mimetype="image/jpeg", max_age=86400, conditional=True,
                     etag=f"thumbnail-{image.content_hash}")


@blueprint.get("/users")
@admin_required
def users_page():
    """The user list and the form that creates a user."""
    return render_template("admin/users.html", users=accounts.list_users())


@blueprint.post("/users")
@admin_required
def create_user_view():
    """Create a user and show the generated password once, in this response only."""
    try:
        user, password = accounts.create_user(request.form.get("username", ""),
                                              role=request.form.get("role", "labeler"))
    except accounts.AccountError as error:
        flash(f"User not created: {error}.", "error")
        return redirect(url_for("admin.users_page"))
    return render_template("admin/users.html", users=accounts.list_users(), new_user=user,
                           new_password=password), {"Cache-Control": "no-store"}


@blueprint.post("/users/<int:user_id>/active")
@admin_required
def set_user_active(user_id):
    """Deactivate or reactivate a user."""
    return _user_edit(user_id, lambda user: accounts.set_active(
        user, request.form.get("active") == "1", current_user))


@blueprint.post("/users/<int:user_id>/role")
@admin_required
def set_user_role(user_id):
    """Change a user's role."""
    return _user_edit(user_id, lambda user: accounts.set_role(
        user, request.form.get("role", ""), current_user))


def _user_edit(user_id: int, edit):
    """Run one change to a user, flash its outcome and go back to the user list."""
    try:
        user = accounts.get_user(user_id)
        edit(user)
        flash(f"Saved {user.username!r}: {user.role}, {'active' if user.active else 'deactivated'}.",
              "info")
    except accounts.AccountError as error:
        flash(f"Not saved: {error}.", "error")
    return redirect(url_for("admin.users_page"))
