"""Probabilities from a model directory, test-time view averaging, temperature, prediction tables.

Every probability the package hands out comes from combine_views with the model's fitted
temperature (calibration.py fits it). Uncertainty scores of the probabilities live in uncertainty.py.
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from .backbones import frozen_and_trained
from .calibration import view_log_proba
from .data import Record, as_records
from .embeddings import Progress, embed_records, feature_cache, run_features, run_views
from .model_dir import load_model


def combine_views(logits: torch.Tensor, temperature: float = 1.0, how: str = "probs") -> np.ndarray:
    """(V, N, C) logits of V views -> (N, C) probabilities: mean of softmaxes, or softmax of mean."""
    logits = torch.as_tensor(logits, dtype=torch.float64)
    return view_log_proba(logits, temperature, how).exp().numpy()


def predict_proba(model_dir: str | os.PathLike, images: Sequence[str | Record], batch_size: int = 8,
                  cache_dir: str | os.PathLike | None = None, progress: Progress | None = None,
                  tta_views: int | None = None) -> np.ndarray:
    """(N, C) class probabilities (rows sum to 1), columns in the model's class order.

    images are paths or Records; a Record's content hash spares reading a cached image.
    """
    model, info = load_model(model_dir)
    return proba_from_model(model, info.config, images, batch_size, cache_dir, progress, tta_views)


def proba_from_model(model, config: dict, images: Sequence[str | Record], batch_size: int = 8,
                     cache_dir: str | os.PathLike | None = None,
                     progress: Progress | None = None, tta_views: int | None = None) -> np.ndarray:
    """predict_proba() for an already loaded model; tta_views overrides the trained number of views."""
    from .data import Preprocessing
    train = config["train_config"]
    preprocessing = Preprocessing(**config["preprocessing"])
    views = list(range(tta_views or config["tta_views"]))
    records = as_records(images)
    if not records:
        return np.zeros((0, len(config["classes"])))
    if train["mode"] == "head" and cache_dir is not None:
        top_blocks = train.get("top_blocks") or 0  # models saved before top_blocks: 0
        cache = feature_cache(cache_dir, train["backbone"], preprocessing, train.get("weights"),
                              top_blocks)
        frozen, trained = frozen_and_trained(model, top_blocks)
        logits = run_features(trained, embed_records(frozen, records, preprocessing, views, cache,
                                                     batch_size, progress))
    else:
        pixels = preprocessing.load_images([record.path for record in records])
        logits = run_views(model, pixels, preprocessing, views, batch_size, progress)
    return combine_views(logits, config.get("temperature", 1.0), config["tta_combine"])


def predictions_frame(filenames: Sequence[str], proba: np.ndarray, classes: Sequence[str],
                      threshold: float | None = None) -> pd.DataFrame:
    """filename, predicted, confidence and one p_<class> column per class (+ abstained if threshold)."""
    proba = np.asarray(proba)
    frame = pd.DataFrame({
        "filename": list(filenames),
        "predicted": [classes[i] for i in proba.argmax(axis=1)] if len(proba) else [],
        "confidence": proba.max(axis=1) if len(proba) else [],
    })
    for index, name in enumerate(classes):
        frame[f"p_{name}"] = proba[:, index] if len(proba) else []
    if threshold is not None:
        frame["abstained"] = frame["confidence"] < threshold
    return frame
