"""The review queue: which image a reviewer sees next, and why.

In this order: images whose labels disagree; then images where the serving model disagrees
with the consensus at confidence >= MODEL_CONFIDENCE; then the label-error finder's ranking
(likely label errors, finder.py) of images no reviewer has looked at; then random spot checks of each
labeler's SPOT_CHECK_RECENT latest labels (the labeler with the fewest reviewed labels
first). Images a reviewer settled (accept or fix) leave the first two steps; an image with
any review leaves the spot checks. Filters: one labeler (images they labeled) and one class
(images with a label of that class). The reviewer's skips travel with the request (exclude).
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from sqlalchemy import func, select

from ..consensus import consensus_details
from ..extensions import db
from ..models import (
    Label,
    LabelClass,
    LabelIssue,
    ModelVersion,
    Prediction,
    Project,
    Review,
    User,
)

MODEL_CONFIDENCE = 0.9
SPOT_CHECK_RECENT = 50
REASONS = {"disagreement": "its labels disagree",
           "model": f"the serving model disagrees with the consensus at confidence >= {MODEL_CONFIDENCE}",
           "finder": "likely label error: the label-error finder doubts its class",
           "spot_check": "a random spot check of a labeler's recent labels"}


class ReviewError(Exception):
    """A review request that cannot be carried out, with a message and an HTTP status."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message, self.status = message, status


@dataclass(frozen=True)
class QueueFilter:
    """What the reviewer narrowed the queue to (ids resolved), and the images they skipped."""

    labeler_id: int | None = None
    class_id: int | None = None
    exclude: tuple[int, ...] = ()


def parse_filter(project: Project, labeler: str | None, class_name: str | None,
                 exclude: str | None) -> QueueFilter:
    """Resolve the labeler's username and the class name of a request; 400 on unknown ones."""
    labeler_id = class_id = None
    if labeler:
        labeler_id = db.session.scalar(select(User.id).where(User.username == labeler))
        if labeler_id is None:
            raise ReviewError(f"no labeler named {labeler[:80]!r}", 400)
    if class_name:
        class_id = next((c.id for c in project.classes if c.name == class_name), None)
        if class_id is None:
            raise ReviewError(f"no class {class_name[:80]!r} in this project", 400)
    skipped = tuple(int(part) for part in (exclude or "").split(",")[:500] if part.strip().isdigit())
    return QueueFilter(labeler_id, class_id, skipped)


def next_item(project: Project, queue_filter: QueueFilter, rng=random) -> dict | None:
    """Return the next image to review with its labels and why it is in the queue, or None."""
    settled = _settled_images(project.id)
    found = _disagreeing(project.id, queue_filter, settled)
    reason = "disagreement"
    if found is None:
        found, reason = _model_disagrees(project.id, queue_filter, settled), "model"
    if found is None:
        found, reason = _likely_error(project.id, queue_filter), "finder"
    if found is None:
        found, reason = _spot_check(project.id, queue_filter, rng), "spot_check"
    if found is None:
        db.session.commit()  # end the read
        return None
    image_id, focus_label_id = found
    return item_payload(project, image_id, reason, focus_label_id)


def _settled_images(project_id: int):
    """A select of the project's images a reviewer accepted or fixed."""
    return select(Review.image_id).where(Review.project_id == project_id,
                                         Review.decision.in_(("accept", "fix")))


def _filtered(query, project_id: int, queue_filter: QueueFilter):
    """Narrow a query over Label.image_id to the filter's labeler, class and skips."""
    if queue_filter.labeler_id is not None:
        query = query.where(Label.image_id.in_(select(Label.image_id).where(
            Label.project_id == project_id, Label.user_id == queue_filter.labeler_id)))
    if queue_filter.class_id is not None:
        query = query.where(Label.image_id.in_(select(Label.image_id).where(
            Label.project_id == project_id, Label.label_class_id == queue_filter.class_id)))
    if queue_filter.exclude:
        query = query.where(Label.image_id.not_in(queue_filter.exclude))
    return query


def _disagreeing(project_id: int, queue_filter: QueueFilter, settled) -> tuple | None:
    """The first unsettled image whose labels name more than one class, with its latest label."""
    query = (select(Label.image_id, func.max(Label.id))
             .where(Label.project_id == project_id, Label.image_id.not_in(settled))
             .group_by(Label.image_id)
             .having(func.count(func.distinct(Label.label_class_id)) > 1)
             .order_by(Label.image_id).limit(1))
    row = db.session.execute(_filtered(query, project_id, queue_filter)).first()
    return tuple(row) if row else None


def _model_disagrees(project_id: int, queue_filter: QueueFilter, settled) -> tuple | None:
    """The first unsettled labeled image whose confident serving prediction is not its consensus."""
    query = (select(Label.image_id, Prediction.label_class_id, func.max(Label.id))
             .join(Prediction, Prediction.image_id == Label.image_id)
             .join(ModelVersion, ModelVersion.id == Prediction.model_version_id)
             .where(Label.project_id == project_id, ModelVersion.is_serving.is_(True),
                    Prediction.confidence >= MODEL_CONFIDENCE, Label.image_id.not_in(settled))
             .group_by(Label.image_id, Prediction.label_class_id).order_by(Label.image_id))
    candidates = db.session.execute(_filtered(query, project_id, queue_filter)).all()
    if not candidates:
        return None
    details = consensus_details(project_id)[1]
    for image_id, predicted, _latest in candidates:
        consensus = details.get(image_id, (None, 0.0, 0))[0]
        if consensus is not None and consensus != predicted:
            return image_id, None  # no one label under review: accept takes the consensus
    return None


def _likely_error(project_id: int, queue_filter: QueueFilter) -> tuple | None:
    """The finder's best-ranked image that no reviewer has looked at yet."""
    reviewed = select(Review.image_id).where(Review.project_id == project_id)
    query = (select(Label.image_id, func.max(Label.id))
             .join(LabelIssue, LabelIssue.image_id == Label.image_id)
             .where(Label.project_id == project_id, Label.image_id.not_in(reviewed))
             .group_by(Label.image_id, LabelIssue.rank).order_by(LabelIssue.rank).limit(1))
    row = db.session.execute(_filtered(query, project_id, queue_filter)).first()
    return (row[0], None) if row else None


def _spot_check(project_id: int, queue_filter: QueueFilter, rng) -> tuple | None:
    """A random unreviewed label among the recent ones of the least-reviewed labeler."""
    reviewed = select(Review.image_id).where(Review.project_id == project_id)
    labelers = db.session.scalars(select(Label.user_id).where(
        Label.project_id == project_id, Label.imported.is_(False)).distinct()).all()
    if queue_filter.labeler_id is not None:
        labelers = [uid for uid in labelers if uid == queue_filter.labeler_id]
    counts = dict(db.session.execute(select(Review.labeler_id, func.count(Review.id)).where(
        Review.project_id == project_id).group_by(Review.labeler_id)).all())
    for user_id in sorted(labelers, key=lambda uid: (counts.get(uid, 0), uid)):
        query = (select(Label.image_id, Label.id).where(
            Label.project_id == project_id, Label.user_id == user_id,
            Label.image_id.not_in(reviewed)).order_by(Label.id.desc()).limit(SPOT_CHECK_RECENT))
        recent = db.session.execute(_filtered(query, project_id, queue_filter)).all()
        if recent:
            return tuple(rng.choice(recent))
    return None


def item_payload(project: Project, image_id: int, reason: str, focus_label_id: int | None) -> dict:
    """What the review page shows of an image: its labels, consensus, prediction and reason."""
    labels = db.session.execute(
        select(Label.id, User.username, LabelClass.name, Label.created_at)
        .join(User, User.id == Label.user_id).join(LabelClass, LabelClass.id == Label.label_class_id)
        .where(Label.image_id == image_id).order_by(Label.id)).all()
    method, details = consensus_details(project.id, [image_id])
    class_id, posterior, count = details.get(image_id, (None, 0.0, 0))
    names = {c.id: c.name for c in project.classes}
    prediction = db.session.execute(
        select(Prediction.label_class_id, Prediction.confidence)
        .join(ModelVersion, ModelVersion.id == Prediction.model_version_id)
        .where(Prediction.image_id == image_id, ModelVersion.is_serving.is_(True))).first()
    if reason == "disagreement":  # the latest label that goes against the consensus, if any
        focus_label_id = next((label_id for label_id, _user, name, _created in reversed(labels)
                               if name != names.get(class_id)), focus_label_id)
    focused = next((name for label_id, _user, name, _created in labels
                    if label_id == focus_label_id), None)
    payload = {"image_id": image_id, "reason": reason, "why": REASONS[reason],
            "accept_settles_to": focused or names.get(class_id),
            "image_url": f"/api/images/{image_id}/file", "focus_label_id": focus_label_id,
            "labels": [{"label_id": label_id, "labeler": username, "label": name}
                       for label_id, username, name, _created in labels],
            "consensus": {"label": names.get(class_id), "posterior": round(posterior, 4),
                          "n_labels": count, "method": method},
            "prediction": None if prediction is None else {
                "label": names.get(prediction[0]), "confidence": round(prediction[1], 4)},
            "finder": _finder_note(image_id, names),
            "classes": project.class_names}
    db.session.commit()  # end the read
    return payload


def _finder_note(image_id: int, names: dict) -> dict | None:
    """What the label-error finder said of the image: its rank and the class it suggests."""
    issue = db.session.scalar(select(LabelIssue).where(LabelIssue.image_id == image_id))
    return None if issue is None else {
        "rank": issue.rank, "suggested": names.get(issue.suggested_class_id),
        "self_confidence": round(issue.self_confidence, 4)}
