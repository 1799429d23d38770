"""A reviewer's accept or fix of a consensus landmark reaches the landmark's crop: the crop
(an image of the project) is settled to the landmark's class by a review of the crop, as the
review queue's fix would settle it (decisions.record_review), so the crop's consensus, the
observation overlay, the search and training all follow the reviewer.

Registered in create_app as boxes' landmark-reviewed hook (boxes sit below review and learn
of it through the hook): boxes calls it after a review, and after cropping a landmark a
reviewer had already decided on.
"""
from __future__ import annotations

from sqlalchemy import select

from ..extensions import db
from ..models import LabelClass, Landmark, Project, Review, utcnow
from . import decisions


def settle_crop(landmark_id: int, reviewer_id: int) -> bool:
    """Settle the crop of an accepted or fixed landmark to its class; return whether a review
    was written (none for a landmark without a crop or class, or already settled so)."""
    landmark = db.session.get(Landmark, landmark_id)
    if landmark is None or landmark.status not in ("accepted", "fixed") \
            or landmark.image_id is None or landmark.label_class_id is None:
        db.session.commit()
        return False
    label_class = db.session.get(LabelClass, landmark.label_class_id)
    last = db.session.scalar(select(Review).where(Review.image_id == landmark.image_id)
                             .order_by(Review.id.desc()).limit(1))
    if last is not None and last.decision == "fix" and last.label_class_id == label_class.id:
        db.session.commit()
        return False
    project = db.session.get(Project, label_class.project_id)
    decisions.record_review(project, landmark.image_id, reviewer_id,
                            {"decision": "fix", "label": label_class.name,
                             "reason": f"landmark {landmark.id} {landmark.status}"}, utcnow())
    return True
