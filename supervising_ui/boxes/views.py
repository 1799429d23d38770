"""The boxes blueprint: the tile labeling page, the box API, landmark review and export.

Views parse, call one function and respond; the lookups (access.py) answer 404 for what a
user may not see and 403 for a box that is not theirs; services commit their own writes.
"""
from flask import Blueprint, Response, abort, jsonify, render_template, request, send_file
from flask_login import current_user

from ..accounts.guard import admin_required, reviewer_required
from . import BoxError, access, exports, pages, proposals, review, service

blueprint = Blueprint("boxes", __name__)


def _user():
    return current_user._get_current_object()


def _api_error(error: BoxError):
    response = jsonify(error=error.message)
    response.status_code = error.status
    abort(response)


def _body() -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        _api_error(BoxError("send a JSON object"))
    return body


def _min_votes() -> int | None:
    value = request.args.get("min_votes")
    if value is None or value == "":
        return None
    if not value.isdigit() or int(value) < 1:
        _api_error(BoxError("min_votes must be a whole number of at least 1"))
    return int(value)


@blueprint.get("/projects/<int:project_id>/observations/<int:observation_id>/tiles/<int:tile_id>/label")
def tile_page(project_id, observation_id, tile_id):
    """The tile labeling page: draw boxes or circles with a class on one tile."""
    try:
        page = pages.tile_page(_user(), project_id, observation_id, tile_id)
    except BoxError as error:
        abort(error.status)
    return render_template("boxes/tile.html", page=page)


@blueprint.get("/api/observations/<int:observation_id>/tiles/<int:tile_id>/picture")
def tile_picture(observation_id, tile_id):
    """The picture of a tile and its margin (PNG), as the tile page shows it."""
    try:
        path = pages.tile_picture_file(_user(), observation_id, tile_id)
    except BoxError as error:
        _api_error(error)
    response = send_file(path, mimetype="image/png", max_age=3600)
    response.cache_control.private = True  # a project's pixels: no shared cache keeps them
    return response


@blueprint.get("/api/observations/<int:observation_id>/tiles/<int:tile_id>/boxes")
def tile_boxes(observation_id, tile_id):
    """The user's boxes on a tile, and the machine's proposals there."""
    try:
        observation, tile = access.tile_of(_user(), observation_id, tile_id)
        return jsonify(service.tile_boxes(_user(), observation, tile))
    except BoxError as error:
        _api_error(error)


@blueprint.post("/api/observations/<int:observation_id>/tiles/<int:tile_id>/boxes")
def create_box(observation_id, tile_id):
    """Store a box the user drew on a tile: {shape, label, x_min, y_min, x_max, y_max}."""
    body = _body()
    try:
        observation, tile = access.tile_of(_user(), observation_id, tile_id)
        box = service.create_box(_user(), observation, tile, body)
        return jsonify(service.box_payload(box, service.class_names(observation.project_id))), 201
    except BoxError as error:
        _api_error(error)


@blueprint.post("/api/observations/<int:observation_id>/tiles/<int:tile_id>/done")
def tile_done(observation_id, tile_id):
    """Mark the tile done for the user (their boxes on it are complete); say the next tile."""
    return _finish_tile(observation_id, tile_id, done=True)


@blueprint.post("/api/observations/<int:observation_id>/tiles/<int:tile_id>/later")
def tile_later(observation_id, tile_id):
    """Put the tile off for the user (Later); say the next tile."""
    return _finish_tile(observation_id, tile_id, done=False)


def _finish_tile(observation_id: int, tile_id: int, done: bool):
    try:
        return jsonify(pages.finish_tile(_user(), observation_id, tile_id, done=done))
    except BoxError as error:
        _api_error(error)


@blueprint.patch("/api/boxes/<int:box_id>")
def update_box(box_id):
    """Move, resize, reshape or reclass one of the user's boxes."""
    body = _body()
    try:
        box = access.own_box(_user(), box_id)
        observation = access.observation_of(_user(), box.observation_id)
        box = service.update_box(box, observation, body)
        return jsonify(service.box_payload(box, service.class_names(observation.project_id)))
    except BoxError as error:
        _api_error(error)


@blueprint.delete("/api/boxes/<int:box_id>")
def delete_box(box_id):
    """Delete one of the user's boxes."""
    try:
        service.delete_box(access.own_box(_user(), box_id))
    except BoxError as error:
        _api_error(error)
    return jsonify(deleted=box_id)


@blueprint.get("/api/observations/<int:observation_id>/landmarks")
def landmarks(observation_id):
    """The observation's consensus landmarks (or those with at least min_votes human votes)."""
    try:
        return jsonify(landmarks=exports.rows_for(_user(), observation_id, _min_votes()))
    except BoxError as error:
        _api_error(error)


@blueprint.get("/api/observations/<int:observation_id>/landmarks.<export_format>")
def export_landmarks(observation_id, export_format):
    """Download the observation's landmarks as CSV, GeoJSON, Pascal VOC or COCO."""
    try:
        download = exports.observation_download(_user(), observation_id, export_format,
                                                _min_votes())
    except BoxError as error:
        _api_error(error)
    return Response(download.text, mimetype=download.mimetype,
                    headers={"Content-Disposition": download.disposition})


@blueprint.get("/projects/<int:project_id>/observations/<int:observation_id>/landmarks/review")
@reviewer_required
def review_page(project_id, observation_id):
    """The reviewer's page: every landmark of an observation with its crop and decisions."""
    try:
        page = pages.review_page(_user(), project_id, observation_id)
    except BoxError as error:
        abort(error.status)
    return render_template("boxes/review.html", page=page)


@blueprint.post("/api/landmarks/<int:landmark_id>/review")
@reviewer_required
def review_landmark(landmark_id):
    """Accept, fix or reject a landmark: {decision, label?, x_min?, ...} (reviewers)."""
    body = _body()
    try:
        landmark = access.visible_landmark(_user(), landmark_id)
        landmark = review.review_landmark(_user(), landmark, body)
    except BoxError as error:
        _api_error(error)
    return jsonify(id=landmark.id, status=landmark.status)


@blueprint.post("/api/observations/<int:observation_id>/proposals")
@admin_required
def start_proposals(observation_id):
    """Queue the machine proposals of an observation (admins)."""
    try:
        job_id = proposals.request_proposals(access.observation_of(_user(), observation_id),
                                             _user().id)
    except BoxError as error:
        _api_error(error)
    return jsonify(job_id=job_id), 202


@blueprint.route("/projects/<int:project_id>/observations/<int:observation_id>/boxes/import",
                 methods=("GET", "POST"))
@admin_required
def import_boxes(project_id, observation_id):
    """The admin's form: import an annotator's VOC, COCO or CSV file onto an observation."""
    form = request.form if request.method == "POST" else None
    try:
        page, result, error = pages.import_form(_user(), project_id, observation_id, form,
                                                request.files.get("file"))
    except BoxError as error:
        abort(error.status)
    return render_template("boxes/import.html", page=page, result=result, error=error), \
        400 if error is not None else 200
