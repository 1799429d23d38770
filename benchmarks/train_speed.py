"""Print measured training timings on HiRISE: default training, head mode (empty and warm
embedding cache), embedding throughput, and the peak memory of each run.

Each measurement runs in its own child process, so its peak resident memory
(resource.getrusage(RUSAGE_SELF).ru_maxrss at the end of the child) is its own.

    python benchmarks/train_speed.py                 # everything (the default training takes ~15 min)
    python benchmarks/train_speed.py --skip-default  # head mode and embeddings only (~3 min)
"""
from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "hirise"


def load_records(data: Path, limit: int | None):
    """Train and val records of the HiRISE manifest (optionally the first `limit` of each)."""
    from supervising_ui.ml.data import read_manifest, records_from_frame
    frame = read_manifest(data / "manifest.csv", data / "images")
    train = records_from_frame(frame[frame["split"] == "train"], group_column="source_id")
    val = records_from_frame(frame[frame["split"] == "val"], group_column="source_id")
    if limit:  # a spread-out sample, so that most classes appear
        return train[::max(1, len(train) // limit)][:limit], val[::max(1, len(val) // limit)][:limit]
    return train, val


def measure(name: str, data: Path, work: Path, limit: int | None) -> dict:
    """Run one measurement in this process and return its figures."""
    import torch

    from supervising_ui.ml.backbones import load_backbone
    from supervising_ui.ml.data import Preprocessing
    from supervising_ui.ml.embeddings import embed_records
    from supervising_ui.ml.train import TrainConfig, fit

    train, val = load_records(data, limit)
    classes = sorted({r.label for r in train + val})
    result: dict = {"measurement": name, "threads": torch.get_num_threads()}
    started = time.perf_counter()
    if name == "embeddings":
        backbone = load_backbone("efficientnet_lite0")
        sample = val[:256]
        tick = time.perf_counter()
        embed_records(backbone, sample, Preprocessing(), [0], cache=None, batch_size=8)
        result["images"] = len(sample)
        result["images_per_s"] = len(sample) / (time.perf_counter() - tick)
    elif name in ("head_empty_cache", "head_warm_cache"):
        model = fit(train, TrainConfig(mode="head", classes=classes), work / name, val, cache_dir=work / "cache")
        result["val_accuracy"] = model.metrics["val"]["accuracy"]
        result["fit_timings"] = model.metrics["timings"]
    elif name == "default":
        model = fit(train, TrainConfig(classes=classes), work / name, val)
        result["val_accuracy"] = model.metrics["val"]["accuracy"]
        result["val_at_0.9"] = model.metrics["val"]["at_threshold"]
        result["fit_timings"] = model.metrics["timings"]
        result["epochs"] = model.metrics["history"]
    else:
        raise ValueError(name)
    result["seconds"] = time.perf_counter() - started
    result["n_train"], result["n_val"] = len(train), len(val)
    result["peak_memory_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def main() -> None:
    """Run the measurements in child processes and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--limit", type=int, default=None, help="use only N train and N val images")
    parser.add_argument("--skip-default", action="store_true", help="skip the default (finetune) run")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.data, args.work, args.limit)))
        return

    work = Path(tempfile.mkdtemp(prefix="train_speed_"))
    names = ["embeddings", "head_empty_cache", "head_warm_cache"] + ([] if args.skip_default else ["default"])
    try:
        results = []
        for name in names:
            command = [sys.executable, __file__, "--one", name, "--data", str(args.data), "--work", str(work)]
            if args.limit:
                command += ["--limit", str(args.limit)]
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            results.append(json.loads(output.strip().splitlines()[-1]))
            row = results[-1]
            extra = (f"{row['images_per_s']:.1f} img/s" if "images_per_s" in row
                     else f"val accuracy {row['val_accuracy']:.3f}")
            print(f"{name:18s} {row['seconds']:8.1f} s  peak {row['peak_memory_mb']:7.0f} MiB  "
                  f"{extra}  (train {row['n_train']}, val {row['n_val']}, threads {row['threads']})",
                  flush=True)
        print(json.dumps(results, indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
