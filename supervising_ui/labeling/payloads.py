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
    return {"image_id": image_id, "project_id": project.id,
            "image_url": f"/api/images/{image_id}/file", "filename": image["original_name"],
            "width": image["width"], "height": image["height"], "metadata": image["meta"] or {},
            "lease_expires_at": iso_utc(given.lease_expires_at), "pick": given.pick,
            "suggestion": suggestion.to_json() if suggestion else None}


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
