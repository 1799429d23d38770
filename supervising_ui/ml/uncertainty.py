"""Uncertainty scores of class probabilities, as the Prediction table stores them.

Stored per image: confidence (the top probability p1), margin (p1 - p2) and entropy (nats).
Labeling ranks by them (least confidence first, smallest margin first, largest entropy
first); `uncertainty` turns each into one "higher = less certain" number for benchmarks.
"""
from __future__ import annotations

import numpy as np

# Probabilities are clipped here before the logarithm of the entropy.
SMALLEST_PROBABILITY = 1e-12


def confidence(proba: np.ndarray) -> np.ndarray:
    """Per row: the top probability p1."""
    return np.asarray(proba, dtype=float).max(axis=1)


def margin(proba: np.ndarray) -> np.ndarray:
    """Per row: p1 - p2, the top probability minus the second (p1 with a single class)."""
    ordered = np.sort(np.asarray(proba, dtype=float), axis=1)
    second = ordered[:, -2] if ordered.shape[1] > 1 else np.zeros(len(ordered))
    return ordered[:, -1] - second


def entropy(proba: np.ndarray) -> np.ndarray:
    """Per row: the Shannon entropy of the distribution, in nats."""
    clipped = np.clip(np.asarray(proba, dtype=float), SMALLEST_PROBABILITY, 1.0)
    return -(clipped * np.log(clipped)).sum(axis=1)


def scores(proba: np.ndarray) -> dict[str, np.ndarray]:
    """The stored scores of (N, C) probabilities: {"confidence", "margin", "entropy"} -> (N,)."""
    return {"confidence": confidence(proba), "margin": margin(proba), "entropy": entropy(proba)}


# Serving order -> "higher = less certain" from the stored score it ranks by.
RANKINGS = {
    "least_confidence": lambda proba: 1.0 - confidence(proba),
    "margin": lambda proba: 1.0 - margin(proba),
    "entropy": entropy,
}


def uncertainty(proba: np.ndarray, method: str = "least_confidence") -> np.ndarray:
    """An uncertainty per row, higher = less certain: least_confidence, margin or entropy."""
    if method not in RANKINGS:
        raise ValueError(f"unknown uncertainty {method!r}; choose one of {sorted(RANKINGS)}")
    return RANKINGS[method](proba)


# How many of a prediction's classes the labeling page and the search's detail show.
TOP_CLASSES = 3


def top_classes(probabilities: dict | None, label: str, confidence: float) -> list:
    """Return the TOP_CLASSES most probable [class, probability] pairs, most probable first."""
    if not probabilities:
        return [[label, round(float(confidence), 4)]]
    ranked = sorted(probabilities.items(), key=lambda item: item[1], reverse=True)
    return [[name, round(float(p), 4)] for name, p in ranked[:TOP_CLASSES]]
