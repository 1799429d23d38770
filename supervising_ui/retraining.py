"""The learning loop: consensus labels -> held-out split -> training -> the better model serves.

A "retrain" job (see jobs.py) gathers a project's labeled images, holds some out by group,
trains through supervising_ui.ml ("quick": a linear head over cached embeddings;
"finetune": the whole network), compares the candidate with the serving model on the SAME
held-out images, predicts every image of the project, and only then lets the better model
serve. Database writes go in short transactions so labelers never wait on training.
"""
from __future__ import annotations

import hashlib
import logging
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from flask import current_app
from sqlalchemy import delete, func, insert, select, update

from . import jobs, storage
from .extensions import db
from .learning.consensus import consensus_labels
from .models import Image, Job, Label, ModelVersion, Prediction, Project
from .search import index as search_index

log = logging.getLogger(__name__)

# Retrain kinds and the ML package's training mode behind each.
TRAINING_MODES = {"quick": "head", "finetune": "finetune"}
# The class count a run needs (RETRAIN_MIN_LABELS in config.py: the labeled images it needs).
MIN_CLASSES = 2
# Share of labeled images (whole groups where the project has a group column) held out.
HOLDOUT_SHARE = 0.2
# Rows written per transaction: short enough that a labeler's submit never times out.
WRITE_BATCH = 500
# Images predicted per pass (bounds the memory of loaded pixels and embeddings).
PREDICT_CHUNK = 1000
PLOT_FILES = ("threshold.png", "per_class.png", "confusion.png")


class RetrainError(jobs.JobRefused, ValueError):
    """A retraining request or run that cannot go on, with a message for the user."""


@dataclass(frozen=True)
class LabeledImage:
    """An image with its consensus label and the group it is held out with."""

    image_id: int
    path: str
    label: str
    group: str


# --------------------------------------------------------------------------- triggers


def request_retrain(project: Project, kind: str = "quick", created_by_id: int | None = None,
                    epochs: int | None = None, tta_views: int | None = None) -> Job:
    """Queue a retrain job of this kind; raise jobs.JobBusy while one is queued or running.

    epochs and tta_views (dihedral views averaged at prediction, 1-8) override the ML defaults.
    """
    if kind not in TRAINING_MODES:
        raise RetrainError(f"unknown retrain kind {kind!r}: use one of {', '.join(TRAINING_MODES)}")
    params = {"kind": kind}
    for name, value, low, high in (("epochs", epochs, 1, 500), ("tta_views", tta_views, 1, 8)):
        if value is not None:
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise RetrainError(f"{name} must be a whole number from {low} to {high}")
            params[name] = value
    return jobs.submit("retrain", project.id, params, created_by_id)


def retrain_after_label(project) -> Job | None:
    """After a new label was committed: maybe queue a retrain, never failing the label's request.

    project is a Project or the labeling code's ProjectSettings (both carry id, retrain_every).
    """
    try:
        return maybe_trigger_retrain(project)
    except Exception:  # the label is stored; a queue hiccup must not turn it into an error
        log.exception("could not queue the automatic retrain of project %s", project.id)
        db.session.rollback()
        return None


def maybe_trigger_retrain(project) -> Job | None:
    """Queue a quick retrain once project.retrain_every labels arrived since the last one began.

    The labeling code calls this after committing a label; it costs two indexed queries.
    """
    if not project.retrain_every or project.retrain_every < 1:
        return None
    last = db.session.scalar(select(Job).where(
        Job.project_id == project.id, Job.kind == "retrain").order_by(Job.id.desc()).limit(1))
    if last is not None and last.state in ("queued", "running"):
        return None
    query = select(func.count(Label.id)).where(Label.project_id == project.id)
    if last is not None:
        query = query.where(Label.created_at >= (last.started_at or last.created_at))
    if db.session.scalar(query) < project.retrain_every:
        return None
    try:
        return jobs.submit("retrain", project.id, {"kind": "quick", "trigger": "labels"})
    except jobs.JobBusy:  # another labeler's submit triggered it first
        return None


# --------------------------------------------------------------------------- data


def labeled_images(project: Project) -> list[LabeledImage]:
    """The project's images that have a consensus label, with their files and groups."""
    consensus = consensus_labels(project.id)
    store = current_app.config["IMAGE_STORE"]
    rows = db.session.execute(select(Image.id, Image.storage_key, Image.meta).where(
        Image.project_id == project.id).order_by(Image.id)).all()
    return [LabeledImage(image_id, str(storage.path_for_key(store, key)), consensus[image_id],
                         _group_of(image_id, meta, project.group_column))
            for image_id, key, meta in rows if image_id in consensus]


def _group_of(image_id: int, meta: dict | None, group_column: str | None) -> str:
    """The image's group value, or the image itself where it has none."""
    value = (meta or {}).get(group_column) if group_column else None
    return f"group:{value}" if value not in (None, "") else f"image:{image_id}"


def check_enough_labels(examples: list[LabeledImage], minimum: int) -> None:
    """Raise RetrainError unless there are `minimum` labeled images in at least two classes."""
    classes = {example.label for example in examples}
    if len(examples) < minimum or len(classes) < MIN_CLASSES:
        raise RetrainError(
            f"need at least {minimum} labeled images in at least {MIN_CLASSES} classes to train "
            f"(have {len(examples)} in {len(classes)} class{'es' if len(classes) != 1 else ''})")


def is_held_out(project_id: int, group: str, share: float = HOLDOUT_SHARE) -> bool:
    """Stable choice: a group is held out in every run, so no model ever trained on it."""
    digest = hashlib.sha256(f"{project_id}:{group}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def holdout_split(project_id: int, examples: list[LabeledImage]):
    """Split into (train, held_out, how): whole groups held out, stable across runs."""
    train = [e for e in examples if not is_held_out(project_id, e.group)]
    held_out = [e for e in examples if is_held_out(project_id, e.group)]
    grouped = any(e.group.startswith("group:") for e in examples)
    how = "by group" if grouped else "by image"
    if not held_out or len({e.label for e in train}) < MIN_CLASSES:
        # Too few groups for a stable split: fall back to a seeded split by image.
        order = np.random.default_rng(project_id).permutation(len(examples))
        cut = max(1, round(HOLDOUT_SHARE * len(examples)))
        held_out = [examples[i] for i in sorted(order[:cut])]
        train = [examples[i] for i in sorted(order[cut:])]
        how = "by image (too few groups to hold out whole ones)" if grouped else "by image"
    return train, held_out, how


# --------------------------------------------------------------------------- the job


@jobs.handler("retrain")
def run_retrain(job: Job, reporter) -> dict:
    """Train a candidate, compare it with the serving model, store predictions, promote."""
    started = time.perf_counter()
    kind = job.params.get("kind", "quick")
    if kind not in TRAINING_MODES:
        raise RetrainError(f"unknown retrain kind {kind!r}")
    project = db.session.get(Project, job.project_id)
    if project is None:
        raise RetrainError(f"project {job.project_id} no longer exists")
    reporter.progress(0.01, "gathering labels")
    classes = project.class_names
    examples = labeled_images(project)
    check_enough_labels(examples, current_app.config["RETRAIN_MIN_LABELS"])
    train, held_out, how = holdout_split(project.id, examples)
    serving = _serving_version(project.id)
    version = (db.session.scalar(select(func.max(ModelVersion.version)).where(
        ModelVersion.project_id == project.id)) or 0) + 1
    db.session.commit()  # end the read transaction before minutes of training
    reporter.log(f"{kind} retrain of {project.name!r} v{version}: {len(train)} training and "
                 f"{len(held_out)} held-out images ({how})")

    model_dir = _fresh_model_dir(project.id, version, kind)
    try:
        trained = _train(kind, job.params, classes, train, held_out, model_dir,
                         _stage_progress(reporter, 0.02, 0.55, "training"))
        report = trained.metrics["val"]
        from .ml.metrics import write_plots
        write_plots(report, model_dir)
        reporter.log(f"candidate held-out accuracy {report['accuracy']:.4f} on {len(held_out)} "
                     f"images; trained in {time.perf_counter() - started:.1f} s")
        serving_accuracy = _accuracy_of(serving, classes, held_out, reporter)
        promote_candidate = serving_accuracy is None or report["accuracy"] >= serving_accuracy
        metrics = _version_metrics(trained.metrics, how, len(train), serving, serving_accuracy,
                                   promote_candidate)
        model_version = ModelVersion(project_id=project.id, version=version, kind=kind,
                                     path=str(model_dir), num_labels=len(examples),
                                     metrics=metrics, is_serving=False)
        db.session.add(model_version)
        db.session.commit()
    except BaseException:
        shutil.rmtree(model_dir, ignore_errors=True)
        raise
    predicting = time.perf_counter()
    stored = predict_project(model_version, _stage_progress(reporter, 0.6, 0.97, "predicting"))
    reporter.log(f"predicted and stored {stored} images in {time.perf_counter() - predicting:.1f} s")
    if promote_candidate:
        promote(model_version)
    prune_predictions(project.id)
    verdict = "serves now" if promote_candidate else (
        f"does not serve: v{serving.version} scored {serving_accuracy:.4f} on the same images")
    reporter.log(f"v{version} {verdict}; {time.perf_counter() - started:.1f} s in all")
    reporter.progress(1.0, f"v{version} {'serves' if promote_candidate else 'kept aside'}")
    return {"model_version_id": model_version.id, "version": version, "serving": promote_candidate,
            "held_out_accuracy": report["accuracy"], "serving_accuracy": serving_accuracy,
            "predictions": stored}


def _serving_version(project_id: int) -> ModelVersion | None:
    """The project's serving model version, if any."""
    return db.session.scalar(select(ModelVersion).where(
        ModelVersion.project_id == project_id, ModelVersion.is_serving.is_(True)))


def _fresh_model_dir(project_id: int, version: int, kind: str) -> Path:
    """An empty directory for a new model version (left-overs of a failed run are removed)."""
    path = Path(current_app.config["MODEL_STORE"]) / f"project-{project_id}" / f"v{version:04d}-{kind}"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def _embedding_cache_dir() -> str:
    """Where embeddings are cached, keyed by backbone and image content."""
    return str(Path(current_app.config["CACHE_DIR"]) / "embeddings")


def _train(kind: str, params: dict, classes: list[str], train: list[LabeledImage],
           held_out: list[LabeledImage], model_dir: Path, progress):
    """Fit a model of this kind through the ML package; return its ModelDir."""
    from .ml import Record, TrainConfig, fit
    config = TrainConfig(mode=TRAINING_MODES[kind], classes=classes, epochs=params.get("epochs"),
                         tta_views=params.get("tta_views"),
                         backbone=current_app.config["RETRAIN_BACKBONE"])
    return fit([Record(e.path, e.label, e.group) for e in train], config, model_dir,
               val_records=[Record(e.path, e.label, e.group) for e in held_out],
               progress=progress, cache_dir=_embedding_cache_dir())


def _accuracy_of(serving: ModelVersion | None, classes: list[str], held_out: list[LabeledImage],
                 reporter) -> float | None:
    """Accuracy of the serving model on these held-out images (None: nothing to compare with)."""
    if serving is None:
        return None
    from .ml import read_model_dir
    from .ml.predict import predict_proba
    try:
        served_classes = read_model_dir(serving.path).classes
    except FileNotFoundError:
        reporter.log(f"serving v{serving.version} has no model files at {serving.path}: replaced")
        return None
    if served_classes != classes:
        reporter.log(f"serving v{serving.version} knows other classes {served_classes}: replaced")
        return None
    proba = predict_proba(serving.path, [e.path for e in held_out], cache_dir=_embedding_cache_dir())
    truth = np.array([classes.index(e.label) for e in held_out])
    accuracy = float(np.mean(proba.argmax(axis=1) == truth))
    reporter.log(f"serving v{serving.version} held-out accuracy {accuracy:.4f} on the same images")
    return accuracy


def _version_metrics(ml_metrics: dict, how: str, train_count: int, serving: ModelVersion | None,
                     serving_accuracy: float | None, promoted: bool) -> dict:
    """What the model page shows of a version, as plain JSON (NaN becomes None)."""
    report = ml_metrics["val"]
    return json_safe({
        "held_out_accuracy": report["accuracy"], "held_out_count": report["n"],
        "train_count": train_count, "held_out_by": how,
        "baselines": report["baselines"], "at_threshold": report["at_threshold"],
        "threshold_curve": report["threshold_curve"], "per_class": report["per_class"],
        "confusion_matrix": report["confusion_matrix"], "classes": report["classes"],
        "compared_with_version": serving.version if serving is not None else None,
        "compared_accuracy": serving_accuracy, "promoted": promoted,
        "timings": ml_metrics.get("timings", {}), "plots": list(PLOT_FILES),
    })


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


def _stage_progress(reporter, start: float, stop: float, label: str, every_seconds: float = 1.0):
    """An ML progress callback that maps (stage, done, total) into [start, stop], at most once a second."""
    last = [0.0]

    def report(stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] < every_seconds and done < total:
            return
        last[0] = now
        reporter.progress(start + (stop - start) * done / max(total, 1), f"{label}: {stage} {done}/{total}")
    return report


# --------------------------------------------------------------------------- predictions


def prediction_rows(model_version_id: int, image_ids: list[int], proba: np.ndarray,
                    class_ids: list[int], class_names: list[str]) -> list[dict]:
    """Prediction rows: class, confidence, margin (p1 - p2), entropy (nats), probabilities."""
    ordered = np.sort(proba, axis=1)
    second = ordered[:, -2] if proba.shape[1] > 1 else np.zeros(len(proba))
    clipped = np.clip(proba, 1e-12, 1.0)
    entropies = -(clipped * np.log(clipped)).sum(axis=1)
    best = proba.argmax(axis=1)
    return [{"model_version_id": model_version_id, "image_id": image_id,
             "label_class_id": class_ids[best[row]], "confidence": float(ordered[row, -1]),
             "margin": float(ordered[row, -1] - second[row]), "entropy": float(entropies[row]),
             "probabilities": {name: round(float(p), 6) for name, p in zip(class_names, proba[row])}}
            for row, image_id in enumerate(image_ids)]


def write_in_batches(model, rows: list[dict], batch_size: int | None = None) -> int:
    """Insert rows of a model in transactions of batch_size (WRITE_BATCH) rows; return how many."""
    batch_size = batch_size or WRITE_BATCH
    for start in range(0, len(rows), batch_size):
        db.session.execute(insert(model), rows[start:start + batch_size])
        db.session.commit()
    return len(rows)


def predict_project(model_version: ModelVersion, progress=None) -> int:
    """Predict every image of the version's project and store the predictions; return how many."""
    from .ml import load_model
    from .ml.predict import proba_from_model
    project = db.session.get(Project, model_version.project_id)
    class_ids = [label_class.id for label_class in project.classes]
    store = current_app.config["IMAGE_STORE"]
    images = db.session.execute(select(Image.id, Image.storage_key).where(
        Image.project_id == project.id).order_by(Image.id)).all()
    version_id = model_version.id
    db.session.commit()
    model, info = load_model(model_version.path)
    stored = 0
    for start in range(0, len(images), PREDICT_CHUNK):
        chunk = images[start:start + PREDICT_CHUNK]
        paths = [str(storage.path_for_key(store, key)) for _, key in chunk]
        proba = proba_from_model(model, info.config, paths, cache_dir=_embedding_cache_dir())
        stored += write_in_batches(Prediction, prediction_rows(
            version_id, [image_id for image_id, _ in chunk], proba, class_ids, info.classes))
        if progress:
            progress("images", start + len(chunk), len(images))
    return stored


def promote(model_version: ModelVersion) -> None:
    """Make this version the project's serving model, in one short transaction."""
    db.session.execute(update(ModelVersion).where(
        ModelVersion.project_id == model_version.project_id, ModelVersion.is_serving.is_(True),
        ModelVersion.id != model_version.id).values(is_serving=False)
        .execution_options(synchronize_session=False))
    db.session.execute(update(ModelVersion).where(ModelVersion.id == model_version.id).values(
        is_serving=True).execution_options(synchronize_session=False))
    db.session.commit()
    db.session.refresh(model_version)
    search_index.refresh_project_predictions(model_version.project_id)


def prune_predictions(project_id: int, keep_latest: int = 2) -> int:
    """Delete predictions of versions that neither serve nor are among the latest; return how many."""
    versions = db.session.execute(select(ModelVersion.id, ModelVersion.is_serving).where(
        ModelVersion.project_id == project_id).order_by(ModelVersion.version.desc())).all()
    stale = [version_id for index, (version_id, serving) in enumerate(versions)
             if not serving and index >= keep_latest]
    deleted = 0
    while stale:
        ids = db.session.scalars(select(Prediction.id).where(
            Prediction.model_version_id.in_(stale)).limit(WRITE_BATCH)).all()
        if not ids:
            break
        db.session.execute(delete(Prediction).where(Prediction.id.in_(ids)))
        db.session.commit()
        deleted += len(ids)
    return deleted
