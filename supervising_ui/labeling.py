"""The labeling page and its JSON endpoints: parse, call one function, respond."""
import logging
from dataclasses import dataclass
from datetime import datetime

from flask import Blueprint, abort, current_app, jsonify, render_template, request, send_file
from flask_login import current_user
from sqlalchemy import bindparam, func, select

from . import assignment, storage, suggestions
from .assignment import Assignment, LabelingError, ProjectSettings
from .extensions import db
from .learning import triggers as retraining
from .models import Image, Label, ModelVersion, Project, utcnow

log = logging.getLogger(__name__)
blueprint = Blueprint("labeling", __name__)

# Keys that act on the page; class keys skip the letters among them.
ACTION_KEYS = {"Enter": "submit the selected class", "L": "later: leave this image to others",
               "U / Backspace": "undo: change your previous label",
               "S": "contrast stretch on/off", "+ / - / wheel": "zoom", "0": "fit"}
_ACTION_LETTERS = set("lus")
CLASS_KEYS = "123456789" + "".join(c for c in "abcdefghijklmnopqrstuvwxyz"
                                   if c not in _ACTION_LETTERS)
# Images never change under an id, so browsers may keep them for a year.
IMAGE_MAX_AGE = 365 * 24 * 3600


def can_access(user, project: Project) -> bool:
    """Return whether user may label (and see the images of) project: every active user for now."""
    return bool(user.is_authenticated and user.is_active and project is not None)


def class_keys(names: list[str]) -> list[dict]:
    """Return each class with its keyboard key (1-9, then letters not used by actions)."""
    return [{"name": name, "key": CLASS_KEYS[index] if index < len(CLASS_KEYS) else None}
            for index, name in enumerate(names)]


def api_error(message: str, status: int):
    """Stop the request with a JSON error response that says what went wrong."""
    response = jsonify(error=message)
    response.status_code = status
    abort(response)


@dataclass(frozen=True)
class StoredImage:
    """The columns of an image that the API shows or serves."""

    id: int
    project_id: int
    storage_key: str
    content_hash: str
    original_name: str
    width: int
    height: int
    meta: dict


_IMAGE_COLUMNS = (Image.id, Image.project_id, Image.storage_key, Image.content_hash,
                  Image.original_name, Image.width, Image.height, Image.meta)
_IMAGE = select(*_IMAGE_COLUMNS).where(Image.id == bindparam("image_id"))
# An image with its project's settings, in one query (every image request runs it).
_IMAGE_AND_PROJECT = (
    select(*_IMAGE_COLUMNS, *assignment.SETTINGS_COLUMNS)
    .join(Project, Project.id == Image.project_id)
    .outerjoin(ModelVersion, assignment.SERVING_MODEL)
    .where(Image.id == bindparam("image_id"))
    .order_by(ModelVersion.version.desc()).limit(1))


def stored_image(image_id: int) -> StoredImage | None:
    """Return the columns of an image the API needs, or None."""
    row = db.session.connection().execute(_IMAGE, {"image_id": image_id}).first()
    return StoredImage(*row) if row else None


def _project(project_id: int) -> ProjectSettings:
    """Return the settings of a project the current user may label, or answer 404."""
    project = assignment.project_settings(project_id)
    if project is None or not can_access(current_user, project):
        api_error(f"no project {project_id} that you may label", 404)
    return project


def _image(image_id: int) -> tuple[StoredImage, ProjectSettings]:
    """Return an image and its project's settings if the current user may see them, or 404."""
    row = db.session.connection().execute(_IMAGE_AND_PROJECT, {"image_id": image_id}).first()
    image, project = None, None
    if row is not None:
        split = len(_IMAGE_COLUMNS)
        image, project = StoredImage(*row[:split]), ProjectSettings(*row[split:])
    if project is None or not can_access(current_user, project):
        api_error(f"no image {image_id} that you may see", 404)
    return image, project


def _iso(moment: datetime | None) -> str | None:
    """Return a stored (naive UTC) time as ISO 8601 with a Z."""
    return moment.isoformat(timespec="seconds") + "Z" if moment else None


def image_payload(image_id: int, project: ProjectSettings, given: Assignment) -> dict:
    """Return what a labeler needs to label an image: its URL, metadata and the suggestion."""
    image = given.image or vars(stored_image(image_id))
    suggestion = suggestions.suggestion_for(image_id, project)
    return {"image_id": image_id, "project_id": project.id,
            "image_url": f"/api/images/{image_id}/file", "filename": image["original_name"],
            "width": image["width"], "height": image["height"], "metadata": image["meta"] or {},
            "lease_expires_at": _iso(given.lease_expires_at), "pick": given.pick,
            "suggestion": suggestion.to_json() if suggestion else None}


@blueprint.get("/projects/<int:project_id>/label")
def page(project_id):
    """The labeling page of a project."""
    project = db.session.get(Project, project_id)
    if project is None or not can_access(current_user, project):
        abort(404)
    return render_template("label.html", project=project,
                           classes=class_keys(project.class_names), actions=ACTION_KEYS)


@blueprint.get("/api/projects")
def api_projects():
    """List the projects the user may label, with their classes."""
    projects = db.session.scalars(select(Project).order_by(Project.name)).all()
    return jsonify(projects=[
        {"id": project.id, "name": project.name, "description": project.description,
         "classes": project.class_names, "labels_per_image": project.labels_per_image,
         "next_url": f"/api/projects/{project.id}/next"}
        for project in projects if can_access(current_user, project)])


@blueprint.get("/api/projects/<int:project_id>/next")
def api_next(project_id):
    """Hand the user the next image to label (204 when none is left for them)."""
    project = _project(project_id)
    after = request.args.get("after", type=int)
    given = assignment.next_image(project, current_user, utcnow(), after_image_id=after)
    if given is None:
        return "", 204
    return jsonify(image_payload(given.image_id, project, given))


@blueprint.get("/api/projects/<int:project_id>/progress")
def api_progress(project_id):
    """Return the user's labels today and the project's done/total images."""
    project = _project(project_id)
    return jsonify(progress(project, current_user.id, utcnow()))


def progress(project: ProjectSettings, user_id: int, now: datetime) -> dict:
    """Count the user's labels today (UTC) and the project's fully labeled and total images."""
    start_of_day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    mine_today = db.session.scalar(select(func.count(Label.id)).where(
        Label.user_id == user_id, Label.project_id == project.id,
        Label.created_at >= start_of_day))
    mine_total = db.session.scalar(select(func.count(Label.id)).where(
        Label.user_id == user_id, Label.project_id == project.id))
    images = Image.__table__
    done = db.session.scalar(select(func.count()).select_from(images).where(
        images.c.project_id == project.id, images.c.label_count >= project.labels_per_image))
    total = db.session.scalar(select(func.count()).select_from(images).where(
        images.c.project_id == project.id))
    return {"mine_today": mine_today, "mine_total": mine_total, "done": done, "total": total,
            "labels_per_image": project.labels_per_image}


@blueprint.post("/api/projects/<int:project_id>/undo")
def api_undo(project_id):
    """Delete the user's last label in the project and hand its image back to them."""
    project = _project(project_id)
    try:
        given, previous = assignment.undo_last_label(project, current_user, utcnow())
    except LabelingError as error:
        api_error(error.message, error.status)
    return jsonify(image_payload(given.image_id, project, given) | {"previous_label": previous})


@blueprint.get("/api/images/<int:image_id>/file")
def api_image_file(image_id):
    """Send an image's bytes from managed storage (by id only), cacheable for good."""
    image, _ = _image(image_id)
    try:
        path = storage.path_for_key(current_app.config["IMAGE_STORE"], image.storage_key)
    except ValueError:
        log.error("image %s has a malformed storage key %r", image.id, image.storage_key)
        api_error(f"image {image_id} has no stored file", 404)
    if not path.is_file():
        log.error("image %s: file %s is missing from the image store", image.id, path)
        api_error(f"image {image_id} has no stored file", 404)
    response = send_file(path, mimetype=storage.mimetype_for_key(image.storage_key),
                         conditional=True, etag=image.content_hash, max_age=IMAGE_MAX_AGE)
    response.cache_control.public = False
    response.cache_control.private = True
    response.cache_control.immutable = True
    return response


@blueprint.post("/api/images/<int:image_id>/labels")
def api_submit(image_id):
    """Store the user's label for an image: 201 new, 200 a repeat of the same request_id."""
    image, project = _image(image_id)
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        api_error('send a JSON object: {"label": CLASS, "request_id": UUID, '
                  '"seconds_spent": SECONDS}', 400)
    try:
        result = assignment.submit_label(image.id, project, current_user, body.get("label"),
                                         body.get("request_id"), body.get("seconds_spent"),
                                         utcnow())
    except LabelingError as error:
        api_error(error.message, error.status)
    if result.created:
        retraining.retrain_after_label(project)
    label = result.label | {"created_at": _iso(result.label["created_at"])}
    return jsonify(label), 201 if result.created else 200


@blueprint.post("/api/images/<int:image_id>/later")
def api_later(image_id):
    """Put an image off: others get it first; it comes back only when nothing else is left."""
    image, _ = _image(image_id)
    assignment.put_off(image.id, current_user, utcnow())
    return jsonify(image_id=image.id, put_off=True)
