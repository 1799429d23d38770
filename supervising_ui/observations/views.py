"""Observation pages and API: the list and import form, the viewer, deep-zoom tiles served by
id, the overlay, the size-frequency numbers, the next tile to mark."""
from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_login import current_user

from ..accounts.guard import admin_required
from ..models import utcnow
from . import files, overlay, pages, service, work
from .geo import pixel_to_latlon

blueprint = Blueprint("observations", __name__)

# Deep-zoom tiles never change for an observation id (a re-tiling writes the same pixels).
TILE_MAX_AGE = 7 * 24 * 3600


@blueprint.get("/projects/<int:project_id>/observations")
def list_page(project_id):
    """The project's observations, and (for admins) the import form."""
    project = service.visible_project_or_404(current_user, project_id)
    return render_template("observations/list.html", page=pages.list_page(project))


@blueprint.post("/admin/projects/<int:project_id>/observations/import")
@admin_required
def import_upload(project_id):
    """Store an uploaded observation (image, optional PDS label) and queue its tiling."""
    project = service.visible_project_or_404(current_user, project_id)
    wants_json = request.accept_mimetypes.best == "application/json"
    try:
        observation, job = service.import_uploaded(
            project, request.form.get("name", ""), request.files.get("image"),
            request.files.get("label"), current_user.id)
    except service.ObservationRefused as error:
        if wants_json:
            return jsonify(error=str(error)), 400
        flash(f"Observation not imported: {error}.", "error")
        return redirect(url_for("observations.list_page", project_id=project.id))
    if wants_json:
        return jsonify(observation_id=observation.id, job_id=job.id,
                       status_url=url_for("jobs.status", job_id=job.id)), 202
    flash(f"Observation {observation.name} imported; its tiles are being made (job {job.id}).",
          "success")
    return redirect(url_for("observations.list_page", project_id=project.id))


@blueprint.post("/admin/projects/<int:project_id>/observations/settings")
@admin_required
def update_settings(project_id):
    """Set the project's labelers per tile and landmarks' minimum votes."""
    project = service.visible_project_or_404(current_user, project_id)
    try:
        service.update_settings(project, request.form.get("labelers_per_tile", ""),
                                request.form.get("landmark_min_votes", ""))
        flash("Observation settings saved.", "success")
    except service.ObservationRefused as error:
        flash(f"Settings not saved: {error}.", "error")
    return redirect(url_for("observations.list_page", project_id=project.id))


@blueprint.get("/projects/<int:project_id>/observations/<int:observation_id>")
def observation_page(project_id, observation_id):
    """The observation in the deep-zoom viewer, its tiles, overlay and plot."""
    observation = service.visible_observation(current_user, observation_id, project_id)
    return render_template("observations/page.html",
                           page=pages.viewer_page(observation, current_user.id, utcnow()))


@blueprint.post("/projects/<int:project_id>/observations/<int:observation_id>/next")
def next_tile(project_id, observation_id):
    """Lease the next tile to mark to the user and open its labeling page."""
    observation = service.visible_observation(current_user, observation_id, project_id)
    tile = work.next_tile(observation, current_user.id, utcnow())
    if tile is None:
        if request.accept_mimetypes.best == "application/json":
            return jsonify(tile=None)
        flash("No tile of this observation is left for you to mark.", "success")
        return redirect(url_for("observations.observation_page", project_id=project_id,
                                observation_id=observation_id))
    url = f"/projects/{project_id}/observations/{observation_id}/tiles/{tile.id}/label"
    if request.accept_mimetypes.best == "application/json":
        return jsonify(tile={"id": tile.id, "x": tile.x, "y": tile.y, "url": url})
    return redirect(url)


@blueprint.get("/api/observations/<int:observation_id>")
def observation_api(observation_id):
    """The observation page's data as JSON (status, scale, tiles and their states)."""
    observation = service.visible_observation(current_user, observation_id)
    return jsonify(pages.viewer_page(observation, current_user.id, utcnow()))


@blueprint.get("/api/observations/<int:observation_id>/deepzoom.dzi")
def deepzoom_descriptor(observation_id):
    """The Deep Zoom descriptor of a ready observation."""
    observation = service.visible_observation(current_user, observation_id)
    if observation.status != "ready":
        abort(404)
    response = Response(pages.descriptor_xml(observation), mimetype="application/xml")
    response.headers["Cache-Control"] = "private, max-age=300"
    return response


@blueprint.get("/api/observations/<int:observation_id>/deepzoom_files/<int(min=0):level>/"
               "<int(min=0):column>_<int(min=0):row>.jpg")
def deepzoom_tile(observation_id, level, column, row):
    """One deep-zoom tile, found from the ids and numbers in the URL (never a path)."""
    observation = service.visible_observation(current_user, observation_id)
    path = files.tile_path(observation.id, observation.width, observation.height, level,
                           column, row)
    if path is None or observation.status != "ready" or not path.is_file():
        abort(404)
    response = send_file(path, mimetype="image/jpeg", max_age=TILE_MAX_AGE, conditional=True)
    response.headers["Cache-Control"] = f"private, max-age={TILE_MAX_AGE}, immutable"
    return response


@blueprint.get("/api/observations/<int:observation_id>/overlay")
def overlay_api(observation_id):
    """The landmarks to draw over the observation, with class, confidence, lat/lon, counts."""
    observation = service.visible_observation(current_user, observation_id)
    return jsonify(overlay.overlay(observation))


@blueprint.get("/api/observations/<int:observation_id>/sfd")
def sfd_api(observation_id):
    """The crater size-frequency numbers of one class (?class=crater) of the observation."""
    observation = service.visible_observation(current_user, observation_id)
    return jsonify(overlay.size_frequency(observation, request.args.get("class") or None))


@blueprint.get("/api/observations/<int:observation_id>/latlon")
def latlon_api(observation_id):
    """Latitude and longitude of a pixel position (?x=..&y=..) of the observation."""
    observation = service.visible_observation(current_user, observation_id)
    x, y = request.args.get("x", type=float), request.args.get("y", type=float)
    if x is None or y is None or not (0 <= x <= observation.width and 0 <= y <= observation.height):
        return jsonify(error="give x and y inside the image, in pixels"), 400
    if not observation.projection:
        return jsonify(x=x, y=y, latitude=None, longitude=None,
                       note="no PDS label: no latitude or longitude")
    latitude, longitude = pixel_to_latlon(observation.projection, x, y)
    return jsonify(x=x, y=y, latitude=latitude, longitude=longitude)
