"""The first quick retrains of a project: head alone or head plus the last block, at 20-200 labels.

A new project's first retrain comes after 20 labels (NEW_PROJECT_RETRAIN_EVERY). The quick
recipe trains EfficientNet-Lite0's last block with the head over cached activations, for at
least TOP_MIN_STEPS minibatches however few the labels: minutes on 2 cores for 20 images.
This script measures, on the real HiRISE crops (../shared/data/hirise), the held-out accuracy
on the whole val split (581 crops, 25 observations) and the training seconds of:

- head: top_blocks 0 (a linear head over pooled embeddings);
- top1: top_blocks 1 with TOP_MIN_STEPS as it is (the quick recipe today);
- top1-60: top_blocks 1 with at least 60 minibatches instead.

Each label count n is drawn at random from the train split (seeds 0 and 1); embeddings are
cached in --cache, so the first run also embeds (minutes).

    python benchmarks/quick_small_sets.py [--sizes 20,50,100,200] [--seeds 0,1]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import torch

from supervising_ui.ml import TrainConfig, fit, read_manifest, records_from_frame
from supervising_ui.ml import train as train_module

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "hirise"


def run(train, val, classes, top_blocks: int, min_steps: int | None, cache: Path) -> tuple[float, float]:
    """Fit one quick model; return (val accuracy, training seconds)."""
    saved = train_module.TOP_MIN_STEPS
    if min_steps is not None:
        train_module.TOP_MIN_STEPS = min_steps
    try:
        with tempfile.TemporaryDirectory() as out:
            model = fit(train, TrainConfig(mode="head", top_blocks=top_blocks, classes=classes),
                        out, val, cache_dir=cache)
    finally:
        train_module.TOP_MIN_STEPS = saved
    metrics = model.metrics
    return metrics["val"]["accuracy"], metrics["timings"]["train_s"]


def main() -> None:
    """Print accuracy and training time per variant and label count."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="20,50,100,200")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--cache", type=Path, default=ROOT / "benchmarks" / "out" / "cache")
    args = parser.parse_args()
    if not (DATA / "manifest.csv").is_file():
        raise SystemExit("../shared/data/hirise is not present")
    torch.set_num_threads(2)
    frame = read_manifest(DATA / "manifest.csv", DATA / "images")
    classes = sorted(frame["label"].unique())
    val = records_from_frame(frame[frame["split"] == "val"])
    pool = frame[frame["split"] == "train"]
    variants = {"head": (0, None), "top1": (1, None), "top1-60": (1, 60)}
    print(f"val: {len(val)} crops; train pool {len(pool)}; load average "
          f"{open('/proc/loadavg').read().split()[0]}", flush=True)
    for n in [int(size) for size in args.sizes.split(",")]:
        results = {name: [] for name in variants}
        for seed in [int(s) for s in args.seeds.split(",")]:
            train = records_from_frame(pool.sample(n=n, random_state=seed))
            for name, (top, steps) in variants.items():
                accuracy, seconds = run(train, val, classes, top, steps, args.cache)
                results[name].append((accuracy, seconds))
                print(f"n={n:4d} seed={seed} {name:8s} val {100 * accuracy:5.1f}%  "
                      f"train {seconds:6.1f} s", flush=True)
        for name, rows in results.items():
            print(f"n={n:4d} {name:8s} mean val {100 * statistics.mean(a for a, _ in rows):5.1f}% "
                  f"mean train {statistics.mean(s for _, s in rows):6.1f} s", flush=True)


if __name__ == "__main__":
    main()
