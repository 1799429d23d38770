"""What the observation page draws over the image: landmarks coloured by class, counts per
class, the crater size-frequency distribution, and counts of landmarks per observation.

A landmark's class is its crop's consensus label (consensus.py: the labels of the crop, an
image of the project), else the serving model's prediction for the crop (with its
confidence, which the page's slider filters), else the class its boxes were drawn with
(the merge's majority). Rejected landmarks are left out.
"""
from __future__ import annotations

from collections import Counter
from functools import lru_cache

import numpy as np
from sqlalchemy import func, select

from .. import consensus
from ..extensions import db
from ..models import LabelClass, Landmark, ModelVersion, Observation, Prediction
from . import files
from .geo import box_latlon

SHOWN_STATES = ("pending", "accepted", "fixed")
# Pixels this dark or darker are outside an image's footprint (a map-projected product's borders).
FOOTPRINT_THRESHOLD = 8


def overlay(observation: Observation) -> dict:
    """Return the observation's landmarks (class, confidence, where, lat/lon) and counts."""
    landmarks = list(db.session.scalars(select(Landmark).where(
        Landmark.observation_id == observation.id,
        Landmark.status.in_(SHOWN_STATES)).order_by(Landmark.id)))
    names = dict(db.session.execute(select(LabelClass.id, LabelClass.name).where(
        LabelClass.project_id == observation.project_id)).all())
    crops = [landmark.image_id for landmark in landmarks if landmark.image_id is not None]
    labeled = _labeled(observation.project_id, crops)
    predicted = _predicted(observation.project_id, crops)
    rows = [_row(landmark, names, labeled, predicted, observation) for landmark in landmarks]
    db.session.commit()
    counts = Counter(row["class"] for row in rows)
    return {"landmarks": rows, "classes": sorted(set(names.values()) | set(counts)),
            "counts": dict(sorted(counts.items(), key=lambda item: (item[0] is None, item[0])))}


def _labeled(project_id: int, image_ids: list[int]) -> dict[int, int]:
    """Map crop image id -> its consensus class id (labeled crops only)."""
    if not image_ids:
        return {}
    _method, details = consensus.consensus_details(project_id, image_ids)
    return {image_id: class_id for image_id, (class_id, _p, _n) in details.items()
            if class_id is not None}


def _predicted(project_id: int, image_ids: list[int]) -> dict[int, tuple[int, float]]:
    """Map crop image id -> (class id, confidence) of the serving model's prediction."""
    if not image_ids:
        return {}
    rows = db.session.execute(
        select(Prediction.image_id, Prediction.label_class_id, Prediction.confidence)
        .join(ModelVersion, ModelVersion.id == Prediction.model_version_id)
        .where(ModelVersion.project_id == project_id, ModelVersion.is_serving.is_(True),
               Prediction.image_id.in_(image_ids)))
    return {image_id: (class_id, confidence) for image_id, class_id, confidence in rows}


def _row(landmark: Landmark, names: dict, labeled: dict, predicted: dict,
         observation: Observation) -> dict:
    """One landmark as the page draws it."""
    source, confidence = "boxes", None
    class_id = landmark.label_class_id
    if landmark.image_id in labeled:
        class_id, source, confidence = labeled[landmark.image_id], "label", 1.0
    elif landmark.image_id in predicted:
        class_id, confidence = predicted[landmark.image_id]
        source = "prediction"
    latlon = box_latlon(observation.projection, landmark.x_min, landmark.y_min,
                        landmark.x_max, landmark.y_max)
    return {"id": landmark.id, "x_min": landmark.x_min, "y_min": landmark.y_min,
            "x_max": landmark.x_max, "y_max": landmark.y_max, "votes": landmark.votes,
            "status": landmark.status, "class": names.get(class_id), "class_source": source,
            "confidence": confidence, "image_id": landmark.image_id,
            "latitude": latlon[0] if latlon else None,
            "longitude": latlon[1] if latlon else None,
            "diameter_m": diameter_m(landmark, observation.meters_per_pixel)}


def diameter_m(landmark, meters_per_pixel: float | None) -> float | None:
    """Return a landmark's diameter in metres (the mean of its box's sides), None without scale."""
    if not meters_per_pixel:
        return None
    return ((landmark.x_max - landmark.x_min) + (landmark.y_max - landmark.y_min)) / 2 \
        * meters_per_pixel


def footprint_km2(observation: Observation) -> float | None:
    """Return the imaged area in km^2: the pixels inside the footprint times the pixel area."""
    if not observation.meters_per_pixel or observation.status != "ready":
        return None
    share = _footprint_share(observation.id, observation.image_key, observation.width,
                             observation.height)
    return observation.width * observation.height * share * observation.meters_per_pixel ** 2 / 1e6


@lru_cache(maxsize=256)
def _footprint_share(observation_id: int, image_key: str, width: int, height: int) -> float:
    """Share of the image inside its footprint, from the one-tile deep-zoom level (<= 256 px);
    image_key is part of the cache key only (another database's observation of that id)."""
    from PIL import Image
    level = files.deepzoom_levels(width, height) - 1
    while level > 0 and max(files.level_size(width, height, level)) > files.DEEPZOOM_TILE:
        level -= 1
    path = files.tile_path(observation_id, width, height, level, 0, 0)
    with Image.open(path) as picture:
        pixels = np.asarray(picture.convert("L"))
    return float((pixels > FOOTPRINT_THRESHOLD).mean())


def size_frequency(observation: Observation, class_name: str | None = None) -> dict:
    """Return the cumulative size-frequency numbers (landmarks.sfd) of one class's landmarks."""
    from ..landmarks.sfd import cumulative_sfd
    data = overlay(observation)
    chosen = [row["diameter_m"] for row in data["landmarks"]
              if row["diameter_m"] and (class_name is None or row["class"] == class_name)]
    area = footprint_km2(observation)
    if not chosen or not area:
        return {"class": class_name, "area_km2": area, "count": len(chosen), "diameters_m": [],
                "cumulative_per_km2": [],
                "note": "no scale (no label)" if not area else "no landmarks of that class"}
    diameters, cumulative = cumulative_sfd(chosen, area)
    return {"class": class_name, "area_km2": area, "count": len(chosen),
            "diameters_m": [float(value) for value in diameters],
            "cumulative_per_km2": [float(value) for value in cumulative]}


def landmark_counts(project_id: int) -> list[dict]:
    """Return per observation of the project: its landmarks, by class (the search's groups)."""
    observations = list(db.session.scalars(select(Observation).where(
        Observation.project_id == project_id).order_by(Observation.name)))
    totals = dict(db.session.execute(
        select(Landmark.observation_id, func.count(Landmark.id))
        .join(Observation, Observation.id == Landmark.observation_id)
        .where(Observation.project_id == project_id, Landmark.status.in_(SHOWN_STATES))
        .group_by(Landmark.observation_id)).all())
    groups = []
    for observation in observations:
        counts = overlay(observation)["counts"] if totals.get(observation.id) else {}
        groups.append({"id": observation.id, "name": observation.name,
                       "landmarks": totals.get(observation.id, 0), "by_class": counts,
                       "area_km2": footprint_km2(observation)})
    db.session.commit()
    return groups

