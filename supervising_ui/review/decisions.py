"""A reviewer's decision on an image: accept, fix or reject, stored with who, when and why.

accept settles the image to the class of the label under review (label_id), or to its
consensus class; fix settles it to the class the reviewer names; a settled image's class is
known truth for every consensus method (consensus.settled_class_ids). reject deletes the
label under review (it stops counting everywhere: consensus, search, the image's label
count, so the image goes back to the pool, where the labeler it came from gets it last) and
keeps what it said in the review row. Each function commits its own write.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update

from ..consensus import consensus_details
from ..extensions import db
from ..labeling.leases import serialized_write
from ..models import REVIEW_DECISIONS, Image, Label, Project, Review, Skip
from ..search import index as search_index
from ..timestamps import iso_utc
from . import consensus_jobs
from .queue import ReviewError

REASON_CHARACTERS = 300


def record_review(project: Project, image_id: int, reviewer_id: int, body: dict,
                  now: datetime) -> dict:
    """Store a review of an image from a JSON body {decision, label, label_id, reason}."""
    decision, reason = body.get("decision"), body.get("reason")
    if decision not in REVIEW_DECISIONS:
        raise ReviewError(f"decision must be one of {', '.join(REVIEW_DECISIONS)}", 400)
    if reason is not None and not isinstance(reason, str):
        raise ReviewError("reason must be text", 400)
    reason = (reason or "").strip()[:REASON_CHARACTERS] or None
    label = _label_under_review(image_id, body.get("label_id"), decision)
    review = Review(project_id=project.id, image_id=image_id, reviewer_id=reviewer_id,
                    decision=decision, reason=reason, created_at=now,
                    labeler_id=label.user_id if label else None,
                    labeler_class_id=label.label_class_id if label else None)
    if decision == "fix":
        review.label_class_id = _class_id(project, body.get("label"))
    elif decision == "accept":
        review.label_class_id = label.label_class_id if label else _consensus_class(project, image_id)
    elif not reason:
        raise ReviewError("a reject needs a short reason", 400)
    with serialized_write():
        db.session.add(review)
        if decision == "reject":
            _reject(label, now)
        db.session.commit()
    if project.consensus_method != "majority":
        consensus_jobs.request_consensus(project.id)
    return review_payload(project, review)


def _label_under_review(image_id: int, label_id, decision: str) -> Label | None:
    """The label named by label_id (it must be on this image); a reject needs one, unless the
    image has exactly one label."""
    if label_id is not None:
        if not isinstance(label_id, int) or isinstance(label_id, bool):
            raise ReviewError("label_id must be a label's id", 400)
        label = db.session.get(Label, label_id)
        if label is None or label.image_id != image_id:
            raise ReviewError(f"no label {label_id} on image {image_id}", 404)
        return label
    if decision != "reject":
        return None
    labels = db.session.scalars(select(Label).where(Label.image_id == image_id).limit(2)).all()
    if len(labels) != 1:
        raise ReviewError("say which label to reject (label_id)" if labels
                          else f"image {image_id} has no label to reject", 400)
    return labels[0]


def _class_id(project: Project, name) -> int:
    """The id of the project's class with this name; 400 otherwise."""
    for label_class in project.classes:
        if label_class.name == name:
            return label_class.id
    raise ReviewError(f"a fix needs the right class: one of {', '.join(project.class_names)}", 400)


def _consensus_class(project: Project, image_id: int) -> int:
    """The image's consensus class id; 400 when it has none to accept."""
    class_id = consensus_details(project.id, [image_id])[1].get(image_id, (None, 0.0, 0))[0]
    if class_id is None:
        raise ReviewError("this image has no consensus class to accept: fix it with a class", 400)
    return class_id


def _reject(label: Label, now: datetime) -> None:
    """Delete the label, take it off its image's count and put the image off for its labeler."""
    image_id, user_id = label.image_id, label.user_id
    db.session.delete(label)
    db.session.execute(update(Image).where(Image.id == image_id).values(
        label_count=Image.label_count - 1).execution_options(synchronize_session=False))
    if db.session.scalar(select(Skip.id).where(Skip.image_id == image_id,
                                               Skip.user_id == user_id)) is None:
        db.session.add(Skip(image_id=image_id, user_id=user_id, created_at=now))
    db.session.flush()
    search_index.refresh_images([image_id])


def review_payload(project: Project, review: Review) -> dict:
    """A stored review as JSON-ready values."""
    names = {c.id: c.name for c in project.classes}
    return {"review_id": review.id, "image_id": review.image_id, "decision": review.decision,
            "label": names.get(review.label_class_id), "reason": review.reason,
            "labeler_id": review.labeler_id, "labeler_label": names.get(review.labeler_class_id),
            "reviewer_id": review.reviewer_id, "created_at": iso_utc(review.created_at)}
