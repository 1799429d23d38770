"""Machine proposals: ``landmarks.proposals.propose`` over an observation, stored as boxes of
no user (source "proposal"), in a job an admin starts.

The proposals are one more voter in the merge (``PROPOSAL_ANNOTATOR``): they add a vote to
a landmark people marked but never make one alone. Labelers see them on their tile as dashed
boxes and take one over as their own box with a key (the tile page). Running the job again
replaces the observation's proposals.

Proposals are made work unit by work unit (each tile with MARGIN pixels around it, keeping
the boxes whose centre lies in the tile), so memory stays that of one tile whatever the
observation's size, and a crater on a tile's edge is seen whole by one of them.
"""
from __future__ import annotations

from sqlalchemy import delete, insert, select

from ..extensions import db
from ..jobs import queue as jobs
from ..landmarks.geometry import Box as GeometryBox
from ..models import Box, LabelClass, Observation, ObservationTile, utcnow
from . import BoxError, merging, originals

JOB_KIND = "landmark-proposals"
# Pixels around a tile that its proposals see.
MARGIN = 64


def request_proposals(observation: Observation, user_id: int | None) -> int:
    """Queue the proposals job of an observation; return the job's id."""
    if observation.status != "ready":
        raise BoxError(f"observation {observation.name!r} is {observation.status}, not ready")
    try:
        job = jobs.submit(JOB_KIND, observation.project_id, {"observation_id": observation.id},
                          created_by_id=user_id)
    except jobs.JobBusy as busy:
        raise BoxError("proposals are being made for this project already "
                       f"(job {busy.job.id}); try again when it is done", 409) from None
    return job.id


def store_proposals(observation: Observation, found) -> int:
    """Replace the observation's proposals with found (geometry boxes, clipped to the
    observation); return how many."""
    classes = dict(db.session.execute(select(LabelClass.name, LabelClass.id).where(
        LabelClass.project_id == observation.project_id)).all())
    now = utcnow()
    clipped = [GeometryBox(max(box.x_min, 0.0), max(box.y_min, 0.0),
                           min(box.x_max, float(observation.width)),
                           min(box.y_max, float(observation.height)), label=box.label)
               for box in found]
    rows = [{"observation_id": observation.id, "tile_id": None, "user_id": None,
             "label_class_id": classes.get(box.label), "shape": "box", "source": "proposal",
             "x_min": float(box.x_min), "y_min": float(box.y_min), "x_max": float(box.x_max),
             "y_max": float(box.y_max), "created_at": now, "updated_at": now}
            for box in clipped if box.is_valid()]
    db.session.execute(delete(Box).where(Box.observation_id == observation.id,
                                         Box.source == "proposal"))
    if rows:
        db.session.execute(insert(Box), rows)
    db.session.commit()
    return len(rows)


def propose_tile(propose, original, tile: ObservationTile) -> list[GeometryBox]:
    """Proposals over one tile and its margin, in observation pixels, centres in the tile."""
    left, top = max(tile.x - MARGIN, 0), max(tile.y - MARGIN, 0)
    right = min(tile.x + tile.width + MARGIN, original.width)
    bottom = min(tile.y + tile.height + MARGIN, original.height)
    gray = originals.gray_array(original.crop(left, top, right - left, bottom - top))
    found = []
    for box in propose(gray):
        moved = GeometryBox(box.x_min + left, box.y_min + top, box.x_max + left,
                            box.y_max + top, label=box.label, annotator=box.annotator,
                            score=box.score)
        x, y = moved.center
        if tile.x <= x < tile.x + tile.width and tile.y <= y < tile.y + tile.height:
            found.append(moved)
    return found


def run_proposals(job, reporter) -> dict:
    """Job handler: propose boxes over the job's observation tile by tile, store them, queue
    the merge."""
    from ..landmarks.proposals import propose  # scikit-image and friends: only in the worker
    observation = db.session.get(Observation, int((job.params or {})["observation_id"]))
    tiles = db.session.scalars(select(ObservationTile).where(
        ObservationTile.observation_id == observation.id)
        .order_by(ObservationTile.y, ObservationTile.x)).all()
    db.session.commit()  # no transaction open while proposing
    original = originals.open_original(observation)
    found = []
    for done, tile in enumerate(tiles, start=1):
        found += propose_tile(propose, original, tile)
        reporter.progress(0.9 * done / len(tiles), f"{done} of {len(tiles)} tiles")
    count = store_proposals(observation, found)
    merging.request_merge(observation.project_id, observation.id, job.created_by_id)
    megapixels = observation.width * observation.height / 1e6
    return {"proposals": count, "per_megapixel": round(count / megapixels, 1) if megapixels else 0}
