"""The merge job: recompute an observation's consensus landmarks from its boxes, in the worker.

When it runs: after every box change (service.py, imports.py, proposals.py ask for it with
request_merge). A merge job already queued for the observation is enough: it has not read the
boxes yet, so it will see the change; a running one may have read them already, so a new
job is queued then. Each job carries the observation's fingerprint (box count, last box
change, the project's minimum votes) from when it was asked for; the worker's minutely check
(queue_stale_merges) queues a merge for any observation whose fingerprint moved on since its
last merge job: a change of the minimum votes on the observations page, or a change whose
job could not be queued. A job that failed on the current fingerprint is not retried.

What it does (merge_observation): every box of the observation, drawn, imported and
proposed, goes through ``landmarks.merge.merge_boxes`` with the project's minimum votes
(``landmark_min_votes``, else ``DEFAULT_MIN_VOTES`` but at most ``labelers_per_tile``): the
stored landmarks are the consensus landmarks, which the observation page, the review page,
crops and exports use. (An export
with another minimum merges the boxes again on the fly: ``merged``.) The new landmarks are
matched one to one with the stored ones (greedy by IoU >= MATCH_IOU) so that a review and a
crop outlive a rerun: a matched landmark keeps its id, status and crop (the crop is made
again only when its box moved); a "fixed" landmark keeps the reviewer's box and class; a
stored landmark that no cluster matches goes, unless a reviewer decided on it. Then the
landmarks without a crop get one (cropping.py); rejected ones never do.
"""
from __future__ import annotations

import logging

from sqlalchemy import func, select

from ..extensions import db
from ..jobs import queue as jobs
from ..landmarks.geometry import Box as GeometryBox
from ..landmarks.geometry import as_array, overlapping_pairs
from ..landmarks.merge import DEFAULT_MIN_VOTES, PROPOSAL_ANNOTATOR, merge_boxes
from ..models import Box, Job, Landmark, Observation, Project, utcnow

log = logging.getLogger(__name__)

JOB_KIND = "landmark-merge"
# A new cluster takes over a stored landmark's id, review and crop when they overlap this much.
MATCH_IOU = 0.5
REVIEWED = ("accepted", "fixed", "rejected")
CORNERS = ("x_min", "y_min", "x_max", "y_max")


def annotator_name(user_id: int | None) -> str:
    """The merge's name of a box's annotator: the user id, or the machine for a proposal."""
    return PROPOSAL_ANNOTATOR if user_id is None else str(user_id)


def human_votes(landmark: Landmark) -> int:
    """The votes of people on a stored landmark (the machine's never count toward a minimum)."""
    return sum(1 for name in landmark.annotators.split(",") if name and name != PROPOSAL_ANNOTATOR)


def min_votes_of(project: Project) -> int:
    """The project's minimum human votes for a consensus landmark: its own setting, else
    DEFAULT_MIN_VOTES but never more than the labelers who mark each tile (a minimum of 3
    with 2 labelers per tile would make no landmark at all)."""
    if project.landmark_min_votes:
        return project.landmark_min_votes
    return max(1, min(DEFAULT_MIN_VOTES, project.labelers_per_tile or 1))


def is_consensus(landmark: Landmark) -> bool:
    """Whether a stored landmark counts (every stored one but those a reviewer rejected)."""
    return landmark.status != "rejected"


def merged(observation_id: int, min_votes: int) -> list:
    """The observation's boxes merged now with min_votes (landmarks.merge.Landmark list),
    without storing anything: for exports that ask for another minimum than the project's."""
    boxes = db.session.scalars(select(Box).where(Box.observation_id == observation_id)).all()
    return merge_boxes([_geometry(box) for box in boxes], min_votes=min_votes)


def fingerprint(observation_id: int) -> dict:
    """What a merge of the observation depends on: its boxes' count and last change, and the
    project's minimum votes."""
    count, last = db.session.execute(select(func.count(Box.id), func.max(Box.updated_at)).where(
        Box.observation_id == observation_id)).one()
    project = db.session.scalar(select(Project).join(
        Observation, Observation.project_id == Project.id).where(Observation.id == observation_id))
    return {"boxes": int(count), "last_change": last.isoformat() if last else None,
            "min_votes": min_votes_of(project)}


def request_merge(project_id: int, observation_id: int, user_id: int | None = None) -> None:
    """Queue the observation's merge unless one is queued already; never raises (logged)."""
    try:
        queued = db.session.scalars(select(Job.params).where(
            Job.kind == JOB_KIND, Job.project_id == project_id, Job.state == "queued")).all()
        if any((params or {}).get("observation_id") == observation_id for params in queued):
            db.session.commit()  # end the read
            return
        jobs.submit(JOB_KIND, project_id, {"observation_id": observation_id,
                                           "fingerprint": fingerprint(observation_id)},
                    created_by_id=user_id)
    except Exception:  # the boxes are stored; the next change or a rerun catches up
        log.exception("could not queue the merge of observation %s", observation_id)
        db.session.rollback()


def queue_stale_merges() -> list[int]:
    """Minutely check: queue the merge of every ready observation whose fingerprint differs
    from its last merge job's (none yet: stale when it has boxes); return their ids."""
    last_jobs: dict[int, tuple[str, dict]] = {}
    for state, params in db.session.execute(select(Job.state, Job.params).where(
            Job.kind == JOB_KIND).order_by(Job.id.desc()).limit(5000)):
        observation_id = (params or {}).get("observation_id")
        if observation_id is not None and observation_id not in last_jobs:
            last_jobs[observation_id] = (state, params.get("fingerprint"))
    queued = []
    for observation_id, project_id in db.session.execute(select(
            Observation.id, Observation.project_id).where(Observation.status == "ready")).all():
        current = fingerprint(observation_id)
        last = last_jobs.get(observation_id)
        if (last is None and current["boxes"] == 0) or (last is not None and last[1] == current):
            continue
        request_merge(project_id, observation_id)
        queued.append(observation_id)
    db.session.commit()
    return queued


def run_merge(job, reporter) -> dict:
    """Job handler: merge the job's observation, then crop its new consensus landmarks."""
    from . import cropping  # cropping imports importing's runner: loaded only where merges run
    observation_id = int((job.params or {})["observation_id"])
    result = merge_observation(observation_id)
    reporter.progress(0.5, f"{result['landmarks']} landmarks; cropping")
    result["crops"] = cropping.crop_landmarks(observation_id)
    return result


def _geometry(box: Box) -> GeometryBox:
    return GeometryBox(box.x_min, box.y_min, box.x_max, box.y_max,
                       label="" if box.label_class_id is None else str(box.label_class_id),
                       annotator=annotator_name(box.user_id))


def _matches(stored: list[Landmark], merged: list) -> dict[int, int]:
    """Stored landmark index -> merged landmark index, one to one, greedy by IoU."""
    if not stored or not merged:
        return {}
    old = as_array([GeometryBox(*(getattr(mark, name) for name in CORNERS)) for mark in stored])
    new = as_array([mark.box for mark in merged])
    left, right, overlap = overlapping_pairs(old, new, min_iou=MATCH_IOU - 1e-9)
    matches: dict[int, int] = {}
    taken: set[int] = set()
    for index in sorted(range(len(overlap)), key=lambda k: -overlap[k]):
        i, j = int(left[index]), int(right[index])
        if i not in matches and j not in taken:
            matches[i] = j
            taken.add(j)
    return matches


def _update(landmark: Landmark, mark) -> None:
    """Bring a stored landmark in line with its merged cluster (a fix keeps the reviewer's box)."""
    landmark.votes = mark.votes
    landmark.annotators = ",".join(mark.annotators)
    landmark.merged_at = utcnow()
    if landmark.status == "fixed":
        return
    corners = (mark.box.x_min, mark.box.y_min, mark.box.x_max, mark.box.y_max)
    if tuple(getattr(landmark, name) for name in CORNERS) != corners:
        for name, value in zip(CORNERS, corners, strict=True):
            setattr(landmark, name, value)
        landmark.image_id = None  # the crop shows the old box: crop again
    landmark.label_class_id = int(mark.box.label) if mark.box.label else None


def merge_observation(observation_id: int) -> dict:
    """Recompute and store the observation's landmarks; return what changed."""
    observation = db.session.get(Observation, observation_id, with_for_update=True)
    if observation is None:
        return {"landmarks": 0, "added": 0, "updated": 0, "removed": 0}
    project = db.session.get(Project, observation.project_id)
    boxes = db.session.scalars(select(Box).where(Box.observation_id == observation_id)).all()
    merged = merge_boxes([_geometry(box) for box in boxes], min_votes=min_votes_of(project))
    stored = db.session.scalars(select(Landmark).where(
        Landmark.observation_id == observation_id).order_by(Landmark.id)).all()
    matches = _matches(stored, merged)
    removed = 0
    for index, landmark in enumerate(stored):
        if index in matches:
            _update(landmark, merged[matches[index]])
        elif landmark.status not in REVIEWED:
            db.session.delete(landmark)
            removed += 1
    matched = set(matches.values())
    added = [mark for index, mark in enumerate(merged) if index not in matched]
    for mark in added:
        db.session.add(Landmark(
            observation_id=observation_id, x_min=mark.box.x_min, y_min=mark.box.y_min,
            x_max=mark.box.x_max, y_max=mark.box.y_max,
            label_class_id=int(mark.box.label) if mark.box.label else None, votes=mark.votes,
            annotators=",".join(mark.annotators), status="pending", merged_at=utcnow()))
    db.session.commit()
    return {"landmarks": len(merged), "added": len(added), "updated": len(matches),
            "removed": removed, "boxes": len(boxes)}
