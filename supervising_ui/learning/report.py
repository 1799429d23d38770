"""What people see of the learning loop: a version's metrics, plots, and the model page's data."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from flask import current_app
from sqlalchemy import case, func, select

from ..extensions import db
from ..jobs import queue as jobs
from ..ml.intervals import proportion
from ..ml.serving_choice import serving_summary
from ..models import Job, Label, ModelVersion, Project
from . import drift, facets
from .triggers import TRAINING_MODES

PLOT_FILES = ("threshold.png", "per_class.png", "confusion.png")
RECENT_JOBS = 10
CHART_WIDTH, CHART_HEIGHT, CHART_PAD = 480, 220, 36


def json_safe(value):
    """A copy of value in which NaN and infinities are None (JSON columns refuse them)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    if isinstance(value, np.generic):
        return json_safe(value.item())
    return value


def version_metrics(ml_metrics: dict, how: str, train_count: int, serving: ModelVersion | None,
                    serving_accuracy: float | None, promoted: bool,
                    held_out_image_ids: list[int] | None = None) -> dict:
    """What the model page shows of a version, as plain JSON (NaN becomes None).

    held_out_image_ids are kept so that per-facet quality (facets.py) can be computed later
    from the stored predictions on exactly those images.
    """
    report = ml_metrics["val"]
    return json_safe({
        "held_out_accuracy": report["accuracy"], "held_out_count": report["n"],
        "train_count": train_count, "held_out_by": how,
        "baselines": report["baselines"], "at_threshold": report["at_threshold"],
        "threshold_curve": report["threshold_curve"], "per_class": report["per_class"],
        "confusion_matrix": report["confusion_matrix"], "classes": report["classes"],
        "compared_with_version": serving.version if serving is not None else None,
        "compared_accuracy": serving_accuracy, "promoted": promoted,
        "ece": report.get("ece"), "calibration": ml_metrics.get("calibration"),
        "timings": ml_metrics.get("timings", {}), "plots": list(PLOT_FILES),
        "held_out_image_ids": held_out_image_ids,
    })


def version_figures(version: ModelVersion) -> dict:
    """A version's accuracies as proportions: held out, the serving model's on the same images,
    at the confidence threshold, and the recall of each class (None where a class has no
    held-out image)."""
    metrics = version.metrics or {}
    held_out = metrics.get("held_out_count")
    at = metrics.get("at_threshold") or {}
    return {"held_out": proportion(metrics.get("held_out_accuracy"), held_out),
            "compared": proportion(metrics.get("compared_accuracy"), held_out),
            "at_threshold": proportion(at.get("accuracy"), at.get("kept")),
            "recall": {name: proportion(values.get("recall"), values.get("support"))
                       for name, values in (metrics.get("per_class") or {}).items()},
            "confusion": confusion_view(metrics)}


def confusion_view(metrics: dict) -> dict | None:
    """The confusion matrix without the classes that no held-out image has and none was
    predicted as (a 25-class project with 9 held-out images is otherwise a sheet of zeros)."""
    matrix, classes = metrics.get("confusion_matrix"), metrics.get("classes")
    if not matrix or not classes:
        return None
    kept = [i for i in range(len(classes))
            if sum(matrix[i]) > 0 or sum(row[i] for row in matrix) > 0]
    return {"classes": [classes[i] for i in kept], "hidden": len(classes) - len(kept),
            "rows": [[matrix[i][j] for j in kept] for i in kept]}


def plot_path(project_id: int, version_id: int, name: str) -> Path | None:
    """The file of a version's plot, by version id and a fixed file name (never a path), or None."""
    if name not in PLOT_FILES:
        return None
    version = db.session.get(ModelVersion, version_id)
    if version is None or version.project_id != project_id:
        return None
    path = Path(version.path) / name
    return path if path.is_file() else None


def suggestion_acceptance(project_id: int) -> list[dict]:
    """Per model version: labels on which a suggestion was shown, and how many agreed with it."""
    accepted = func.sum(case((Label.suggested_class_id == Label.label_class_id, 1), else_=0))
    rows = db.session.execute(
        select(ModelVersion.version, func.count(Label.id), accepted)
        .select_from(Label).outerjoin(ModelVersion, ModelVersion.id == Label.suggestion_model_version_id)
        .where(Label.project_id == project_id, Label.suggestion_shown.is_(True))
        .group_by(ModelVersion.version).order_by(ModelVersion.version)).all()
    return [{"version": version, "shown": shown, "accepted": int(agreed or 0),
             "rate": (agreed or 0) / shown if shown else None} for version, shown, agreed in rows]


def accuracy_chart(versions: list[ModelVersion]) -> dict:
    """SVG coordinates of held-out accuracy against the number of labels, one point per version."""
    points = [(v.num_labels, v.metrics.get("held_out_accuracy"), v) for v in versions
              if v.metrics.get("held_out_accuracy") is not None]
    if not points:
        return {"points": [], "width": CHART_WIDTH, "height": CHART_HEIGHT}
    most = max(labels for labels, _, _ in points) or 1
    span_x, span_y = CHART_WIDTH - 2 * CHART_PAD, CHART_HEIGHT - 2 * CHART_PAD

    def place(labels, accuracy):
        return (round(CHART_PAD + span_x * labels / most, 1),
                round(CHART_HEIGHT - CHART_PAD - span_y * accuracy, 1))
    placed = [{"x": x, "y": y, "labels": labels, "accuracy": accuracy, "version": v.version,
               "serving": v.is_serving, "held_out": v.metrics.get("held_out_count")}
              for labels, accuracy, v in points for x, y in [place(labels, accuracy)]]
    return {"points": placed, "width": CHART_WIDTH, "height": CHART_HEIGHT, "pad": CHART_PAD,
            "max_labels": most, "polyline": " ".join(f"{p['x']},{p['y']}" for p in placed),
            "y_ticks": [{"value": tick, "y": place(0, tick)[1]} for tick in (0, 0.25, 0.5, 0.75, 1)]}


def model_overview(project: Project, shown_version_id: int | None = None,
                   facet_column: str | None = None, batch_id: int | None = None) -> dict:
    """Everything the model page shows of a project, without HTTP.

    facet_column picks the metadata column of the per-facet table, batch_id the import batch
    of the drift panel (default: the latest).
    """
    jobs.reap_stale_jobs()
    versions = db.session.scalars(select(ModelVersion).where(
        ModelVersion.project_id == project.id).order_by(ModelVersion.version)).all()
    serving = next((v for v in versions if v.is_serving), None)
    shown = next((v for v in versions if v.id == shown_version_id), None) \
        or serving or (versions[-1] if versions else None)
    recent = db.session.scalars(select(Job).where(
        Job.project_id == project.id, Job.kind == "retrain").order_by(Job.id.desc())
        .limit(RECENT_JOBS)).all()
    facet_table = facets.facet_quality(project, serving, facet_column)
    held_out_abstained = facet_table["overall"]["abstained"] if facet_table else None
    return {"project": project, "versions": list(reversed(versions)), "serving": serving,
            "facets": facet_table,
            "drift": drift.drift_panel(project, serving, batch_id, held_out_abstained),
            "shown": shown, "jobs": recent, "last_job": recent[0] if recent else None,
            "acceptance": suggestion_acceptance(project.id), "chart": accuracy_chart(versions),
            "figures": {version.id: version_figures(version) for version in versions},
            "serving_path": serving_summary(serving.path, current_app.config["CLASSIFY_PRECISION"],
                                            current_app.config["CLASSIFY_VIEWS"] or None)
            if serving else None,
            "kinds": list(TRAINING_MODES)}
