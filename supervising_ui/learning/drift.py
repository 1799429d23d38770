"""The drift panel: does a new import batch look like what the serving model learned from?

For one import batch (the latest by default) and the serving model's predictions of its
images: the distribution of the model's confidence, the share it would abstain on at the
threshold, its predicted class mix beside the labeled class mix (consensus labels of the
project's images outside the batch), and how far labeling of the batch has come.

The warning rule (docs/drift.md), applied once at least MIN_IMAGES_TO_JUDGE images of the
batch have a prediction:
- abstention: the batch's abstained share lies ABSTENTION_EXCESS (15 points) or more above
  the share abstained on the model's held-out images;
- class mix: the total variation distance between the predicted mix of the batch and the
  labeled mix (half the sum of absolute differences of class shares: 0 = same mix, 1 = no
  class in common) is MIX_DISTANCE (0.3) or more.
"""
from __future__ import annotations

from collections import Counter

from sqlalchemy import func, select

from ..consensus import consensus_class_ids
from ..extensions import db
from ..importing import batches
from ..ml.intervals import proportion
from ..models import Image, ImportBatch, Label, ModelVersion, Prediction, Project
from .facets import CONFIDENCE_THRESHOLD

ABSTENTION_EXCESS = 0.15
MIX_DISTANCE = 0.3
MIN_IMAGES_TO_JUDGE = 10
HISTOGRAM_BINS = 10


def confidence_histogram(confidences: list[float], bins: int = HISTOGRAM_BINS) -> list[dict]:
    """Counts of confidences in equal bins over [0, 1]; a bin below the threshold abstains."""
    counts = Counter(min(int(value * bins), bins - 1) for value in confidences)
    most = max(counts.values(), default=0) or 1
    return [{"low": index / bins, "high": (index + 1) / bins, "count": counts[index],
             "height": counts[index] / most,
             "abstains": (index + 1) / bins <= CONFIDENCE_THRESHOLD + 1e-9}
            for index in range(bins)]


def class_mix(class_ids: list[int]) -> dict[int, float]:
    """Share of each class id among class_ids."""
    counts = Counter(class_ids)
    return {class_id: count / len(class_ids) for class_id, count in counts.items()}


def total_variation(first: dict[int, float], second: dict[int, float]) -> float:
    """Half the summed absolute difference of two class mixes: 0 same, 1 disjoint."""
    return 0.5 * sum(abs(first.get(key, 0.0) - second.get(key, 0.0))
                     for key in set(first) | set(second))


def drift_warnings(predicted: int, abstained: float | None, held_out_abstained: float | None,
                   distance: float | None) -> list[str]:
    """Plain warnings where a batch looks unlike what the model learned from (module rule)."""
    if predicted < MIN_IMAGES_TO_JUDGE:
        return []
    warnings = []
    if abstained is not None and held_out_abstained is not None \
            and abstained - held_out_abstained >= ABSTENTION_EXCESS:
        warnings.append(
            f"The model would abstain on {100 * abstained:.0f}% of this batch, against "
            f"{100 * held_out_abstained:.0f}% of its held-out images: these images look unlike "
            "what it learned from. Label this batch first, then retrain.")
    if distance is not None and distance >= MIX_DISTANCE:
        warnings.append(
            f"The classes the model sees in this batch differ from the labeled ones (total "
            f"variation distance {distance:.2f}; 0 is the same mix, 1 no class in common): "
            "the scene has changed. Label this batch first, then retrain.")
    return warnings


def _batch_predictions(batch_id: int, version_id: int) -> list[tuple[int, int, float]]:
    """(image id, predicted class id, confidence) of the batch's images the version predicted."""
    return [tuple(row) for row in db.session.execute(
        select(Prediction.image_id, Prediction.label_class_id, Prediction.confidence)
        .join(Image, Image.id == Prediction.image_id)
        .where(Image.import_batch_id == batch_id, Prediction.model_version_id == version_id))]


def _mix_rows(project: Project, predicted: dict[int, float], labeled: dict[int, float]) -> list[dict]:
    """One row per class present in either mix, largest share first."""
    names = {label_class.id: label_class.name for label_class in project.classes}
    rows = [{"class": names.get(class_id, "?"), "predicted": predicted.get(class_id, 0.0),
             "labeled": labeled.get(class_id, 0.0)} for class_id in set(predicted) | set(labeled)]
    return sorted(rows, key=lambda row: (-max(row["predicted"], row["labeled"]), row["class"]))


def _not_trained_on(version: ModelVersion, image_ids: list[int]) -> set[int]:
    """The images of image_ids that version did not train on: those it held out, and those
    first labeled after it was made (labels made while it trained count as seen)."""
    held_out = set((version.metrics or {}).get("held_out_image_ids") or [])
    first_labeled = dict(db.session.execute(
        select(Label.image_id, func.min(Label.created_at)).where(Label.image_id.in_(image_ids))
        .group_by(Label.image_id)).all()) if image_ids else {}
    return {image_id for image_id in image_ids
            if image_id in held_out or first_labeled.get(image_id, version.created_at)
            > version.created_at}


def drift_panel(project: Project, serving: ModelVersion | None, batch_id: int | None,
                held_out_abstained: float | None) -> dict:
    """Everything the drift panel shows for one batch (the latest unless batch_id is given)."""
    batch: ImportBatch | None = batches.chosen_or_latest_batch(project, batch_id)
    panel = {"batch": batch, "batches": batches.project_batches(project.id),
             "serving": serving, "threshold": CONFIDENCE_THRESHOLD,
             "priority_batch_id": project.priority_batch_id}
    if batch is None or serving is None:
        return panel
    predictions = _batch_predictions(batch.id, serving.id)
    consensus = consensus_class_ids(project.id)
    in_batch = set(db.session.scalars(select(Image.id).where(Image.import_batch_id == batch.id)))
    confidences = [confidence for _, _, confidence in predictions]
    abstained = sum(value < CONFIDENCE_THRESHOLD for value in confidences) / len(confidences) \
        if confidences else None
    predicted_mix = class_mix([class_id for _, class_id, _ in predictions])
    labeled_mix = class_mix([class_id for image_id, class_id in consensus.items()
                             if image_id not in in_batch])
    distance = total_variation(predicted_mix, labeled_mix) if predicted_mix and labeled_mix else None
    unseen = _not_trained_on(serving, [image_id for image_id, _, _ in predictions
                                       if image_id in consensus])
    checked = [(class_id, consensus[image_id]) for image_id, class_id, _ in predictions
               if image_id in unseen]
    return panel | {
        "progress": batches.batch_progress(project, batch.id),
        "predicted": len(predictions), "unpredicted": len(in_batch) - len(predictions),
        "histogram": confidence_histogram(confidences), "abstained": abstained,
        "held_out_abstained": held_out_abstained, "mix": _mix_rows(project, predicted_mix, labeled_mix),
        "distance": distance, "labeled_in_batch": len(checked),
        "accuracy_in_batch": proportion(
            sum(p == t for p, t in checked) / len(checked) if checked else None, len(checked)),
        "warnings": drift_warnings(len(predictions), abstained, held_out_abstained, distance)}
