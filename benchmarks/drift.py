"""Drift on MSL: when the rover's new images arrive, which of them to label first, measured.

Simulates the app's "new import batch" workflow on ../shared/data/msl in sol order. The quick
model (a linear head over frozen EfficientNet-Lite0 embeddings, as benchmarks/active_learning.py
trains it) starts from the labeled early sols; the next sols arrive as a new batch (the pool to
label); later sols still are the evaluation set. (The app's quick model now also retrains
the last block; the head alone, `top_blocks` 0, keeps these hundreds of retrains to seconds.) Each round labels `--step` more pool images,
chosen at random or by the current model's uncertainty (least confidence, margin, entropy:
supervising_ui.ml.uncertainty), and retrains the head on the start set plus the pool labels.

The default cut makes the drift real: start = sols 3-59, pool = sols 60-181, evaluation = sols
182-564 (with the paper's own train/val cut the quick model already scores about 97% on the
later val sols before any new label, so nothing would be measured).

Prints the evaluation accuracy against the number of new labels for each strategy (mean over
seeds), the accuracy before any new label and with the whole pool labeled, and how many new
labels each strategy needs to come within 2 points of the whole pool.

    python benchmarks/drift.py [--data DIR] [--cache DIR] [--seeds 3] [--step 50] [--stop 1200]

Embedding the 5386 images takes minutes on 2 CPU cores the first time; they are cached under
the system's temporary folder (--cache), never in the repository.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

# Run as a script, this folder is on sys.path: the HiRISE simulation's pieces are reused.
from active_learning import (
    fit_head,
    labels_needed_per_strategy,
    load_embeddings,
    mean_curve,
    parse_simulation_arguments,
    print_curves,
    probabilities,
    shares_of_random,
)

from supervising_ui.ml.uncertainty import uncertainty

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "msl"
DEFAULT_CACHE = Path(tempfile.gettempdir()) / "supervising_ui_embeddings"
WITHIN_POINTS = 0.02  # "within 2 points of labeling the whole pool"
GOAL_SHARE = 0.6      # uncertainty should need at most 60% of random's new labels


def sol_range(text: str) -> tuple[int, int]:
    """Parse 'FIRST-LAST' (inclusive) into a pair of sols."""
    first, _, last = text.partition("-")
    return int(first), int(last or first)


def in_sols(sols: np.ndarray, bounds: tuple[int, int]) -> np.ndarray:
    """Indices of the images whose sol lies within bounds (inclusive)."""
    return np.flatnonzero((sols >= bounds[0]) & (sols <= bounds[1]))


def accuracy_of(head, data: dict) -> float:
    """Evaluation-set accuracy of a head."""
    x, y = data["embeddings"], data["labels"]
    return float(np.mean(probabilities(head, x[data["eval"]]).argmax(1) == y[data["eval"]]))


def train_on(data: dict, indices: np.ndarray, seed: int):
    """The quick model trained on these images (start set plus chosen pool images)."""
    return fit_head(data["embeddings"][indices], data["labels"][indices],
                    len(data["classes"]), seed)


def simulate(strategy: str, data: dict, seed: int, step: int, stop: int) -> list[dict]:
    """One labeling run over the pool: (new labels, evaluation accuracy) per round."""
    pool, start = data["pool"], data["start"]
    rng = np.random.default_rng(seed + 1000)
    chosen: list[int] = []
    curve = []
    while True:
        head = train_on(data, np.concatenate([start, np.array(chosen, dtype=int)]), seed)
        curve.append({"labels": len(chosen), "accuracy": accuracy_of(head, data)})
        remaining = np.setdiff1d(pool, chosen)
        if len(chosen) >= stop or not len(remaining):
            return curve
        take = min(step, len(remaining))
        if strategy == "random":
            picked = rng.choice(remaining, take, replace=False)
        else:
            scores = uncertainty(probabilities(head, data["embeddings"][remaining]), strategy)
            picked = remaining[np.argsort(-scores, kind="stable")[:take]]
        chosen.extend(int(index) for index in picked)


def load_data(args) -> dict:
    """Embeddings, class indices and the start/pool/evaluation indices of the sol cut."""
    print(f"Embedding {args.data} (cache {args.cache}) ...", flush=True)
    data = load_embeddings(args.data, args.cache)
    sols = pd.read_csv(args.data / "manifest.csv", dtype={"sol": int})["sol"].to_numpy()
    data.update(start=in_sols(sols, sol_range(args.start)), pool=in_sols(sols, sol_range(args.pool)),
                eval=in_sols(sols, sol_range(args.eval)))
    print(f"{len(data['start'])} start images (sols {args.start}), {len(data['pool'])} pool "
          f"(sols {args.pool}), {len(data['eval'])} evaluation (sols {args.eval}); "
          f"{len(data['classes'])} classes; embeddings ready in {data['seconds']:.0f} s", flush=True)
    return data


def report(curves: dict, before: list[float], whole: list[float], args) -> dict:
    """Print the curves, the two reference figures and the labels each strategy needs."""
    whole_accuracy = float(np.mean(whole))
    target = whole_accuracy - WITHIN_POINTS
    print(f"\nBefore any new label: {np.mean(before):.4f} (seeds "
          f"{', '.join(f'{a:.4f}' for a in before)})")
    print(f"Whole pool labeled ({args.pool_size} new "
          f"labels): {whole_accuracy:.4f} (seeds {', '.join(f'{a:.4f}' for a in whole)}); "
          f"target {target:.4f}")
    print("\nEvaluation accuracy (mean over seeds) against new labels:")
    print_curves(curves)
    print(f"\nNew labels needed to reach {target:.4f} (within {100 * WITHIN_POINTS:.0f} points "
          f"of the whole pool):")
    needed = labels_needed_per_strategy(curves, target, args.stop)
    shares = shares_of_random(needed, args.stop, GOAL_SHARE, "new labels")
    return {"before": before, "whole_pool": whole, "target": target, "labels_needed": needed,
            "share_of_random": shares}


def main() -> None:
    """Run the simulation and print the curves and the new labels each strategy needs."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "drift.json")
    parser.add_argument("--start", default="3-59", help="sols labeled from the start")
    parser.add_argument("--pool", default="60-181", help="sols of the new batch to label")
    parser.add_argument("--eval", default="182-564", help="later sols the model is measured on")
    args, strategies = parse_simulation_arguments(parser, step=50)

    data = load_data(args)
    args.pool_size = len(data["pool"])
    started = time.perf_counter()
    before = [accuracy_of(train_on(data, data["start"], seed), data) for seed in range(args.seeds)]
    whole = [accuracy_of(train_on(data, np.concatenate([data["start"], data["pool"]]), seed), data)
             for seed in range(args.seeds)]
    curves = {}
    for strategy in strategies:
        runs = [simulate(strategy, data, seed, args.step, args.stop) for seed in range(args.seeds)]
        curves[strategy] = {"mean": mean_curve(runs), "runs": runs}
        print(f"  {strategy} done ({time.perf_counter() - started:.0f} s)", flush=True)
    summary = report(curves, before, whole, args)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary | {
        "curves": curves, "seconds": time.perf_counter() - started,
        "settings": vars(args) | {"data": str(args.data), "cache": str(args.cache),
                                  "out": str(args.out)}}, indent=1) + "\n")
    print(f"\nWrote {args.out}; simulation took {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
