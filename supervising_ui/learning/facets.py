"""Per-facet quality: the serving model's held-out accuracy and abstention per metadata value.

One accuracy figure hides a camera the model cannot handle (MSL: mastcam_left, mastcam_right,
mahli). The figures come from the version's stored predictions on the held-out images of its
retrain (their ids are kept in the version's metrics), compared with the images' consensus
labels, so any metadata column can be chosen on the page without running a model.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import select

from ..consensus import consensus_class_ids
from ..extensions import db
from ..ml.intervals import proportion
from ..models import Image, ModelVersion, Prediction, Project
from .dataset import holdout_split, labeled_images

# Below this confidence the model abstains (the ML package's TrainConfig.threshold).
CONFIDENCE_THRESHOLD = 0.9
# Rows of one facet table; the rarest values beyond it are counted, not listed.
MAX_FACET_ROWS = 30
# Image ids per IN (...) list.
ID_CHUNK = 500
MISSING_VALUE = "(none)"


@dataclass(frozen=True)
class HeldOutPrediction:
    """One held-out image: its metadata, consensus class, predicted class and confidence."""

    meta: dict
    true_class_id: int
    predicted_class_id: int
    confidence: float


def quality(rows: list[HeldOutPrediction], threshold: float = CONFIDENCE_THRESHOLD) -> dict:
    """Accuracy, share abstained below threshold and accuracy on the rest, of some rows; the
    two accuracies also as ml.intervals.proportion (sample size, 95% Wilson interval)."""
    kept = [row for row in rows if row.confidence >= threshold]
    accuracy = _share(sum(r.predicted_class_id == r.true_class_id for r in rows), len(rows))
    accuracy_kept = _share(sum(r.predicted_class_id == r.true_class_id for r in kept), len(kept))
    return {"images": len(rows), "accuracy": accuracy,
            "abstained": _share(len(rows) - len(kept), len(rows)), "accuracy_kept": accuracy_kept,
            "judged": proportion(accuracy, len(rows)),
            "judged_kept": proportion(accuracy_kept, len(kept))}


def _share(part: int, whole: int) -> float | None:
    """part / whole, or None of nothing."""
    return part / whole if whole else None


def held_out_ids(project: Project, version: ModelVersion) -> tuple[list[int], bool]:
    """The held-out image ids of a version's retrain, and whether they were recorded.

    Versions trained before the ids were recorded get the project's held-out split as it
    stands now (stable by group, so mostly the same images).
    """
    recorded = (version.metrics or {}).get("held_out_image_ids")
    if recorded is not None:
        return list(recorded), True
    _, held_out, _ = holdout_split(project.id, labeled_images(project))
    return [example.image_id for example in held_out], False


def held_out_predictions(project: Project, version: ModelVersion) -> tuple[list[HeldOutPrediction], bool]:
    """The version's stored predictions on its held-out images that have a consensus label."""
    image_ids, recorded = held_out_ids(project, version)
    consensus = consensus_class_ids(project.id)
    wanted = [image_id for image_id in image_ids if image_id in consensus]
    rows = []
    for start in range(0, len(wanted), ID_CHUNK):
        rows += db.session.execute(
            select(Prediction.image_id, Image.meta, Prediction.label_class_id, Prediction.confidence)
            .join(Image, Image.id == Prediction.image_id)
            .where(Prediction.model_version_id == version.id,
                   Prediction.image_id.in_(wanted[start:start + ID_CHUNK]))).all()
    return [HeldOutPrediction(meta or {}, consensus[image_id], predicted, confidence)
            for image_id, meta, predicted, confidence in rows], recorded


def facet_quality(project: Project, version: ModelVersion | None, column: str | None) -> dict | None:
    """Quality per value of a metadata column (default: the group column) for a version."""
    if version is None:
        return None
    rows, recorded = held_out_predictions(project, version)
    columns = sorted({key for row in rows for key in row.meta})
    if column not in columns:
        column = project.group_column if project.group_column in columns else \
            (columns[0] if columns else None)
    by_value: dict[str, list[HeldOutPrediction]] = defaultdict(list)
    for row in rows:
        value = row.meta.get(column) if column else None
        by_value[MISSING_VALUE if value in (None, "") else str(value)].append(row)
    ranked = sorted(by_value.items(), key=lambda item: (-len(item[1]), item[0]))
    return {"version": version.version, "column": column, "columns": columns,
            "threshold": CONFIDENCE_THRESHOLD, "recorded": recorded, "overall": quality(rows),
            "rows": [{"value": value} | quality(members) for value, members in ranked[:MAX_FACET_ROWS]],
            "more_values": max(0, len(ranked) - MAX_FACET_ROWS)}
