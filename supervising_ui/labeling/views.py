"""The labeling page and its JSON endpoints: parse, call one function, respond.

No query and no transaction here: the lookups live in access.py, the work in picking.py,
decisions.py and counts.py, which commit their own writes. The views whose services write
one statement at a time say so (one_statement_writes): PostgreSQL then needs no BEGIN/COMMIT.
"""
from functools import wraps

from flask import Blueprint, abort, jsonify, render_template, request, send_file
from flask_login import current_user

from .. import storage
from ..faults import retry_safe
from ..models import utcnow
from . import access, counts, decisions, guide, payloads
from .access import StoredImage
from .leases import statements_commit_alone
from .settings import LabelingError, ProjectSettings

blueprint = Blueprint("labeling", __name__)

# Keys that act on the page; class keys skip the letters among them.
ACTION_KEYS = {"Enter": "submit the selected class", "L": "later: leave this image to others",
               "N": "not sure: put it off as unsure, with an optional comment",
               "?": "the field guide: what each class looks like",
               "U / Backspace": "undo: change your previous label",
               "S": "contrast stretch on/off", "+ / - / wheel": "zoom", "0": "fit"}
_ACTION_LETTERS = set("lnus")
CLASS_KEYS = "123456789" + "".join(c for c in "abcdefghijklmnopqrstuvwxyz"
                                   if c not in _ACTION_LETTERS)
# Images never change under an id, so browsers may keep them for a year.
IMAGE_MAX_AGE = 365 * 24 * 3600


def class_keys(names: list[str]) -> list[dict]:
    """Return each class with its keyboard key (1-9, then letters not used by actions)."""
    return [{"name": name, "key": CLASS_KEYS[index] if index < len(CLASS_KEYS) else None}
            for index, name in enumerate(names)]


def api_error(message: str, status: int):
    """Stop the request with a JSON error response that says what went wrong."""
    response = jsonify(error=message)
    response.status_code = status
    abort(response)


def one_statement_writes(view):
    """Decorate a view whose services only read or write one statement at a time, so that on
    PostgreSQL its statements commit by themselves (leases.statements_commit_alone)."""
    @wraps(view)
    def wrapped(*args, **kwargs):
        statements_commit_alone()
        return view(*args, **kwargs)
    return wrapped


def _labeler():
    """The user of this request, resolved once: every attribute read through flask-login's
    current_user proxy asks flask-login for the user again."""
    return current_user._get_current_object()


def _project(project_id: int) -> ProjectSettings:
    """Return the settings of a project the current user may label, or answer 404."""
    project = access.labelable_project(_labeler(), project_id)
    if project is None:
        api_error(f"no project {project_id} that you may label", 404)
    return project


def _image(image_id: int) -> tuple[StoredImage, ProjectSettings]:
    """Return an image and its project's settings if the current user may see them, or 404."""
    found = access.visible_image(_labeler(), image_id)
    if found is None:
        api_error(f"no image {image_id} that you may see", 404)
    return found


@blueprint.get("/projects/<int:project_id>/label")
def page(project_id):
    """The labeling page of a project."""
    project = access.labeling_page(_labeler(), project_id)
    if project is None:
        abort(404)
    return render_template("label.html", project=project,
                           classes=class_keys(project.class_names), actions=ACTION_KEYS,
                           guide=guide.field_guide(project.id))


@blueprint.get("/api/projects")
def api_projects():
    """List the projects the user may label, with their classes."""
    return jsonify(projects=access.labelable_projects(_labeler()))


@blueprint.get("/api/projects/<int:project_id>/next")
@one_statement_writes
def api_next(project_id):
    """Hand the user the next image to label (204 when none is left for them)."""
    project = _project(project_id)
    after = request.args.get("after", type=int)
    payload = payloads.next_image_payload(project, _labeler(), utcnow(), after_image_id=after)
    if payload is None:
        return "", 204
    return jsonify(payload)


@blueprint.get("/api/projects/<int:project_id>/progress")
@one_statement_writes
def api_progress(project_id):
    """Return the user's labels today and the project's done/total images."""
    project = _project(project_id)
    return jsonify(counts.labeling_counts(project, _labeler().id, utcnow()))


@blueprint.post("/api/projects/<int:project_id>/undo")
def api_undo(project_id):
    """Delete the user's last label in the project and hand its image back to them."""
    project = _project(project_id)
    try:
        payload = payloads.undo_payload(project, _labeler(), utcnow())
    except LabelingError as error:
        api_error(error.message, error.status)
    return jsonify(payload)


@blueprint.get("/api/images/<int:image_id>/file")
@one_statement_writes
def api_image_file(image_id):
    """Send an image's bytes from managed storage (by id only), cacheable for good."""
    image, _ = _image(image_id)
    path = access.image_file(image)
    if path is None:
        api_error(f"image {image_id} has no stored file", 404)
    response = send_file(path, mimetype=storage.mimetype_for_key(image.storage_key),
                         conditional=True, etag=image.content_hash, max_age=IMAGE_MAX_AGE)
    response.cache_control.public = False
    response.cache_control.private = True
    response.cache_control.immutable = True
    return response


@blueprint.post("/api/images/<int:image_id>/labels")
@retry_safe  # a label is stored once per request_id: a second run returns the stored one
@one_statement_writes
def api_submit(image_id):
    """Store the user's label for an image: 201 new, 200 a repeat of the same request_id."""
    image, project = _image(image_id)
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        api_error('send a JSON object: {"label": CLASS, "request_id": UUID, '
                  '"seconds_spent": SECONDS}', 400)
    try:
        result = decisions.record_label(image.id, project, _labeler(), body.get("label"),
                                        body.get("request_id"), body.get("seconds_spent"),
                                        utcnow())
    except LabelingError as error:
        api_error(error.message, error.status)
    return jsonify(payloads.label_payload(result.label)), 201 if result.created else 200


@blueprint.post("/api/images/<int:image_id>/later")
def api_later(image_id):
    """Put an image off: others get it first; it comes back only when nothing else is left.

    A JSON body {"unsure": true, "comment": TEXT} marks it unsure, with an optional comment.
    """
    image, _ = _image(image_id)
    body = request.get_json(silent=True)
    body = body if isinstance(body, dict) else {}
    unsure, comment = body.get("unsure") is True, body.get("comment")
    if comment is not None and not isinstance(comment, str):
        api_error("comment must be text", 400)
    decisions.put_off(image.id, _labeler(), utcnow(), unsure=unsure, comment=comment)
    return jsonify(image_id=image.id, put_off=True, unsure=unsure)
