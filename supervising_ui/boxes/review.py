"""A reviewer's accept, fix or reject of a consensus landmark (admins and reviewers: the views
ask accounts.guard.reviewer_required, as the review queue does).

- accept: the landmark stands as merged (it counts even below the minimum votes);
- fix: the reviewer's box and/or class replace the merged ones; later merges keep them;
- reject: the landmark is no landmark (no crop, left out of overlays and exports); its crop,
  if it had one, stays an image of the project.

A decision sticks across merges (merging.py matches new clusters to stored landmarks). An
accepted or fixed landmark without a crop is cropped by the merge job queued here. The
landmark-reviewed hooks (create_app registers review/landmarks.settle_crop) carry an accept
or fix to the landmark's crop, now or once the crop is made (cropping.py).
"""
from __future__ import annotations

import logging
from typing import Callable

from ..extensions import db
from ..models import Landmark, Observation, utcnow
from . import BoxError, merging
from .service import CORNERS, parse_class, parse_corners

log = logging.getLogger(__name__)

DECISIONS = ("accept", "fix", "reject")
# What runs after a landmark was accepted or fixed: (landmark_id, reviewer_id) -> None.
LANDMARK_REVIEWED_HOOKS: list[Callable[[int, int], object]] = []


def on_landmark_reviewed(hook: Callable[[int, int], object]) -> None:
    """Register hook(landmark_id, reviewer_id) to run after an accept or fix (once)."""
    if hook not in LANDMARK_REVIEWED_HOOKS:
        LANDMARK_REVIEWED_HOOKS.append(hook)


def tell_reviewed(landmark_id: int, reviewer_id: int) -> None:
    """Run every landmark-reviewed hook; a failing hook is logged (the decision is stored)."""
    for hook in LANDMARK_REVIEWED_HOOKS:
        try:
            hook(landmark_id, reviewer_id)
        except Exception:
            log.exception("landmark %s: a landmark-reviewed hook failed", landmark_id)
            db.session.rollback()
STATUS_OF = {"accept": "accepted", "fix": "fixed", "reject": "rejected"}


def review_landmark(reviewer, landmark: Landmark, body: dict) -> Landmark:
    """Record a reviewer's decision on a landmark; BoxError for a bad one (nothing changes)."""
    decision = body.get("decision")
    if decision not in DECISIONS:
        raise BoxError(f"decision must be one of {', '.join(DECISIONS)}")
    observation = db.session.get(Observation, landmark.observation_id)
    if decision == "fix":
        if "label" not in body and not any(name in body for name in CORNERS):
            raise BoxError("a fix gives the right class (label) and/or box "
                           "(x_min, y_min, x_max, y_max)")
        if any(name in body for name in CORNERS):
            current = {name: getattr(landmark, name) for name in CORNERS}
            corners = parse_corners({**current, **body}, observation)
            if corners != current:
                for name, value in corners.items():
                    setattr(landmark, name, value)
                landmark.image_id = None  # crop the reviewer's box instead
        landmark.label_class_id = parse_class(body, observation.project_id,
                                              default=landmark.label_class_id)
    landmark.status = STATUS_OF[decision]
    landmark.reviewed_by_id = reviewer.id
    landmark.reviewed_at = utcnow()
    db.session.commit()
    if decision != "reject":
        if landmark.image_id is None:
            merging.request_merge(observation.project_id, observation.id, reviewer.id)
        else:
            tell_reviewed(landmark.id, reviewer.id)
    return landmark
