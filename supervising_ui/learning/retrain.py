"""The "retrain" job: consensus labels -> held-out split -> training -> the better model serves.

run_retrain (registered in create_app) gathers a project's labeled images, holds some out by
group, trains through supervising_ui.ml ("quick": the last block and a linear head over
cached activations; "finetune": the whole network), compares the candidate with the serving
model on the SAME held-out images, predicts every image of the project, and only then lets
the better model serve. Database writes go in short transactions so labelers never wait on
training.
"""
from __future__ import annotations

import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from flask import current_app
from sqlalchemy import func, select

from ..extensions import db
from ..models import Job, ModelVersion, Project
from ..throttled import throttled
from .dataset import (
    LabeledImage,
    RetrainError,
    check_enough_labels,
    holdout_split,
    labeled_images,
    to_records,
)
from .embedding import embed_project, training_config
from .predictions import (
    delete_version,
    embedding_cache_dir,
    predict_project,
    promote,
    prune_predictions,
    serving_version,
)
from .report import version_metrics
from .triggers import TRAINING_MODES

# What _fresh_model_dir names a version's folder: v0001-quick, v0012-finetune.
_VERSION_FOLDER = re.compile(r"^v\d{4,}-[a-z]+$")


def run_retrain(job: Job, reporter) -> dict:
    """Train a candidate, compare it with the serving model, store predictions, promote."""
    started = time.perf_counter()
    params = dict(job.params or {})
    kind = params.get("kind", "quick")
    if kind not in TRAINING_MODES:
        raise RetrainError(f"unknown retrain kind {kind!r}")
    project = db.session.get(Project, job.project_id)
    if project is None:
        raise RetrainError(f"project {job.project_id} no longer exists")
    reporter.progress(0.01, "gathering labels")
    clear_leftovers(project.id)
    project_id, project_name = project.id, project.name
    classes, color_input = project.class_names, project.color_input
    examples = labeled_images(project)
    check_enough_labels(examples, current_app.config["RETRAIN_MIN_LABELS"])
    train, held_out, how = holdout_split(project_id, examples)
    serving = _serving_snapshot(project_id)
    version = (db.session.scalar(select(func.max(ModelVersion.version)).where(
        ModelVersion.project_id == project_id)) or 0) + 1
    # End the read transaction before minutes of training, and touch no row until training
    # is over: reading an expired attribute (job.params, project.name) would open a new
    # transaction that the training then keeps open ("idle in transaction"), and VACUUM
    # could remove no row that labelers changed meanwhile.
    db.session.commit()
    reporter.log(f"{kind} retrain of {project_name!r} v{version}: {len(train)} training and "
                 f"{len(held_out)} held-out images ({how})")

    config = training_config(kind, params, classes, color_input)
    train_from = 0.02
    if kind == "quick":  # every image's features once, so that training and predicting read them
        train_from = 0.3
        embedding = time.perf_counter()
        computed, total = embed_project(project_id, config, _stage_progress(
            reporter, 0.02, train_from, "features"))
        reporter.log(f"embedded {computed} of {total} images in "
                     f"{time.perf_counter() - embedding:.1f} s ({total - computed} were cached)")
    model_dir = _fresh_model_dir(project_id, version, kind)
    try:
        trained = _train(config, train, held_out, model_dir, _stage_progress(
            reporter, train_from, 0.55, "training", _expected_passes(config)))
        report = trained.metrics["val"]
        from ..ml.metrics import write_plots
        write_plots(report, model_dir)
        reporter.log(f"candidate held-out accuracy {report['accuracy']:.4f} on {len(held_out)} "
                     f"images; trained in {time.perf_counter() - started:.1f} s")
        serving_accuracy = _accuracy_of(serving, classes, held_out, reporter)
        promote_candidate = serving_accuracy is None or report["accuracy"] >= serving_accuracy
        metrics = version_metrics(trained.metrics, how, len(train), serving, serving_accuracy,
                                  promote_candidate, [e.image_id for e in held_out])
        model_version = ModelVersion(project_id=project_id, version=version, kind=kind,
                                     path=str(model_dir), num_labels=len(examples),
                                     metrics=metrics, is_serving=False)
        db.session.add(model_version)
        db.session.flush()
        # The job names the version it is making: if it fails, discard_unfinished finds it.
        job.model_version_id = model_version_id = model_version.id
        db.session.commit()
    except BaseException:
        shutil.rmtree(model_dir, ignore_errors=True)
        raise
    predicting = time.perf_counter()
    stored = predict_project(model_version, _stage_progress(reporter, 0.6, 0.97, "predicting"))
    reporter.log(f"predicted and stored {stored} images in {time.perf_counter() - predicting:.1f} s")
    if promote_candidate:
        promote(model_version)
    prune_predictions(project_id)
    verdict = "serves now" if promote_candidate else (
        f"does not serve: v{serving.version} scored {serving_accuracy:.4f} on the same images")
    reporter.log(f"v{version} {verdict}; {time.perf_counter() - started:.1f} s in all")
    reporter.progress(1.0, f"v{version} {'serves' if promote_candidate else 'kept aside'}")
    return {"model_version_id": model_version_id, "version": version, "serving": promote_candidate,
            "held_out_accuracy": report["accuracy"], "serving_accuracy": serving_accuracy,
            "predictions": stored}


@dataclass(frozen=True)
class ServingSnapshot:
    """What a retrain compares with: the serving version's number and folder, read up front."""

    version: int
    path: str


def _serving_snapshot(project_id: int) -> ServingSnapshot | None:
    """The serving version as plain values (no row to refresh while training runs)."""
    serving = serving_version(project_id)
    return None if serving is None else ServingSnapshot(serving.version, serving.path)


def discard_unfinished(job: Job) -> None:
    """Undo a retrain that failed or was cut off: delete the version it was making.

    Its predictions, its row and its folder go (and any version folder of the project that no
    version row names: a run killed while training). A version that already serves is
    complete (its predictions were all stored before it was promoted) and stays.
    """
    version = db.session.get(ModelVersion, job.model_version_id) if job.model_version_id else None
    if version is not None and not version.is_serving:
        job.model_version_id = None
        db.session.commit()
        delete_version(version)
    remove_orphan_folders(job.project_id)


def clear_leftovers(project_id: int) -> None:
    """Discard what earlier failed retrains of the project left (however they ended)."""
    failed = db.session.scalars(select(Job).where(
        Job.project_id == project_id, Job.kind == "retrain", Job.state == "failed",
        Job.model_version_id.is_not(None))).all()
    for job in failed:
        discard_unfinished(job)
    remove_orphan_folders(project_id)


def remove_orphan_folders(project_id: int | None) -> None:
    """Delete the project's version folders (``v0001-quick``...) that no version row names."""
    folder = Path(current_app.config["MODEL_STORE"]) / f"project-{project_id}"
    if project_id is None or not folder.is_dir():
        return
    # By name, not full path: rows still name their folders after the store was moved.
    named = {Path(path).name for path in db.session.scalars(select(ModelVersion.path).where(
        ModelVersion.project_id == project_id))}
    db.session.commit()
    for candidate in folder.iterdir():
        if _VERSION_FOLDER.match(candidate.name) and candidate.name not in named:
            shutil.rmtree(candidate, ignore_errors=True)


def _fresh_model_dir(project_id: int, version: int, kind: str) -> Path:
    """An empty directory for a new model version (left-overs of a failed run are removed)."""
    path = Path(current_app.config["MODEL_STORE"]) / f"project-{project_id}" / f"v{version:04d}-{kind}"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def _train(config, train: list[LabeledImage], held_out: list[LabeledImage], model_dir: Path,
           progress):
    """Fit a model through the ML package; return its ModelDir."""
    from ..ml import fit
    return fit(to_records(train), config, model_dir, val_records=to_records(held_out),
               progress=progress, cache_dir=embedding_cache_dir(),
               device=current_app.config["RETRAIN_DEVICE"])


def _expected_passes(config) -> int:
    """How many counted passes fit reports: each epoch of a fine-tune, or head mode's embedding
    of the training images and its training; then the held-out images."""
    resolved = config.resolved()
    return (resolved.epochs if resolved.mode != "head" else 2) + 1


def _accuracy_of(serving: ServingSnapshot | None, classes: list[str], held_out: list[LabeledImage],
                 reporter) -> float | None:
    """Accuracy of the serving model on these held-out images (None: nothing to compare with)."""
    if serving is None:
        return None
    from ..ml import read_model_dir
    from ..ml.predict import predict_proba
    try:
        served_classes = read_model_dir(serving.path).classes
    except FileNotFoundError:
        reporter.log(f"serving v{serving.version} has no model files at {serving.path}: replaced")
        return None
    if served_classes != classes:
        reporter.log(f"serving v{serving.version} knows other classes {served_classes}: replaced")
        return None
    proba = predict_proba(serving.path, to_records(held_out), cache_dir=embedding_cache_dir(),
                          progress=_stage_progress(reporter, 0.55, 0.6, "serving model"))
    truth = np.array([classes.index(e.label) for e in held_out])
    accuracy = float(np.mean(proba.argmax(axis=1) == truth))
    reporter.log(f"serving v{serving.version} held-out accuracy {accuracy:.4f} on the same images")
    return accuracy


def _stage_progress(reporter, start: float, stop: float, label: str, passes: int = 1,
                    every_seconds: float = 1.0):
    """An ML progress callback that maps (stage, done, total) into [start, stop], at most once a second.

    fit counts each pass from 0 (each epoch, the held-out images after the training ones): each
    of the expected passes takes an equal share of what is left when it begins (a pass that
    does not happen, all its embeddings cached, is skipped over), and any further pass stays
    at stop, so the figure only grows.
    """
    seen = {"stage": None, "done": 0, "total": 0, "begun": 0, "low": start, "high": start,
            "since": time.monotonic()}

    def report(stage: str, done: int, total: int) -> None:
        if stage != seen["stage"] or done < seen["done"] or seen["done"] >= seen["total"]:
            begun = seen["begun"]  # a new pass: it starts where the last one ended
            share = 1 / (passes - begun) if begun < passes else 1.0
            seen.update(begun=begun + 1, low=seen["high"],
                        high=seen["high"] + (stop - seen["high"]) * share)
            if stage != seen["stage"]:
                seen["since"] = time.monotonic()
        seen.update(stage=stage, done=done, total=total)
        fraction = seen["low"] + (seen["high"] - seen["low"]) * done / max(total, 1)
        reporter.progress(fraction, f"{label}: {step_message(stage, done, total, seen['since'])}")
    return throttled(report, every_seconds)


# How the page names the ML package's stages.
STEP_NAMES = {"embed": "embedding images", "fit": "training, epoch", "evaluate":
              "checking held-out images", "predict": "predicting images"}


def step_message(stage: str, done: int, total: int, since: float,
                 now: float | None = None) -> str:
    """Name a stage with its count and, once it has run a few seconds, the time it has left
    at its pace so far ("embedding images 120/338, about 40 s left")."""
    message = f"{STEP_NAMES.get(stage, stage)} {done}/{total}"
    elapsed = (time.monotonic() if now is None else now) - since
    if 0 < done < total and elapsed >= 3:
        message += f", about {max(1, round(elapsed / done * (total - done)))} s left"
    return message
