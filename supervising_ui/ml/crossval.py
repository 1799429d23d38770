"""Grouped k-fold cross-validation: whole groups (e.g. HiRISE observations) per fold.

``cross_validate(records, config, folds)`` trains one model per fold with ``fit`` (the same
recipe as ``ml train``) and scores it on the fold's held-out groups, which it never saw.

Calibration is cross-fitted: fold k's temperature is fitted (calibration.fit_temperature) on
the pooled held-out logits of the other k-1 folds, each from its own fold model, and applied
to fold k (T = 1 where those logits are too few or hold no error, as in ``fit``). Fold k's
labels never choose its temperature, and no training image is given up
for an inner hold-out; what it assumes is that the recipe's over- or under-confidence on
unseen groups is much the same from fold to fold.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..storage import write_atomically
from .calibration import calibration_refusal, expected_calibration_error, fit_temperature
from .data import Record
from .embeddings import Progress
from .metrics import accuracy, at_threshold, per_class
from .predict import combine_views
from .train import TrainConfig, fit

CALIBRATION_METHOD = ("cross-fitted: each fold's temperature is fitted on the held-out logits "
                      "of the other folds")


def group_folds(groups: Sequence, folds: int) -> list[np.ndarray]:
    """Row indices of each fold, whole groups only, sizes balanced, the same on every run.

    Groups go largest first (ties by name) into the fold holding the fewest rows so far.
    """
    groups = np.asarray([str(g) for g in groups], dtype=object)
    if folds < 2:
        raise ValueError("cross-validation needs at least 2 folds")
    names, counts = np.unique(groups, return_counts=True)
    if len(names) < folds:
        raise ValueError(f"{len(names)} groups cannot fill {folds} folds")
    sizes = [0] * folds
    fold_of_group = {}
    for index in sorted(range(len(names)), key=lambda i: (-counts[i], names[i])):
        fold = min(range(folds), key=lambda f: (sizes[f], f))
        fold_of_group[names[index]] = fold
        sizes[fold] += int(counts[index])
    fold_of_row = np.array([fold_of_group[g] for g in groups])
    return [np.flatnonzero(fold_of_row == fold) for fold in range(folds)]


def blocked_folds(groups: Sequence, folds: int) -> list[np.ndarray]:
    """Row indices of each fold as contiguous runs of groups in their order (e.g. sols).

    For data that drift over time: each fold holds a block of consecutive groups (numeric
    order when every group is a number), so a model is scored on a stretch of time it never
    saw rather than on days scattered between its training days. Blocks are cut where the
    running row count passes each k-th of the rows.
    """
    names = [str(g) for g in groups]
    if folds < 2:
        raise ValueError("cross-validation needs at least 2 folds")
    unique = sorted(set(names), key=_group_order(names))
    if len(unique) < folds:
        raise ValueError(f"{len(unique)} groups cannot fill {folds} folds")
    counts = {name: 0 for name in unique}
    for name in names:
        counts[name] += 1
    fold_of_group, seen, total, fold = {}, 0, len(names), 0
    for position, name in enumerate(unique):
        # One fold at a time (none skipped by a large group), and never so late that the
        # groups left could not fill the folds left.
        fold = min(int(seen * folds / total), fold + 1, folds - 1)
        fold = max(fold, folds - (len(unique) - position))
        fold_of_group[name] = fold
        seen += counts[name]
    fold_of_row = np.array([fold_of_group[name] for name in names])
    return [np.flatnonzero(fold_of_row == fold) for fold in range(folds)]


def _group_order(names: Sequence[str]):
    """Sort key: numeric when every group name is a number, else by name."""
    try:
        for name in set(names):
            float(name)
    except ValueError:
        return str
    return float


def cross_validate(records: Sequence[Record], config: TrainConfig, folds: int = 5,
                   cache_dir: str | os.PathLike | None = None, progress: Progress | None = None,
                   threshold: float = 0.9, log=None, blocked: bool = False,
                   device: str | torch.device = "cpu",
                   keep_folds: str | os.PathLike | None = None,
                   only_folds: Sequence[int] | None = None) -> dict:
    """Train and score one model per fold; return per-fold results and their summary.

    keep_folds: a folder where each fold's held-out logits are kept; a fold already there
    (same recipe, same rows) is read back instead of retrained, so a stopped run resumes.
    only_folds: train and score only these folds (numbered from 1), e.g. to share the folds
    of one cross-validation between machines; the summary is then over these folds alone.
    """
    records = [r for r in records if r.label]
    ungrouped = sum(1 for r in records if not r.group)
    if ungrouped:
        raise ValueError(f"{ungrouped} labelled rows have no group: every row needs one")
    classes = list(config.classes) if config.classes else sorted({r.label for r in records})
    config = replace(config, classes=classes, calibrate=False, threshold=threshold)
    fold_rows = (blocked_folds if blocked else group_folds)([r.group for r in records], folds)
    if only_folds:
        unknown = sorted(set(only_folds) - set(range(1, folds + 1)))
        if unknown:
            raise ValueError(f"folds {unknown} do not exist: there are {folds}, numbered from 1")
    results = []
    for fold, held in enumerate(fold_rows):
        if only_folds and fold + 1 not in only_folds:
            continue
        held_set = set(held.tolist())
        train = [r for i, r in enumerate(records) if i not in held_set]
        held_out = [records[i] for i in held]
        kept = Path(keep_folds) / fold_file_name(config, fold, folds, held_out) if keep_folds else None
        if kept is not None and kept.is_file():
            saved = torch.load(kept, weights_only=True)
            if log:
                log(f"fold {fold + 1}/{folds}: read back from {kept}")
        else:
            started = time.perf_counter()
            with tempfile.TemporaryDirectory(prefix="cv-fold-") as work:
                logits_path = Path(work) / "logits.pt"
                fit(train, config, Path(work) / "model", held_out, progress, cache_dir,
                    logits_path, device)
                saved = torch.load(logits_path, weights_only=True)
            saved |= {"seconds": time.perf_counter() - started, "n_train": len(train),
                      "groups": sorted({r.group for r in held_out})}
            if kept is not None:
                buffer = io.BytesIO()
                torch.save(saved, buffer)
                write_atomically(kept, buffer.getvalue())
        results.append({"fold": fold + 1, "n_train": len(train), "n_held_out": len(held_out),
                        "groups": sorted({r.group for r in held_out}),
                        "seconds": saved["seconds"],
                        "logits": saved["logits"], "labels": saved["labels"].numpy()})
        if log:
            raw = combine_views(saved["logits"], 1.0, config.tta_combine)
            log(f"fold {fold + 1}/{folds}: {len(held_out)} held-out rows, accuracy "
                f"{accuracy(results[-1]['labels'], raw.argmax(axis=1)):.1%} (uncalibrated), "
                f"{results[-1]['seconds']:.1f} s")
    return summarize(results, classes, config, threshold)


def read_kept_folds(folder: str | os.PathLike) -> dict[int, dict]:
    """Fold number -> what cross_validate kept of it in a --keep-folds folder (held-out logits
    (V, N, C), labels, classes, seconds, n_train, groups)."""
    found: dict[int, dict] = {}
    for path in sorted(Path(folder).glob("fold-*-of-*-*.pt")):
        fold = int(path.name.split("-")[1])
        if fold in found:
            raise ValueError(f"{folder} holds fold {fold} of more than one recipe: keep one "
                             "recipe's folds per folder")
        found[fold] = torch.load(path, weights_only=True)
    if not found:
        raise ValueError(f"{folder} holds no kept folds (fold-K-of-N-*.pt)")
    return found


def combine_kept_folds(folders: Sequence[str | os.PathLike],
                       views: int | None = None) -> tuple[list[dict], list[str]]:
    """An ensemble's per-fold results from the kept folds of several cross-validations on the
    same folds: the models' logits (the first `views` test-time views of each) side by side, so
    that combine_views averages over views and models alike. The folds every folder holds are
    used; the rows, labels and classes of a fold must agree across folders."""
    kept = [read_kept_folds(folder) for folder in folders]
    common = sorted(set.intersection(*(set(k) for k in kept)))
    if not common:
        raise ValueError("the folders hold no fold in common")
    classes = list(kept[0][common[0]]["classes"])
    results = []
    for fold in common:
        parts = [k[fold] for k in kept]
        first = parts[0]
        for part, folder in zip(parts[1:], folders[1:], strict=True):
            if list(part["classes"]) != classes or not torch.equal(part["labels"], first["labels"]):
                raise ValueError(f"fold {fold} of {folder} holds other rows or classes than "
                                 f"{folders[0]}'s: were they cross-validated on the same folds?")
        results.append({
            "fold": fold, "n_train": int(first.get("n_train", 0)),
            "n_held_out": int(len(first["labels"])), "groups": list(first.get("groups", [])),
            "seconds": float(sum(part["seconds"] for part in parts)),
            "logits": torch.cat([part["logits"][:views] for part in parts], dim=0),
            "labels": first["labels"].numpy()})
    return results, classes


def fold_file_name(config: TrainConfig, fold: int, folds: int, held_out: Sequence[Record]) -> str:
    """Name of a kept fold: the fold, and a digest of the recipe and the held-out rows."""
    text = json.dumps([asdict(config), [(r.path, r.label) for r in held_out]], sort_keys=True)
    return f"fold-{fold + 1}-of-{folds}-{hashlib.sha1(text.encode()).hexdigest()[:12]}.pt"


def score_fold(result: dict, temperature: float, classes: Sequence[str], how: str,
               threshold: float) -> dict:
    """Accuracy, thresholded accuracy and ECE of one fold before and after its temperature."""
    labels = result["labels"]
    raw = combine_views(result["logits"], 1.0, how)
    calibrated = combine_views(result["logits"], temperature, how)
    recall = {name: values["recall"] for name, values
              in per_class(labels, raw.argmax(axis=1), classes).items()}
    return {key: result[key] for key in ("fold", "n_train", "n_held_out", "groups", "seconds")} | {
        "accuracy": accuracy(labels, raw.argmax(axis=1)),
        "at_threshold": at_threshold(raw, labels, threshold),
        "at_threshold_calibrated": at_threshold(calibrated, labels, threshold),
        "ece": expected_calibration_error(raw, labels),
        "ece_calibrated": expected_calibration_error(calibrated, labels),
        "temperature": temperature,
        "recall": recall,
    }


def summarize(results: list[dict], classes: Sequence[str], config: TrainConfig,
              threshold: float) -> dict:
    """Cross-fit the temperatures, score every fold, and give mean, std and per-class recall."""
    how = config.tta_combine
    scored = []
    for index, result in enumerate(results):
        others = [r for i, r in enumerate(results) if i != index]
        temperature = 1.0  # a fold alone has no other folds to fit its temperature on
        if others:
            logits = torch.cat([r["logits"] for r in others], dim=1)
            labels = np.concatenate([r["labels"] for r in others])
            refused = calibration_refusal(logits, labels, how, config.calibration_min_examples)
            temperature = 1.0 if refused else fit_temperature(logits, labels, how)
        scored.append(score_fold(result, temperature, classes, how, threshold))
    columns = {
        "accuracy": [s["accuracy"] for s in scored],
        "accuracy_at_threshold": [s["at_threshold"]["accuracy"] for s in scored],
        "abstained_at_threshold": [s["at_threshold"]["abstained"] for s in scored],
        "accuracy_at_threshold_calibrated": [s["at_threshold_calibrated"]["accuracy"] for s in scored],
        "abstained_at_threshold_calibrated": [s["at_threshold_calibrated"]["abstained"] for s in scored],
        "ece": [s["ece"] for s in scored],
        "ece_calibrated": [s["ece_calibrated"] for s in scored],
        "temperature": [s["temperature"] for s in scored],
        "seconds": [s["seconds"] for s in scored],
    }
    summary = {name: mean_std(values) for name, values in columns.items()}
    recall = {}
    for name in classes:
        values = [s["recall"][name] for s in scored if s["recall"][name] == s["recall"][name]]
        recall[name] = {"mean": float(np.mean(values)) if values else float("nan"),
                        "min": float(np.min(values)) if values else float("nan"),
                        "folds": len(values)}
    pooled_labels = np.concatenate([r["labels"] for r in results])
    pooled_pred = np.concatenate([combine_views(r["logits"], 1.0, how).argmax(axis=1) for r in results])
    return {"folds": scored, "summary": summary, "per_class_recall": recall,
            "pooled_accuracy": accuracy(pooled_labels, pooled_pred), "n": int(len(pooled_labels)),
            "threshold": threshold, "ece_bins": 15, "calibration": CALIBRATION_METHOD,
            "config": asdict(config)}


def mean_std(values: Sequence[float]) -> dict:
    """Mean and sample standard deviation (ddof=1) of the finite values."""
    finite = np.asarray([v for v in values if v == v], dtype=float)
    return {"mean": float(finite.mean()) if len(finite) else float("nan"),
            "std": float(finite.std(ddof=1)) if len(finite) > 1 else 0.0}


def percent(value: float) -> str:
    """A share as a percentage; '-' when undefined (e.g. every image abstained)."""
    return "-" if value != value else f"{value:.1%}"


def format_report(report: dict) -> str:
    """The per-fold table, mean ± std and per-class recall as plain text."""
    threshold = report["threshold"]
    lines = [f"fold  held-out  accuracy  @{threshold}: acc / abstained  calibrated @{threshold}  "
             f"ECE  ECE (T)  T  seconds"]
    for s in report["folds"]:
        point, calibrated = s["at_threshold"], s["at_threshold_calibrated"]
        lines.append(f"{s['fold']:>4}  {s['n_held_out']:>8}  {s['accuracy']:8.1%}  "
                     f"{percent(point['accuracy']):>7} / {point['abstained']:6.1%}  "
                     f"{percent(calibrated['accuracy']):>7} / {calibrated['abstained']:6.1%}  "
                     f"{s['ece']:.3f}  {s['ece_calibrated']:.3f}  {s['temperature']:.2f}  "
                     f"{s['seconds']:.0f}")
    summary = report["summary"]

    def pm(name: str, percent: bool = True) -> str:
        value = summary[name]
        if percent:
            return f"{value['mean']:.1%} ± {value['std']:.1%}"
        return f"{value['mean']:.3f} ± {value['std']:.3f}"

    lines += [
        f"accuracy (mean ± std over {len(report['folds'])} folds): {pm('accuracy')}; "
        f"pooled {report['pooled_accuracy']:.1%} of {report['n']}",
        f"at {threshold}: accuracy {pm('accuracy_at_threshold')}, abstained {pm('abstained_at_threshold')}",
        f"at {threshold} calibrated: accuracy {pm('accuracy_at_threshold_calibrated')}, "
        f"abstained {pm('abstained_at_threshold_calibrated')}",
        f"ECE ({report['ece_bins']} bins): {pm('ece', False)} before, "
        f"{pm('ece_calibrated', False)} after calibration (T {pm('temperature', False)}; "
        f"{report['calibration']})",
        f"seconds per fold: {pm('seconds', False)}",
        "per-class recall: class  mean  min  (folds with the class)",
    ]
    for name, values in report["per_class_recall"].items():
        lines.append(f"  {name:<14} {values['mean']:6.1%}  {values['min']:6.1%}  ({values['folds']})")
    return "\n".join(lines)
