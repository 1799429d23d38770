"""A model version's predictions: every image of the project, stored in short batches; serving.

Database writes go in short transactions so labelers never wait on a retrain.
"""
from __future__ import annotations

import functools
import shutil
from pathlib import Path

import numpy as np
from flask import current_app
from sqlalchemy import delete, insert, select, update

from .. import storage
from ..extensions import db
from ..models import Image, ModelVersion, Prediction, Project
from ..search import index as search_index

# Rows written per transaction: short enough that a labeler's submit never times out.
WRITE_BATCH = 500
# Images predicted per pass (bounds the memory of loaded pixels and embeddings).
PREDICT_CHUNK = 1000


def embedding_cache_dir() -> str:
    """Where embeddings are cached, keyed by backbone and image content."""
    return str(Path(current_app.config["CACHE_DIR"]) / "embeddings")


def prediction_rows(model_version_id: int, image_ids: list[int], proba: np.ndarray,
                    class_ids: list[int], class_names: list[str]) -> list[dict]:
    """Prediction rows: class, the stored uncertainty scores (ml.uncertainty), probabilities."""
    from ..ml.uncertainty import (
        scores,  # the ML package loads torch: only where a model runs
    )
    stored = scores(proba)
    best = proba.argmax(axis=1)
    return [{"model_version_id": model_version_id, "image_id": image_id,
             "label_class_id": class_ids[best[row]],
             **{name: float(values[row]) for name, values in stored.items()},
             "probabilities": {name: round(float(p), 6) for name, p in zip(class_names, proba[row], strict=True)}}
            for row, image_id in enumerate(image_ids)]


def write_in_batches(model, rows: list[dict], batch_size: int | None = None) -> int:
    """Insert rows of a model in transactions of batch_size (WRITE_BATCH) rows; return how many.

    A row whose unique key is stored already is left as it is (ON CONFLICT DO NOTHING): a
    prediction is written once per image and model version, so a classify chunk that runs
    twice (its worker died) changes nothing.
    """
    batch_size = batch_size or WRITE_BATCH
    for start in range(0, len(rows), batch_size):
        db.session.execute(insert_once(model), rows[start:start + batch_size])
        db.session.commit()
    return len(rows)


def insert_once(model):
    """An INSERT of the model's table that skips rows whose unique key is stored already."""
    if db.engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    elif db.engine.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    else:
        return insert(model)
    return dialect_insert(model).on_conflict_do_nothing()


def predictor_for(path: str):
    """The serving path's predictor of a model directory (ONNX Runtime; the graph is exported on
    first use), kept per process for the last few directories."""
    config = current_app.config
    written = (Path(path) / "model.pt").stat().st_mtime_ns  # a rewritten model is loaded again
    return _predictor(str(path), written, config["CLASSIFY_PRECISION"], config["CLASSIFY_THREADS"],
                      config["CLASSIFY_VIEWS"] or None)


@functools.lru_cache(maxsize=2)
def _predictor(path: str, written: int, precision: str, threads: int, views: int | None):
    from ..ml.serving import OnnxPredictor  # loads ONNX Runtime: only where a model runs
    return OnnxPredictor(path, precision=precision, views=views, threads=threads)


def predict_project(model_version: ModelVersion, progress=None) -> int:
    """Predict every image of the version's project and store the predictions; return how many."""
    project = db.session.get(Project, model_version.project_id)
    class_ids = [label_class.id for label_class in project.classes]
    images = db.session.execute(select(Image.id, Image.storage_key, Image.content_hash).where(
        Image.project_id == project.id).order_by(Image.id)).all()
    version_id, path = model_version.id, model_version.path
    db.session.commit()  # no transaction stays open while the model predicts (read the path first)
    predictor = predictor_for(path)
    stored = 0
    for start in range(0, len(images), PREDICT_CHUNK):
        chunk = images[start:start + PREDICT_CHUNK]
        stored += store_predictions(predictor, version_id, chunk, class_ids,
                                    _images_done(progress, start, len(chunk), len(images)))
        if progress:  # also where every embedding was cached (the model reported nothing)
            progress("images", start + len(chunk), len(images))
    return stored


def _images_done(progress, start: int, count: int, total: int):
    """A per-batch callback of a chunk of count images from start: progress("images", done, total)."""
    if progress is None:
        return None
    return lambda stage, done, of: progress("images", start + count * done // max(of, 1), total)


def store_predictions(predictor, model_version_id: int, images, class_ids: list[int],
                      progress=None) -> int:
    """Predict (image id, storage key, content hash) rows with predictor_for()'s predictor and
    store them.

    class_ids are the project's class ids in the model's class order (predictor.classes);
    progress hears (stage, done, total) per batch of the model.
    """
    from ..ml import Record
    store = current_app.config["IMAGE_STORE"]
    records = [Record(str(storage.path_for_key(store, key)), content_hash=digest)
               for _, key, digest in images]
    proba = predictor.proba(records, cache_dir=embedding_cache_dir(), progress=progress)
    return write_in_batches(Prediction, prediction_rows(
        model_version_id, [image_id for image_id, _, _ in images], proba, class_ids,
        predictor.classes))


def serving_version(project_id: int) -> ModelVersion | None:
    """The project's serving model version, if any."""
    return db.session.scalar(select(ModelVersion).where(
        ModelVersion.project_id == project_id, ModelVersion.is_serving.is_(True)))


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


def delete_version(model_version: ModelVersion) -> int:
    """Delete a model version: its predictions (in short batches), its row, then its folder."""
    version_id, path = model_version.id, model_version.path
    deleted = 0
    while ids := db.session.scalars(select(Prediction.id).where(
            Prediction.model_version_id == version_id).limit(WRITE_BATCH)).all():
        db.session.execute(delete(Prediction).where(Prediction.id.in_(ids)))
        db.session.commit()
        deleted += len(ids)
    db.session.execute(delete(ModelVersion).where(ModelVersion.id == version_id))
    db.session.commit()
    shutil.rmtree(path, ignore_errors=True)
    return deleted
