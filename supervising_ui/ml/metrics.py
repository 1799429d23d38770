"""Accuracy, baselines, confidence-threshold curves, per-class precision/recall, ECE, plots."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from .calibration import ECE_BINS, expected_calibration_error


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Share of correct predictions (nan when empty)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return float(np.mean(y_true == y_pred)) if len(y_true) else float("nan")


def baselines(train_labels: Sequence[int], eval_labels: Sequence[int], num_classes: int) -> dict:
    """Random guessing (uniform, and drawn from the training prior) and most-common-class accuracy."""
    train_counts = np.bincount(np.asarray(train_labels, dtype=int), minlength=num_classes)
    eval_counts = np.bincount(np.asarray(eval_labels, dtype=int), minlength=num_classes)
    eval_share = eval_counts / max(eval_counts.sum(), 1)
    prior = train_counts / max(train_counts.sum(), 1)
    return {
        "random_uniform": 1.0 / num_classes,
        "random_prior": float(np.dot(prior, eval_share)),
        "most_common": float(eval_share[int(np.argmax(train_counts))]),
    }


def at_threshold(proba: np.ndarray, y_true: np.ndarray, threshold: float) -> dict:
    """Accuracy on the predictions whose confidence is >= threshold, and the share abstained."""
    proba, y_true = np.asarray(proba), np.asarray(y_true)
    keep = proba.max(axis=1) >= threshold
    correct = proba.argmax(axis=1) == y_true
    return {
        "threshold": float(threshold),
        "accuracy": float(correct[keep].mean()) if keep.any() else float("nan"),
        "abstained": float(1.0 - keep.mean()) if len(keep) else float("nan"),
        "kept": int(keep.sum()),
    }


def threshold_curve(proba: np.ndarray, y_true: np.ndarray,
                    thresholds: Sequence[float] | None = None) -> list[dict]:
    """at_threshold() for each threshold (default 0.0, 0.05, ..., 0.95, 0.99)."""
    if thresholds is None:
        thresholds = [round(t, 2) for t in np.arange(0.0, 0.951, 0.05)] + [0.99]
    return [at_threshold(proba, y_true, t) for t in thresholds]


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """(C, C) counts, rows = true class, columns = predicted class."""
    matrix = np.zeros((num_classes, num_classes), dtype=int)
    np.add.at(matrix, (np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)), 1)
    return matrix


def per_class(y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[str]) -> dict:
    """Precision, recall and support per class name (nan where undefined)."""
    matrix = confusion_matrix(y_true, y_pred, len(classes))
    true_pos = np.diag(matrix).astype(float)
    predicted, support = matrix.sum(axis=0), matrix.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, true_pos / predicted, np.nan)
        recall = np.where(support > 0, true_pos / support, np.nan)
    return {name: {"precision": float(precision[i]), "recall": float(recall[i]),
                   "support": int(support[i])} for i, name in enumerate(classes)}


def evaluation_report(proba: np.ndarray, y_true: np.ndarray, classes: Sequence[str],
                      train_labels: Sequence[int] | None = None, threshold: float = 0.9) -> dict:
    """Everything about one split as plain JSON-able values."""
    proba, y_true = np.asarray(proba), np.asarray(y_true, dtype=int)
    y_pred = proba.argmax(axis=1)
    reference = y_true if train_labels is None else train_labels
    return {
        "n": int(len(y_true)),
        "accuracy": accuracy(y_true, y_pred),
        "baselines": baselines(reference, y_true, len(classes)),
        "at_threshold": at_threshold(proba, y_true, threshold),
        "ece": expected_calibration_error(proba, y_true, ECE_BINS),
        "threshold_curve": threshold_curve(proba, y_true),
        "per_class": per_class(y_true, y_pred, classes),
        "confusion_matrix": confusion_matrix(y_true, y_pred, len(classes)).tolist(),
        "classes": list(classes),
    }


def write_json(data: dict, path: str | os.PathLike) -> None:
    """Write a report as indented JSON (nan becomes null)."""
    def clean(value):
        if isinstance(value, float) and value != value:
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value
    Path(path).write_text(json.dumps(clean(data), indent=2) + "\n")


# --------------------------------------------------------------------------- plots


def _pyplot():
    """matplotlib's pyplot on the Agg backend (no display needed)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(plt, fig, ax, title: str, path) -> None:
    """Title a plot, write it to path and free its figure."""
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_threshold_curve(report: dict, path: str | os.PathLike, title: str = "") -> None:
    """Accuracy and abstention against the confidence threshold (like the paper's Figs 4/5)."""
    plt = _pyplot()
    curve = report["threshold_curve"]
    thresholds = [p["threshold"] for p in curve]
    fig, ax = plt.subplots(figsize=(4.5, 3.2), dpi=100)
    ax.plot(thresholds, [p["accuracy"] for p in curve], "o-", ms=3, label="accuracy (kept)")
    ax.plot(thresholds, [p["abstained"] for p in curve], "s--", ms=3, label="abstained")
    ax.set_xlabel("confidence threshold")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    _save(plt, fig, ax, title, path)


def plot_per_class(report: dict, path: str | os.PathLike, title: str = "") -> None:
    """Per-class precision and recall bars (like the paper's Fig 6)."""
    plt = _pyplot()
    names = list(report["per_class"])
    values = report["per_class"]
    positions = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(4.5, 3.2), dpi=100)
    ax.bar(positions - 0.2, [np.nan_to_num(values[n]["precision"]) for n in names], 0.4, label="precision")
    ax.bar(positions + 0.2, [np.nan_to_num(values[n]["recall"]) for n in names], 0.4, label="recall")
    ax.set_xticks(positions, [f"{n}\n({values[n]['support']})" for n in names], fontsize=7)
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=8, loc="lower right")
    _save(plt, fig, ax, title, path)


def plot_confusion(report: dict, path: str | os.PathLike, title: str = "") -> None:
    """Confusion matrix heat map with counts (rows true, columns predicted)."""
    plt = _pyplot()
    matrix = np.asarray(report["confusion_matrix"])
    names = report["classes"]
    fig, ax = plt.subplots(figsize=(4.5, 4.0), dpi=100)
    ax.imshow(matrix, cmap="Blues")
    for (row, col), count in np.ndenumerate(matrix):
        ax.text(col, row, str(count), ha="center", va="center", fontsize=7,
                color="white" if count > matrix.max() / 2 else "black")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    _save(plt, fig, ax, title, path)


def write_plots(report: dict, directory: str | os.PathLike, prefix: str = "") -> list[str]:
    """Write the three plots of a report into a directory; return their paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / f"{prefix}threshold.png", directory / f"{prefix}per_class.png",
             directory / f"{prefix}confusion.png"]
    plot_threshold_curve(report, paths[0], f"{prefix.rstrip('_')} accuracy vs threshold")
    plot_per_class(report, paths[1], f"{prefix.rstrip('_')} per-class precision/recall")
    plot_confusion(report, paths[2], f"{prefix.rstrip('_')} confusion matrix")
    return [str(p) for p in paths]
