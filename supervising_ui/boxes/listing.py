"""The landmarks of an observation as rows: box, class, the crop's prediction, votes, review.

One reader for the API, the review page and the exports. The class is the consensus one
(the merged boxes' majority, or the reviewer's fix); the prediction is the serving model's
on the landmark's crop, where there is one. By default only consensus landmarks
(merging.is_consensus with the project's minimum votes) are listed; ``min_votes`` asks for
another minimum of human votes (rejected landmarks are never listed, reviewed ones always
are, except with an explicit ``min_votes`` they do not reach).
"""
from __future__ import annotations

from sqlalchemy import and_, select

from ..extensions import db
from ..models import LabelClass, Landmark, ModelVersion, Observation, Prediction, Project
from .merging import human_votes, is_consensus, min_votes_of


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


def landmark_rows(observation: Observation, min_votes: int | None = None) -> list[dict]:
    """The observation's landmarks as rows (see the module's docstring for which)."""
    project = db.session.get(Project, observation.project_id)
    names = {label_class.id: label_class.name for label_class in project.classes}
    stored = db.session.scalars(select(Landmark).where(
        Landmark.observation_id == observation.id).order_by(Landmark.id)).all()
    if min_votes is None:
        kept = [mark for mark in stored if is_consensus(mark, min_votes_of(project))]
    else:
        kept = [mark for mark in stored
                if mark.status != "rejected" and human_votes(mark) >= min_votes]
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
