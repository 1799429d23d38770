"""Model suggestions on the labeling page: the serving model's prediction for an image.

A project may hide suggestions on a share of its images (``hide_suggestion_share``) to
measure anchoring: whether an image is hidden is a stable function of the image and the model
version, so the page and the submit that follows agree without trusting the client. The
label stores the model's prediction either way, with ``suggestion_shown`` saying whether the
labeler saw it; comparing agreement on shown and hidden images measures the anchoring.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import bindparam, select

from ..buckets import in_share
from ..extensions import db
from ..ml.uncertainty import top_classes
from ..models import LabelClass, Prediction

# What a suggestion is made from: the prediction's columns and its class's name.
PREDICTION_FIELDS = ("label_class_id", "confidence", "probabilities", "class_name")


@dataclass(frozen=True)
class Suggestion:
    """The serving model's prediction for one image, and whether the labeler is shown it."""

    label: str
    label_class_id: int
    confidence: float
    model_version_id: int
    model_version: int
    top: list
    shown: bool

    def to_json(self) -> dict | None:
        """Return the suggestion as the API shows it, or None when it is hidden."""
        if not self.shown:
            return None
        return {"label": self.label, "confidence": self.confidence,
                "model_version": self.model_version, "top": self.top}


_PREDICTION = (
    select(Prediction.label_class_id, Prediction.confidence, Prediction.probabilities,
           LabelClass.name.label("class_name"))
    .join(LabelClass, LabelClass.id == Prediction.label_class_id)
    .where(Prediction.model_version_id == bindparam("model_version_id"),
           Prediction.image_id == bindparam("image_id")))


def suggestion_hidden(image_id: int, model_version_id: int, hide_share: float) -> bool:
    """Return whether the suggestion for this image and model version is hidden (stable)."""
    return in_share(hide_share, image_id, model_version_id)


def suggestion_for(image_id: int, project, prediction: dict | None = None,
                   known: bool = False) -> Suggestion | None:
    """Return the serving model's prediction for image_id (shown or hidden), or None.

    project carries serving_model_id, serving_version and hide_suggestion_share
    (settings.ProjectSettings). known: the caller read the prediction (PREDICTION_FIELDS, or
    None when there is none) with the serving model's id, so no query is needed.
    """
    if project.serving_model_id is None:
        return None
    if not known:
        row = db.session.connection().execute(
            _PREDICTION, {"model_version_id": project.serving_model_id,
                          "image_id": image_id}).first()
        prediction = dict(row._mapping) if row is not None else None
    if prediction is None:
        return None
    return Suggestion(
        label=prediction["class_name"], label_class_id=prediction["label_class_id"],
        confidence=float(prediction["confidence"]), model_version_id=project.serving_model_id,
        model_version=project.serving_version,
        top=top_classes(prediction["probabilities"], prediction["class_name"],
                        prediction["confidence"]),
        shown=not suggestion_hidden(image_id, project.serving_model_id,
                                    project.hide_suggestion_share))


def label_fields(suggestion: Suggestion | None) -> dict:
    """Return the Label columns that record a suggestion (shown or hidden)."""
    if suggestion is None:
        return {"suggestion_shown": False}
    return {"suggestion_shown": suggestion.shown,
            "suggested_class_id": suggestion.label_class_id,
            "suggestion_confidence": suggestion.confidence,
            "suggestion_model_version_id": suggestion.model_version_id}
