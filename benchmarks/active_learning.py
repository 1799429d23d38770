"""Active learning on HiRISE: random versus uncertainty sampling, measured.

Simulates labeling the training split of ../shared/data/hirise in rounds: start with 60
labels, add 60 per round up to 1200, each round training the quick model's head alone (a
linear head over cached EfficientNet-Lite0 embeddings, supervising_ui.ml's trainer with
`top_blocks` 0; the app's quick model also retrains the last block) and evaluating on
the val split. Random sampling picks the next 60 at random; uncertainty sampling picks the 60
unlabeled images the current model is least sure of (least confidence, margin, entropy). Every
strategy starts from the same 60 images per seed.

Prints the accuracy curve of each strategy (mean over seeds) and the number of labels each needs
to come within 2 points of the accuracy of training on all 2664 training images.

    python benchmarks/active_learning.py [--data DIR] [--cache DIR] [--seeds 3]

Embedding all 3245 images takes a few minutes on 2 CPU cores the first time; they are cached
(default benchmarks/out/cache) so later runs take about as long as the head trainings.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from supervising_ui.ml.backbones import backbone_spec, build_head, load_backbone
from supervising_ui.ml.data import Preprocessing, read_manifest, records_from_frame
from supervising_ui.ml.embeddings import EmbeddingCache, cache_key, embed_records
from supervising_ui.ml.train import TrainConfig, train_on_features
from supervising_ui.ml.uncertainty import uncertainty

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "hirise"
STRATEGIES = ("random", "least_confidence", "margin", "entropy")
WITHIN_POINTS = 0.02  # "within 2 points of training on everything"
GOAL_SHARE = 0.6      # a strategy should need at most 60% of random's labels
BACKBONE = "efficientnet_lite0"


def load_embeddings(data_dir: Path, cache_dir: Path) -> dict:
    """Embeddings (N, D), class indices and split of every manifest image, computed once, cached."""
    frame = read_manifest(data_dir / "manifest.csv", data_dir / "images")
    records = records_from_frame(frame)  # groups play no part in embedding
    spec = backbone_spec(BACKBONE)
    preprocessing = Preprocessing(spec.image_size, spec.normalization)
    cache = EmbeddingCache(cache_dir, cache_key(BACKBONE, preprocessing))
    backbone = load_backbone(BACKBONE)
    started, last = time.perf_counter(), [0.0]

    def progress(stage: str, done: int, total: int) -> None:
        if time.perf_counter() - last[0] > 15 or done == total:
            last[0] = time.perf_counter()
            print(f"  embedding {done}/{total} ({time.perf_counter() - started:.0f} s)", flush=True)

    embeddings = embed_records(backbone, records, preprocessing, [0], cache, 8, progress)[0]
    classes = sorted(set(frame["label"]))
    return {"embeddings": embeddings, "labels": np.array([classes.index(n) for n in frame["label"]]),
            "split": frame["split"].to_numpy(), "classes": classes,
            "seconds": time.perf_counter() - started}


def fit_head(embeddings: torch.Tensor, labels: np.ndarray, num_classes: int, seed: int) -> nn.Module:
    """A linear head trained on pooled embeddings with the ML package's defaults: the quick model
    with top_blocks 0 (the app's quick model also retrains the last block since then; these
    simulations keep the head alone, which trains in seconds, for their hundreds of retrains)."""
    config = TrainConfig(mode="head", top_blocks=0, seed=seed).resolved()
    torch.manual_seed(seed)
    head = build_head(embeddings.shape[1], num_classes, config.head, config.head_dropout)
    train_on_features(head, embeddings.unsqueeze(0), torch.as_tensor(labels, dtype=torch.long), config,
               nn.CrossEntropyLoss(), torch.Generator().manual_seed(seed))
    return head


def probabilities(head: nn.Module, embeddings: torch.Tensor) -> np.ndarray:
    """(N, C) softmax probabilities of a head."""
    head.eval()
    with torch.inference_mode():
        return torch.softmax(head(embeddings), dim=1).double().numpy()


def simulate(strategy: str, data: dict, seed: int, start: int, step: int, stop: int) -> list[dict]:
    """One labeling run: (labels, val accuracy) per round."""
    train_x, train_y, val_x, val_y, num_classes = data["train"]
    rng = np.random.default_rng(seed)
    labeled = list(rng.choice(len(train_y), start, replace=False))  # same start for every strategy
    pick_rng = np.random.default_rng(seed + 1000)
    curve = []
    while True:
        head = fit_head(train_x[labeled], train_y[labeled], num_classes, seed)
        accuracy = float(np.mean(probabilities(head, val_x).argmax(1) == val_y))
        curve.append({"labels": len(labeled), "accuracy": accuracy})
        if len(labeled) >= stop:
            return curve
        pool = np.setdiff1d(np.arange(len(train_y)), labeled)
        if strategy == "random":
            chosen = pick_rng.choice(pool, step, replace=False)
        else:
            scores = uncertainty(probabilities(head, train_x[pool]), strategy)
            chosen = pool[np.argsort(-scores, kind="stable")[:step]]
        labeled.extend(int(i) for i in chosen)


def labels_needed(curve: list[dict], target: float) -> int | None:
    """The first label count whose accuracy reaches target, or None."""
    return next((point["labels"] for point in curve if point["accuracy"] >= target), None)


def mean_curve(curves: list[list[dict]]) -> list[dict]:
    """Average the accuracy of several runs round by round."""
    return [{"labels": points[0]["labels"],
             "accuracy": float(np.mean([p["accuracy"] for p in points])),
             "std": float(np.std([p["accuracy"] for p in points]))}
            for points in zip(*curves, strict=True)]


def parse_simulation_arguments(parser, step: int) -> tuple:
    """Add the options every labeling simulation takes, parse, return (args, strategies)."""
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--step", type=int, default=step)
    parser.add_argument("--stop", type=int, default=1200)
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    strategies = [s for s in args.strategies.split(",") if s]
    if "random" not in strategies:
        parser.error("--strategies must include random: it is the reference")
    return args, strategies


def print_curves(curves: dict) -> None:
    """Print the mean accuracy (and spread over seeds) of each strategy against labels."""
    strategies = list(curves)
    print("labels  " + "  ".join(f"{s:>16}" for s in strategies))
    for index, point in enumerate(curves[strategies[0]]["mean"]):
        cells = [f"{curves[s]['mean'][index]['accuracy']:.4f} ±{curves[s]['mean'][index]['std']:.3f}"
                 for s in strategies]
        print(f"{point['labels']:>6}  " + "  ".join(f"{c:>16}" for c in cells))


def labels_needed_per_strategy(curves: dict, target: float, stop: int) -> dict:
    """Print and return the labels each strategy's mean curve needs to reach target."""
    needed = {}
    for strategy, curve in curves.items():
        needed[strategy] = labels_needed(curve["mean"], target)
        per_seed = [labels_needed(run, target) for run in curve["runs"]]
        shown = needed[strategy] if needed[strategy] is not None else f"> {stop}"
        print(f"  {strategy:>16}: {shown}  (per seed: {per_seed})")
    return needed


def shares_of_random(needed: dict, stop: int, goal: float, unit: str) -> dict:
    """Print each strategy's labels as a share of random's against goal; return the shares."""
    shares = {}
    for strategy in (s for s in needed if s != "random"):
        if needed[strategy] is None:
            verdict = "does not reach the target"
        elif needed["random"] is None:
            verdict = f"reaches it; random does not within {stop} {unit}"
        else:
            shares[strategy] = needed[strategy] / needed["random"]
            verdict = (f"{100 * shares[strategy]:.0f}% of random's {unit}: "
                       f"{'within' if shares[strategy] <= goal else 'NOT within'} the "
                       f"{100 * goal:.0f}% goal")
        print(f"  {strategy}: {verdict}")
    return shares


def main() -> None:
    """Run the simulation and print the curves and the labels each strategy needs."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--cache", type=Path, default=ROOT / "benchmarks" / "out" / "cache")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "active_learning.json")
    parser.add_argument("--start", type=int, default=60)
    args, strategies = parse_simulation_arguments(parser, step=60)

    print(f"Embedding {args.data} with {BACKBONE} (cache {args.cache}) ...", flush=True)
    data = load_embeddings(args.data, args.cache)
    is_train, is_val = data["split"] == "train", data["split"] == "val"
    x = data["embeddings"]
    data["train"] = (x[is_train], data["labels"][is_train], x[is_val], data["labels"][is_val],
                     len(data["classes"]))
    print(f"{int(is_train.sum())} training and {int(is_val.sum())} val images, classes "
          f"{data['classes']}; embeddings ready in {data['seconds']:.0f} s", flush=True)

    started = time.perf_counter()
    full = []
    for seed in range(args.seeds):
        head = fit_head(x[is_train], data["labels"][is_train], len(data["classes"]), seed)
        full.append(float(np.mean(probabilities(head, x[is_val]).argmax(1) == data["labels"][is_val])))
    full_accuracy = float(np.mean(full))
    target = full_accuracy - WITHIN_POINTS
    print(f"All {int(is_train.sum())} training labels: val accuracy {full_accuracy:.4f} "
          f"(seeds {', '.join(f'{a:.4f}' for a in full)}); target {target:.4f}", flush=True)

    curves = {}
    for strategy in strategies:
        runs = [simulate(strategy, data, seed, args.start, args.step, args.stop)
                for seed in range(args.seeds)]
        curves[strategy] = {"mean": mean_curve(runs), "runs": runs}
        print(f"  {strategy} done ({time.perf_counter() - started:.0f} s)", flush=True)

    print("\nVal accuracy (mean over seeds) against number of labels:")
    print_curves(curves)
    print(f"\nLabels needed to reach {target:.4f} (within {100 * WITHIN_POINTS:.0f} points of "
          f"{full_accuracy:.4f}, all {int(is_train.sum())} training labels):")
    needed = labels_needed_per_strategy(curves, target, args.stop)
    summary = shares_of_random(needed, args.stop, GOAL_SHARE, "labels")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "full_accuracy": full_accuracy, "full_accuracy_per_seed": full, "target": target,
        "labels_needed": needed, "share_of_random": summary, "curves": curves,
        "settings": vars(args) | {"data": str(args.data), "cache": str(args.cache), "out": str(args.out)},
        "seconds": time.perf_counter() - started}, indent=1) + "\n")
    print(f"\nWrote {args.out}; simulation took {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
