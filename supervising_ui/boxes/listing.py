"""The landmarks of an observation as rows: box, class, the crop's prediction, votes, review.

One reader for the API, the review page and the exports. The class is the consensus one
(the merged boxes' majority, or the reviewer's fix); the prediction is the serving model's
on the landmark's crop, where there is one. By default the stored consensus landmarks are
listed (merged with the project's minimum votes; rejected ones left out). Another
``min_votes`` merges the boxes again on the fly (merging.merged): those rows have no id,
review, crop or prediction.
"""
from __future__ import annotations

from sqlalchemy import and_, select

from ..extensions import db
from ..models import LabelClass, Landmark, ModelVersion, Observation, Prediction, Project
from .merging import human_votes, is_consensus, merged, min_votes_of


def _predictions(project_id: int, image_ids: list[int]) -> dict[int, tuple[str, float]]:
    """The serving model's (class name, confidence) per image id."""
    if not image_ids:
        return {}
    rows = db.session.execute(
        select(Prediction.image_id, LabelClass.name, Prediction.confidence)
        .join(ModelVersion, and_(ModelVersion.id == Prediction.model_version_id,
                                 ModelVersion.is_serving.is_(True),
                                 ModelVersion.project_id == project_id))
        .join(LabelClass, LabelClass.id == Prediction.label_class_id)
        .where(Prediction.image_id.in_(image_ids))).all()
    return {image_id: (name, float(confidence)) for image_id, name, confidence in rows}


def _merged_row(observation: Observation, mark, names: dict[int, str]) -> dict:
    """A landmark merged on the fly as a row (no id, review, crop or prediction)."""
    box = mark.box
    return {"id": None, "observation": observation.name, "observation_id": observation.id,
            "x_min": box.x_min, "y_min": box.y_min, "x_max": box.x_max, "y_max": box.y_max,
            "class": names.get(int(box.label)) if box.label else None, "predicted_class": None,
            "confidence": None, "votes": mark.votes, "human_votes": mark.human_votes,
            "annotators": ",".join(mark.annotators), "status": "merged", "image_id": None}


def landmark_rows(observation: Observation, min_votes: int | None = None) -> list[dict]:
    """The observation's landmarks as rows (see the module's docstring for which)."""
    project = db.session.get(Project, observation.project_id)
    names = {label_class.id: label_class.name for label_class in project.classes}
    if min_votes is not None and min_votes != min_votes_of(project):
        rows = [_merged_row(observation, mark, names) for mark in merged(observation.id, min_votes)]
        db.session.commit()  # end the read
        return rows
    stored = db.session.scalars(select(Landmark).where(
        Landmark.observation_id == observation.id).order_by(Landmark.id)).all()
    kept = [mark for mark in stored if is_consensus(mark)]
    predictions = _predictions(project.id, [mark.image_id for mark in kept if mark.image_id])
    rows = []
    for mark in kept:
        predicted, confidence = predictions.get(mark.image_id, (None, None))
        rows.append({
            "id": mark.id, "observation": observation.name, "observation_id": observation.id,
            "x_min": mark.x_min, "y_min": mark.y_min, "x_max": mark.x_max, "y_max": mark.y_max,
            "class": names.get(mark.label_class_id), "predicted_class": predicted,
            "confidence": confidence, "votes": mark.votes, "human_votes": human_votes(mark),
            "annotators": mark.annotators, "status": mark.status, "image_id": mark.image_id})
    db.session.commit()  # end the read
    return rows
