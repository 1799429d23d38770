"""The search pages and their JSON API: parse, call one search service function, respond."""
from flask import (
    Blueprint,
    Response,
    abort,
    jsonify,
    render_template,
    request,
    send_file,
    stream_with_context,
)
from flask_login import current_user

from . import service
from .query import SearchError

blueprint = Blueprint("search", __name__)

# Thumbnails change only with the image's bytes (their etag), so browsers may keep them a day.
THUMBNAIL_MAX_AGE = 86400


def _project(project_id: int):
    """Return the project the user may see, or answer 404."""
    project = service.visible_project(project_id, current_user)
    if project is None:
        abort(404)
    return project


def _api_project(project_id: int):
    """Return the project the user may see, or answer 404 in JSON."""
    project = service.visible_project(project_id, current_user)
    if project is None:
        response = jsonify(error=f"no project {project_id} that you may see")
        response.status_code = 404
        abort(response)
    return project


def _parameters() -> list[tuple[str, str]]:
    """Return the query string as (name, value) pairs, repeats kept."""
    return list(request.args.items(multi=True))


@blueprint.get("/projects/<int:project_id>/search")
def page(project_id):
    """The search page: facets, slider, grid; the script asks the JSON API."""
    return render_template("search/page.html", **service.page_context(_project(project_id)))


@blueprint.get("/projects/<int:project_id>/groups")
def groups_page(project_id):
    """The groups view: per group, its images of a class at or above a threshold."""
    return render_template("search/groups.html", **service.page_context(_project(project_id)))


@blueprint.get("/projects/<int:project_id>/search/images/<int:image_id>")
def detail(project_id, image_id):
    """The detail of one image: large, its metadata, labels and the model's top classes."""
    project = _project(project_id)
    image = service.visible_image(project_id, image_id, current_user)
    if image is None:
        abort(404)
    return render_template("search/detail.html", project=project,
                           image=service.image_detail(project, image, _parameters()),
                           query=request.query_string.decode())


@blueprint.get("/projects/<int:project_id>/search.csv")
def download(project_id):
    """Download the current result as CSV (every match, in the chosen order)."""
    project = _project(project_id)
    try:
        disposition, lines = service.csv_download(project, _parameters())
    except SearchError as error:
        return Response(str(error) + "\n", status=400, mimetype="text/plain")
    return Response(stream_with_context(lines), mimetype="text/csv", headers={
        "Content-Disposition": disposition})


def _answer(search_function, project_id: int):
    """Answer search_function(project, the query's parameters) as JSON, or 400 with why."""
    project = _api_project(project_id)
    try:
        return jsonify(search_function(project, _parameters()))
    except SearchError as error:
        return jsonify(error=str(error)), 400


@blueprint.get("/api/projects/<int:project_id>/search")
def api_search(project_id):
    """Search a project's images: total, one page of items, facet counts."""
    return _answer(service.search, project_id)


@blueprint.get("/api/projects/<int:project_id>/groups")
def api_groups(project_id):
    """Count the images of a class at or above a threshold per group."""
    return _answer(service.group_counts, project_id)


@blueprint.get("/api/images/<int:image_id>/thumbnail")
def thumbnail(image_id):
    """A small cached JPEG of an image, for anyone who may see its project."""
    image = service.visible_image(None, image_id, current_user)
    path = service.thumbnail(image) if image is not None else None
    if path is None:
        return jsonify(error=f"no image {image_id} that you may see"), 404
    response = send_file(path, mimetype="image/jpeg", max_age=THUMBNAIL_MAX_AGE,
                         conditional=True, etag=f"thumbnail-{image.content_hash}")
    response.cache_control.public = False
    response.cache_control.private = True
    return response
