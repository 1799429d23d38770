"""Classification throughput end to end, and the accuracy of each inference path on HiRISE val.

Builds a project of N real crops (the 3245 of ../shared/data/hirise repeated, each copy made
distinct by a JPEG comment naming it, so that every copy has its own content hash and decodes
to the same pixels), makes a model version serve, and times the classify job from its submit
to its end, with real `worker` processes: decode, preprocess, infer, store and index, per
variant (engine, precision, views, workers). Each variant gets a new model version (so every
image lacks its prediction) and an empty embedding cache. The accuracy and ECE of each
(engine, precision, views) is measured on the 581 val crops, outside the app.

    python benchmarks/classify_speed.py --model MODEL_DIR --images 20000
    python benchmarks/classify_speed.py --model MODEL_DIR --images 20000 \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/classify_speed \\
        --queue redis://127.0.0.1:6379/7 --workers 1,2 --workers-kill

MODEL_DIR: a model directory trained on the train split, e.g. the quick model:
`supervising-ui ml train --manifest ../shared/data/hirise/manifest.csv --image-root
../shared/data/hirise/images --split-column split --mode head --out MODEL_DIR`. Its int8 graph
is made here, calibrated on 320 train crops, if it has none. Two workers need PostgreSQL and
Redis (the database is emptied). --workers-kill kills one worker (SIGKILL) once a third of the
images are done and checks that every image has exactly one prediction of the version.
"""
from __future__ import annotations

import argparse
import csv
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
HIRISE = ROOT.parent / "shared" / "data" / "hirise"
sys.path.insert(0, str(ROOT))
CALIBRATION_IMAGES = 320
APP_VARIANT = "onnx:fp32:2"
VARIANTS = ["torch:fp32:4", "torch:fp32:1", "onnx:fp32:4", "onnx:fp32:1", "onnx:fp32:2",
            "onnx:int8:4", "onnx:int8:1", "onnx:int8:2"]


def manifest_rows(split: str | None = None) -> list[dict]:
    """The HiRISE manifest's rows (of one split)."""
    with open(HIRISE / "manifest.csv", newline="") as handle:
        return [row for row in csv.DictReader(handle) if split is None or row["split"] == split]


class TorchPredictor:
    """Today's path before ONNX, behind the serving predictor's interface (proba, classes)."""

    def __init__(self, path: str, views: int):
        from supervising_ui.ml.model_dir import load_model
        self.model, self.info = load_model(path)
        self.views, self.classes = views, self.info.classes

    def proba(self, records, cache_dir=None, progress=None):
        """proba_from_model() with this many views (the embedding cache as before)."""
        from supervising_ui.ml.predict import proba_from_model
        return proba_from_model(self.model, self.info.config, records, cache_dir=cache_dir,
                                progress=progress, tta_views=self.views)


def predictor(model: str, engine: str, precision: str, views: int, threads: int = 0):
    """A predictor of one variant."""
    if engine == "torch":
        return TorchPredictor(model, views)
    from supervising_ui.ml.serving import OnnxPredictor
    return OnnxPredictor(model, precision, views, threads=threads)


def ensure_int8(model: str) -> None:
    """Quantize the model to int8, calibrated on CALIBRATION_IMAGES train crops, if not yet."""
    from supervising_ui.ml.onnx_export import onnx_path, quantize_int8
    from supervising_ui.ml.serving import network_input
    if onnx_path(model, "int8").is_file():
        return
    from supervising_ui.ml.model_dir import read_model_dir
    preprocessing = read_model_dir(model).preprocessing
    rows = manifest_rows("train")
    picked = [rows[i] for i in np.random.default_rng(0).permutation(len(rows))[:CALIBRATION_IMAGES]]
    paths = [str(HIRISE / "images" / row["filename"]) for row in picked]
    started = time.monotonic()
    quantize_int8(model, (network_input(paths[i:i + 32], preprocessing, [0])
                          for i in range(0, len(paths), 32)))
    print(f"int8 graph made in {time.monotonic() - started:.1f} s ({len(paths)} train crops)")


def accuracy_table(model: str, variants: list[str]) -> dict:
    """Accuracy and ECE on the val split per (engine, precision, views)."""
    from supervising_ui.ml.calibration import expected_calibration_error
    rows = manifest_rows("val")
    paths = [str(HIRISE / "images" / row["filename"]) for row in rows]
    results = {}
    for variant in dict.fromkeys(variants):
        engine, precision, views = variant.split(":")
        serving = predictor(model, engine, precision, int(views))
        labels = np.array([serving.classes.index(row["label"]) for row in rows])
        started = time.monotonic()
        proba = serving.proba(paths)
        seconds = time.monotonic() - started
        accuracy = float((proba.argmax(1) == labels).mean())
        ece = expected_calibration_error(proba, labels)
        results[variant] = {"accuracy": accuracy, "ece": ece}
        print(f"val {variant:14s} accuracy {accuracy:.4f} ({int(round(accuracy * len(rows)))}/"
              f"{len(rows)})  ECE {ece:.4f}  ({len(rows) / seconds:.1f} images/s in one "
              f"process, no cache, load {os.getloadavg()[0]:.2f})", flush=True)
    return results


def environment(args) -> dict:
    """The SUPERVISING_UI_* variables the setup and the workers share."""
    env = dict(os.environ, SUPERVISING_UI_INSTANCE=str(Path(args.work) / "instance"),
               SUPERVISING_UI_JOB_QUEUE=args.queue or "sqlite")
    if args.database_url:
        env["SUPERVISING_UI_DATABASE_URL"] = args.database_url
    return env


def build_project(app, count: int, name: str) -> int:
    """A HiRISE project of count stored crops with distinct content; return its id."""
    from sqlalchemy import insert

    from supervising_ui import database, storage
    from supervising_ui.extensions import db
    from supervising_ui.models import Image
    from supervising_ui.projects import service
    from supervising_ui.search import index as search_index
    database.create_or_migrate()  # nothing to do after the first project
    project = service.create_project(name, preset="hirise")
    rows = manifest_rows()
    originals = [(HIRISE / "images" / row["filename"]).read_bytes() for row in rows]
    batch = []
    for index in range(count):
        data = originals[index % len(originals)]
        comment = f"{name} copy {index}".encode()
        data = data[:2] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment + data[2:]
        digest = storage.content_hash(data)
        key = storage.storage_key(digest, "jpg")
        storage.store_bytes(app.config["IMAGE_STORE"], key, data)
        batch.append({"project_id": project.id, "storage_key": key, "content_hash": digest,
                      "original_name": f"{index:06d}_{rows[index % len(rows)]['filename']}",
                      "width": 227, "height": 227, "meta": {}, "random_key": float(index) / count,
                      "label_count": 0})
        if len(batch) == 2000 or index == count - 1:
            db.session.execute(insert(Image), batch)
            db.session.commit()
            batch = []
    search_index.rebuild_project(project.id)  # search rows, as an import makes them
    return project.id


def new_serving_version(project_id: int, model: str, number: int) -> int:
    """A new model version of the model directory, serving; return its id."""
    from supervising_ui.extensions import db
    from supervising_ui.learning.predictions import promote
    from supervising_ui.models import ModelVersion
    version = ModelVersion(project_id=project_id, version=number, kind="quick", path=model)
    db.session.add(version)
    db.session.commit()
    promote(version)
    return version.id


def start_workers(args, variant: str, count: int, cache: str) -> list[subprocess.Popen]:
    """count worker processes of a variant, each ready (imports done) when this returns."""
    ready = Path(tempfile.mkdtemp(dir=args.work))
    threads = max(1, (os.cpu_count() or 1) // count)
    workers = [subprocess.Popen([sys.executable, __file__, "--as-worker", variant, "--model",
                                 args.model, "--cache", cache, "--threads", str(threads),
                                 "--chunk-images", str(args.chunk_images),
                                 "--ready", str(ready / f"{n}")], env=environment(args),
                                stdout=subprocess.DEVNULL, stderr=open(Path(args.work) / "workers.log", "a"))
               for n in range(count)]
    deadline = time.monotonic() + 120
    while len(list(ready.iterdir())) < count:
        if time.monotonic() > deadline or any(w.poll() is not None for w in workers):
            raise RuntimeError(f"workers did not start: see {Path(args.work) / 'workers.log'}")
        time.sleep(0.2)
    return workers


def run_worker(args) -> None:
    """A `worker` process whose predictions take the variant's path (--as-worker)."""
    import torch

    from supervising_ui import create_app
    from supervising_ui.jobs import queue as jobs
    from supervising_ui.learning import classify, predictions
    engine, precision, views = args.as_worker.split(":")
    torch.set_num_threads(args.threads)
    app = create_app({"CACHE_DIR": args.cache, "CLASSIFY_PRECISION": precision,
                      "CLASSIFY_THREADS": args.threads, "CLASSIFY_VIEWS": int(views),
                      "CLASSIFY_CHUNK_IMAGES": args.chunk_images})
    if engine == "torch":
        loaded = {}

        def torch_predictor(path):
            return loaded.setdefault(path, TorchPredictor(path, int(views)))
        predictions.predictor_for = classify.predictor_for = torch_predictor
    import onnxruntime  # noqa: F401 (imported before the clock starts, as in a warm worker)
    Path(args.ready).write_text(str(os.getpid()))
    with app.app_context():
        jobs.run_worker()


def timed_run(args, project_id: int, variant: str, workers_count: int, number: int,
              images: int) -> dict:
    """Classify the project with a new version: seconds, images/s, the check of the predictions."""
    from sqlalchemy import func, select

    from supervising_ui.extensions import db
    from supervising_ui.jobs import queue as jobs
    from supervising_ui.learning import classify
    from supervising_ui.models import Job, Prediction, Project
    version_id = new_serving_version(project_id, args.model, number)
    cache = tempfile.mkdtemp(dir=args.work, prefix="cache-")
    workers = start_workers(args, variant, workers_count, cache)
    load_before = os.getloadavg()[0]
    killed = None
    started = time.monotonic()
    job = classify.request_classify(db.session.get(Project, project_id))
    job_id = job.id
    while True:
        time.sleep(0.5)
        jobs.reap_stale_jobs()  # what a page polling the job does
        row = db.session.execute(select(Job.state, Job.progress, Job.error, Job.worker_pid)
                                 .where(Job.id == job_id)).one()
        db.session.commit()
        if row.state in ("done", "failed"):
            break
        if args.workers_kill and killed is None and workers_count > 1 and row.progress >= 1 / 3:
            victim = next(w for w in workers if w.pid != row.worker_pid)  # not the following one
            victim.send_signal(signal.SIGKILL)
            killed = victim.pid
            print(f"  killed worker {killed} (SIGKILL) at {row.progress:.0%}", flush=True)
        if time.monotonic() - started > args.timeout:
            raise RuntimeError(f"{variant} did not finish within {args.timeout} s")
    seconds = time.monotonic() - started
    load_after = os.getloadavg()[0]
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGINT)
    for worker in workers:
        worker.wait(60)
    if row.state != "done":
        raise RuntimeError(f"{variant}: the classify job failed: {row.error}")
    stored, distinct = db.session.execute(select(func.count(Prediction.id), func.count(
        func.distinct(Prediction.image_id))).where(Prediction.model_version_id == version_id)).one()
    db.session.commit()
    return {"variant": variant, "workers": workers_count, "images": images,
            "seconds": seconds, "images_per_s": images / seconds, "predictions": stored,
            "distinct_images": distinct, "killed": killed, "load": (load_before, load_after)}


def main() -> None:
    """Parse the options; measure accuracy, then throughput per variant and worker count."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a model directory (trained on train)")
    parser.add_argument("--images", type=int, default=20000, help="images of the app's path")
    parser.add_argument("--app-variant", default=APP_VARIANT, help="the path the app uses")
    parser.add_argument("--other-images", type=int, default=3000,
                        help="images of the other ONNX variants (a rate is a rate)")
    parser.add_argument("--torch-images", type=int, default=600,
                        help="images of the torch variants (slow)")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help="engine:precision:views, comma-separated")
    parser.add_argument("--workers", default="1", help="worker counts, comma-separated")
    parser.add_argument("--database-url", default=None, help="default: SQLite in --work")
    parser.add_argument("--queue", default=None, help="redis://... (default: SQLite queue)")
    parser.add_argument("--workers-kill", action="store_true")
    parser.add_argument("--chunk-images", type=int, default=2000, help="CLASSIFY_CHUNK_IMAGES")
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--accuracy-only", action="store_true")
    parser.add_argument("--work", default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--as-worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--cache", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--ready", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    # Neither engine's threads spin while waiting: ONNX Runtime's do not (serving.py), nor
    # torch's OpenMP ones here, which on this loaded 2-core machine otherwise slowed torch 10x.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if args.as_worker:
        return run_worker(args)
    args.model = str(Path(args.model).resolve())
    variants = args.variants.split(",")
    if any(":int8:" in variant for variant in variants):
        ensure_int8(args.model)
    from supervising_ui.ml.onnx_export import ensure_onnx, onnx_path
    if not onnx_path(args.model).is_file():
        started = time.monotonic()
        ensure_onnx(args.model)
        print(f"exported model.onnx in {time.monotonic() - started:.1f} s")
    print(f"{os.cpu_count()} cores, load average {open('/proc/loadavg').read().split()[:3]}")
    if not args.skip_accuracy:
        accuracy_table(args.model, variants)
    if args.accuracy_only:
        return
    args.work = args.work or tempfile.mkdtemp(prefix="classify-speed-")
    os.environ.update(environment(args))
    from sqlalchemy import text

    from supervising_ui import create_app
    from supervising_ui.extensions import db
    app = create_app()
    projects, number = {}, 0
    with app.app_context():
        if args.database_url:  # an empty schema, migrated in build_project
            with db.engine.begin() as connection:
                connection.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        for workers_count in [int(count) for count in args.workers.split(",")]:
            for variant in variants:
                number += 1
                images = (args.images if variant == args.app_variant else args.torch_images
                          if variant.startswith("torch") else args.other_images)
                if images not in projects:
                    started = time.monotonic()
                    projects[images] = build_project(app, images, f"HiRISE-{images}")
                    print(f"project of {images} crops built in {time.monotonic() - started:.1f} s")
                result = timed_run(args, projects[images], variant, workers_count, number, images)
                print(f"{variant:14s} {workers_count} worker(s): {images} images in "
                      f"{result['seconds']:.1f} s = {result['images_per_s']:.1f} images/s end to "
                      f"end; {result['predictions']} predictions of {result['distinct_images']} "
                      f"images{' after a kill' if result['killed'] else ''}; load "
                      f"{result['load'][0]:.2f} -> {result['load'][1]:.2f}", flush=True)
                if not result["predictions"] == result["distinct_images"] == images:
                    raise SystemExit("FAILED: not exactly one prediction per image")


if __name__ == "__main__":
    main()
