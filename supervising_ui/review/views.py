"""The review queue and agreement pages and their JSON API: parse, call one function, respond.

The queue and the reviews are for reviewers and admins (403 for labelers); agreement figures
are everyone's for reviewers and admins, a labeler's own row for a labeler. A project the user
may not see is a 404, like a missing one.
"""
from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user

from ..accounts.guard import admin_required, reviewer_required
from ..downloads import attachment
from ..models import CONSENSUS_METHODS, utcnow
from . import access, agreement, decisions, finder, gold, queue
from .queue import ReviewError

blueprint = Blueprint("review", __name__)

# The review page's keys (class keys come from the labeling page's rule: 1-9, then letters).
REVIEW_KEYS = {"A": "accept the label under review", "R": "reject it (with a short reason)",
               "K": "skip: next image", "class key": "fix: the right class"}
CLASS_KEYS = "123456789" + "".join(c for c in "bcdefghijlmnopqstuvwxyz")


def _user():
    """The user of this request (not the current_user proxy)."""
    return current_user._get_current_object()


def _api_error(error: ReviewError):
    """A ReviewError as the API's JSON error."""
    response = jsonify(error=error.message)
    response.status_code = error.status
    return response


def _project_or_404(project_id: int):
    """The project if the user may see it, else 404 (page or API)."""
    try:
        return access.visible_project(_user(), project_id)
    except ReviewError as error:
        abort(_api_error(error) if request.path.startswith("/api/") else error.status)


@blueprint.get("/projects/<int:project_id>/review")
@reviewer_required
def review_page(project_id):
    """The keyboard-first review page; review.js fetches the queue's items."""
    project = _project_or_404(project_id)
    classes = [{"name": name, "key": CLASS_KEYS[i] if i < len(CLASS_KEYS) else None}
               for i, name in enumerate(project.class_names)]
    return render_template("review/queue.html", project=project, classes=classes,
                           keys=REVIEW_KEYS)


@blueprint.get("/api/projects/<int:project_id>/review/next")
@reviewer_required
def api_review_next(project_id):
    """The next image to review: ?labeler=NAME&class=NAME&exclude=ID,ID (skipped ones)."""
    project = _project_or_404(project_id)
    try:
        chosen = queue.parse_filter(project, request.args.get("labeler"),
                                    request.args.get("class"), request.args.get("exclude"))
        item = queue.next_item(project, chosen)
    except ReviewError as error:
        return _api_error(error)
    return jsonify(item=item, done=item is None)


@blueprint.post("/api/images/<int:image_id>/review")
@reviewer_required
def api_review(image_id):
    """Store a review: {"decision": "accept"|"fix"|"reject", "label": CLASS, "label_id": ID,
    "reason": TEXT}; 201 with the stored review."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return _api_error(ReviewError('send a JSON object: {"decision": "accept"|"fix"|"reject", '
                                      '"label": CLASS, "label_id": ID, "reason": TEXT}', 400))
    try:
        project = access.image_project(_user(), image_id)
        stored = decisions.record_review(project, image_id, _user().id, body, utcnow())
    except ReviewError as error:
        return _api_error(error)
    return jsonify(stored), 201


@blueprint.get("/projects/<int:project_id>/agreement")
def agreement_page(project_id):
    """Agreement figures: everyone's for reviewers and admins, a labeler's own otherwise."""
    project = _project_or_404(project_id)
    report = agreement.agreement_report(project, access.figures_of(_user()),
                                        show_gold=_user().may_review)
    return render_template("review/agreement.html", project=project, report=report,
                           methods=CONSENSUS_METHODS)


@blueprint.get("/api/projects/<int:project_id>/agreement")
def api_agreement(project_id):
    """The agreement figures as JSON; ?labeler=NAME keeps one labeler's row (a labeler gets
    their own row only, and 404 for anyone else's)."""
    project = _project_or_404(project_id)
    try:
        whose = access.figures_of(_user(), request.args.get("labeler"))
    except ReviewError as error:
        return _api_error(error)
    return jsonify(agreement.agreement_report(project, whose, show_gold=_user().may_review))


@blueprint.get("/projects/<int:project_id>/agreement.csv")
def agreement_csv(project_id):
    """The per-labeler agreement figures as CSV (?labeler=NAME as for the JSON)."""
    project = _project_or_404(project_id)
    try:
        whose = access.figures_of(_user(), request.args.get("labeler"))
    except ReviewError as error:
        abort(error.status)
    report = agreement.agreement_report(project, whose, show_gold=_user().may_review)
    return Response(agreement.agreement_csv(report), mimetype="text/csv", headers={
        "Content-Disposition": attachment(project.name, "-agreement.csv",
                                          f"project-{project.id}")})


@blueprint.post("/projects/<int:project_id>/consensus-method")
@admin_required
def consensus_method(project_id):
    """Set the project's consensus method (majority or dawid-skene) from the agreement page."""
    project = _project_or_404(project_id)
    try:
        access.set_consensus_method(project, request.form.get("method", ""))
        flash(f"Consensus method: {project.consensus_method}; recomputing in the background.",
              "info")
    except ReviewError as error:
        flash(error.message, "error")
    return redirect(url_for("review.agreement_page", project_id=project.id))


# One rule per path with its methods: an id out of range is then 404 for each of them (with a
# rule per method, werkzeug answered 405 to all but one).
@blueprint.route("/api/projects/<int:project_id>/gold", methods=["GET", "POST"])
@admin_required
def api_gold(project_id):
    """GET: the project's gold images with their answers; POST: mark gold images from a CSV
    body with the columns filename and gold (the answer). Admins only."""
    project = _project_or_404(project_id)
    if request.method == "GET":
        return jsonify(images=gold.gold_list(project))
    try:
        return jsonify(gold.import_gold_csv(project, request.get_data(as_text=True)))
    except ReviewError as error:
        return _api_error(error)


@blueprint.route("/api/images/<int:image_id>/gold", methods=["PUT", "DELETE"])
@admin_required
def api_image_gold(image_id):
    """PUT {"label": CLASS}: make an image gold with that answer; DELETE: make it ordinary."""
    body = request.get_json(silent=True) if request.method == "PUT" else {"label": None}
    if not isinstance(body, dict) or (request.method == "PUT" and
                                      not isinstance(body.get("label"), str)):
        return _api_error(ReviewError('send a JSON object: {"label": CLASS}', 400))
    try:
        project = access.image_project(_user(), image_id)
        return jsonify(gold.set_gold(project, image_id, body["label"]))
    except ReviewError as error:
        return _api_error(error)


@blueprint.post("/projects/<int:project_id>/label-issues")
@admin_required
def find_label_issues(project_id):
    """Queue the label-error finder from the review page; back to the queue."""
    project = _project_or_404(project_id)
    if finder.request_finder(project.id):
        flash("The label-error finder runs in the background; its likely errors join the "
              "queue when it is done.", "info")
    else:
        flash("The label-error finder is already queued or running.", "info")
    return redirect(url_for("review.review_page", project_id=project.id))
