"""Crops of consensus landmarks as images of the project: labeled, trained on and predicted
like any image.

Each consensus landmark (every stored one a reviewer did not reject) without a crop gets one: the square around its
box plus a 30-pixel border, 227 x 227 (``landmarks.crops.crop_landmark``, as the HiRISE data
set was made), stored as PNG through the project's import path (importing/runner.py:
managed storage, an import batch, the search index, and the images-added hooks that queue
the classify job). Its metadata names the observation (also as ``source_id``, the HiRISE
preset's group column, so held-out splits keep an observation's crops together) and the
landmark. Each person whose box is in the landmark's cluster labels the crop with their
box's class (an imported label, as an import's labels are).

Idempotent: a crop is content-addressed, so cropping the same box again finds the image
already there (the import reports a duplicate) and links it; a merge that leaves a box where
it was keeps its crop without cropping at all.
"""
from __future__ import annotations

import io
import logging
import math

from sqlalchemy import select

from .. import storage
from ..extensions import db
from ..importing import runner
from ..importing.sources import Candidate, ImportPlan
from ..landmarks.geometry import Box as GeometryBox
from ..models import Box, Image, Label, Landmark, Observation, Project
from . import originals, review
from .merging import PROPOSAL_ANNOTATOR, is_consensus

log = logging.getLogger(__name__)

# Pixels around a landmark's box in its crop (the HiRISE data set's 30).
BORDER = 30


def _png(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _reader(data: bytes):
    return lambda: data


def crop_of(original, landmark: Landmark):
    """The landmark's crop (crop_landmark) from the region of the original it needs: the
    square of side max(w, h) + 2 * BORDER around the box's centre (a few pixels more),
    clipped to the observation, which crop_landmark pads with black as it would the whole."""
    from ..landmarks.crops import crop_landmark
    half = max(landmark.x_max - landmark.x_min, landmark.y_max - landmark.y_min) / 2 + BORDER + 2
    x, y = (landmark.x_min + landmark.x_max) / 2, (landmark.y_min + landmark.y_max) / 2
    left, top = max(math.floor(x - half), 0), max(math.floor(y - half), 0)
    right = min(math.ceil(x + half), original.width)
    bottom = min(math.ceil(y + half), original.height)
    part = originals.region_picture(original, left, top, right, bottom)
    box = GeometryBox(landmark.x_min - left, landmark.y_min - top,
                      landmark.x_max - left, landmark.y_max - top)
    return crop_landmark(part, box, border=BORDER)


def _crop_name(observation: Observation, landmark: Landmark) -> str:
    return f"{observation.name}/landmark-{landmark.id}.png"


def crop_landmarks(observation_id: int) -> int:
    """Crop every consensus landmark of the observation that has no crop; return how many
    landmarks got one."""
    observation = db.session.get(Observation, observation_id)
    if observation is None:
        return 0
    project = db.session.get(Project, observation.project_id)
    todo = [landmark for landmark in db.session.scalars(select(Landmark).where(
        Landmark.observation_id == observation_id, Landmark.image_id.is_(None))
        .order_by(Landmark.id)) if is_consensus(landmark)]
    if not todo:
        db.session.commit()  # end the read
        return 0
    decided = [(landmark.id, landmark.reviewed_by_id) for landmark in todo
               if landmark.status in ("accepted", "fixed") and landmark.reviewed_by_id is not None]
    original = originals.open_original(observation)
    crops = {landmark.id: _png(crop_of(original, landmark)) for landmark in todo}
    plan = ImportPlan([Candidate(_crop_name(observation, landmark), _reader(crops[landmark.id]),
                                 {"source_id": observation.name, "observation": observation.name,
                                  "landmark_id": landmark.id})
                       for landmark in todo])
    report = runner.run_import(project, plan, user_id=None,
                               source=f"landmark crops of observation {observation.name}")
    if report.rejected:
        log.warning("observation %s: crops refused by the import: %s", observation.id,
                    report.rejected[:5])
    linked = _link(project.id, todo, crops)
    runner.tell_images_added(project.id, report.added, None)
    for landmark_id, reviewer_id in decided:  # a decision taken before the crop reaches it now
        review.tell_reviewed(landmark_id, reviewer_id)
    return linked


def _link(project_id: int, landmarks: list[Landmark], crops: dict[int, bytes]) -> int:
    """Point each landmark at its crop's image and label the crop as the annotators did."""
    hashes = {landmark.id: storage.content_hash(crops[landmark.id]) for landmark in landmarks}
    images = dict(db.session.execute(select(Image.content_hash, Image.id).where(
        Image.project_id == project_id, Image.content_hash.in_(set(hashes.values())))).all())
    linked = 0
    for landmark in landmarks:
        image_id = images.get(hashes[landmark.id])
        if image_id is None:
            continue
        landmark = db.session.get(Landmark, landmark.id)
        if landmark is None:  # a merge running beside this one removed it
            continue
        landmark.image_id = image_id
        label_as_annotators(landmark)
        linked += 1
    db.session.commit()
    return linked


def label_as_annotators(landmark: Landmark) -> int:
    """Give the landmark's crop a label from each person whose box is in its cluster (their
    box's class), once per person; return how many labels were added (the caller commits)."""
    people = {int(name) for name in landmark.annotators.split(",")
              if name and name != PROPOSAL_ANNOTATOR}
    if not people or landmark.image_id is None:
        return 0
    boxes = db.session.execute(select(Box.user_id, Box.label_class_id, Box.x_min, Box.y_min,
                                      Box.x_max, Box.y_max).where(
        Box.observation_id == landmark.observation_id, Box.user_id.in_(people),
        Box.label_class_id.is_not(None), Box.x_max > landmark.x_min, Box.x_min < landmark.x_max,
        Box.y_max > landmark.y_min, Box.y_min < landmark.y_max)).all()
    centre = ((landmark.x_min + landmark.x_max) / 2, (landmark.y_min + landmark.y_max) / 2)
    nearest: dict[int, tuple[float, int]] = {}
    for user_id, class_id, x_min, y_min, x_max, y_max in boxes:
        distance = abs((x_min + x_max) / 2 - centre[0]) + abs((y_min + y_max) / 2 - centre[1])
        if user_id not in nearest or distance < nearest[user_id][0]:
            nearest[user_id] = (distance, class_id)
    labeled = set(db.session.scalars(select(Label.user_id).where(
        Label.image_id == landmark.image_id)))
    image = db.session.get(Image, landmark.image_id)
    added = 0
    for user_id, (_distance, class_id) in nearest.items():
        if user_id in labeled:
            continue
        db.session.add(Label(project_id=image.project_id, image_id=image.id, user_id=user_id,
                             label_class_id=class_id, imported=True))
        added += 1
    image.label_count = (image.label_count or 0) + added
    return added
