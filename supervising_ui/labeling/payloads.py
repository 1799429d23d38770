"""What the labeling API answers: an image handed to a labeler, a stored label.

An image payload carries what the page needs to show the image (URL, size, metadata), the
lease and how the image was picked, and the serving model's suggestion unless it is hidden.
Times are written by timestamps.iso_utc, as everywhere else.
"""
from __future__ import annotations

from datetime import datetime

from ..timestamps import iso_utc
from . import decisions, picking, suggestions
from .access import keep_handed_image, stored_image
from .leases import Assignment
from .settings import ProjectSettings


def image_payload(image_id: int, project: ProjectSettings, given: Assignment) -> dict:
    """Return what a labeler needs to label an image: its URL, metadata and the suggestion."""
    image = given.image or vars(stored_image(image_id))
    suggestion = suggestions.suggestion_for(image_id, project, image.get("prediction"),
                                            known="prediction" in image)
    # A gold image is unannounced: the labeler is told it came at random.
    pick = "random" if given.pick == "gold" else given.pick
    return {"image_id": image_id, "project_id": project.id,
            "image_url": f"/api/images/{image_id}/file", "filename": image["original_name"],
            "width": image["width"], "height": image["height"], "metadata": image["meta"] or {},
            "lease_expires_at": iso_utc(given.lease_expires_at), "pick": pick,
            "pick_reason": pick_reason(pick, project),
            "suggestion": suggestion.to_json() if suggestion else None}


def pick_reason(pick: str, project: ProjectSettings) -> str:
    """Say in a sentence why the labeler got this image (the page shows it beside the name)."""
    uncertainty_order = project.serving_order != "random"
    if pick == "uncertainty":
        return f"the serving model v{project.serving_version} is least sure of this image"
    if pick == "audit":
        return (f"a random image: {100 * project.audit_share:.0f}% are, so that the model's "
                "figures are measured on images it did not choose")
    if pick == "random" and uncertainty_order and project.serving_model_id is None:
        after = f" after {project.retrain_every} labels" if project.retrain_every else \
            " once an admin retrains"
        return ("random: no model serves yet; the least certain images come first once the "
                f"first retrain has made one{after}")
    if pick == "random" and uncertainty_order:
        return "random: the serving model has predicted no other open image"
    if pick == "random":
        return "random order, as the project's settings ask"
    if pick == "settle":
        return "its labels do not settle its class yet: one more label may"
    if pick == "put_off":
        return "an image you put off with Later: nothing else is left"
    if pick == "held":
        return "the image you were given before (still yours)"
    if pick == "undo":
        return "the image whose label you took back"
    return pick


def next_image_payload(project: ProjectSettings, user, now: datetime,
                       after_image_id: int | None = None) -> dict | None:
    """Hand user their next image (picking.next_image) as the API shows it; None: none left."""
    given = picking.next_image(project, user, now, after_image_id=after_image_id)
    if given is None:
        return None
    if given.image is not None:
        keep_handed_image(project.id, given.image_id, given.image)
    return image_payload(given.image_id, project, given)


def undo_payload(project: ProjectSettings, user, now: datetime) -> dict:
    """Undo user's last label (decisions.undo_last_label); answer its image and old class."""
    given, previous = decisions.undo_last_label(project, user, now)
    return image_payload(given.image_id, project, given) | {"previous_label": previous}


def label_payload(label: dict) -> dict:
    """Return a stored label (decisions.SubmitResult.label) as the API shows it."""
    return label | {"created_at": iso_utc(label["created_at"])}
