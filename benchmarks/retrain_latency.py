"""How long a quick retrain takes on the HiRISE train split, cold (nothing cached) and warm.

Builds a throw-away instance (SQLite, SQLite job queue, an empty embedding cache), imports the
2664 crops of the train split of ../shared/data/hirise with `supervising-ui import` (labels left
out; EMBED_AT_IMPORT off, so that nothing is computed before the first retrain), gives --labels
of them their manifest label as if a labeler had, starts `supervising-ui worker`, and asks
for two quick retrains through the API:

- cold: nothing cached, so the retrain first computes every image's features (ONNX Runtime),
  then trains and predicts all images;
- warm: after --more further labels, the same project again (every feature cached).

For each it prints the seconds from the request to the job being done and to the next image
carrying a suggestion of the new version, and the job's log (where the time went). Then the
warm model's accuracy on the 581 crops of the val split (with its 95% Wilson interval), and,
with --embed-job, how long the import's embed job takes for the val crops (a second project).

    python benchmarks/retrain_latency.py                 # 2664 images, 300 + 30 labels
    python benchmarks/retrain_latency.py --quick         # a smoke run: 200 images, 40 + 10 labels
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "hirise"
PASSWORD = "benchmark password"


def console(*args: str, env: dict) -> str:
    """Run `supervising-ui ARGS` and return its output (raise on failure)."""
    command = Path(sys.executable).with_name("supervising-ui")
    done = subprocess.run([str(command), *args], env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"supervising-ui {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def give_labels(app, project_name: str, frame: pd.DataFrame, count: int, seed: int) -> int:
    """Label `count` more unlabeled images of the project with their manifest label (as the
    first admin); return how many images are labeled now."""
    from sqlalchemy import func, select

    from supervising_ui.extensions import db
    from supervising_ui.models import Image, Label, Project, User
    with app.app_context():
        project = db.session.scalar(select(Project).where(Project.name == project_name))
        admin = db.session.scalar(select(User).where(User.role == "admin").order_by(User.id))
        truth = dict(zip(frame["filename"], frame["label"], strict=True))
        class_ids = {c.name: c.id for c in project.classes}
        unlabeled = db.session.scalars(select(Image).where(
            Image.project_id == project.id, Image.label_count == 0)
            .order_by(Image.original_name)).all()  # the same pick every run
        for index in np.random.default_rng(seed).choice(len(unlabeled), count, replace=False):
            image = unlabeled[index]
            db.session.add(Label(project_id=project.id, image_id=image.id, user_id=admin.id,
                                 label_class_id=class_ids[truth[image.original_name]]))
            image.label_count = 1
        db.session.commit()
        return db.session.scalar(select(func.count(Image.id)).where(
            Image.project_id == project.id, Image.label_count > 0))


def timed_retrain(app, project_id: int, headers: dict, labeler) -> dict:
    """Ask for a quick retrain, wait for it; the seconds to done and to a new suggestion."""
    from supervising_ui.extensions import db
    from supervising_ui.models import Job
    client = app.test_client()
    started = time.perf_counter()
    response = client.post(f"/api/projects/{project_id}/retrain", headers=headers,
                           json={"kind": "quick"})
    assert response.status_code == 202, response.get_data(as_text=True)
    job_id = response.json["job_id"]
    status = {}
    while time.perf_counter() - started < 900:
        status = client.get(f"/api/jobs/{job_id}", headers=headers).json
        if status["state"] in ("done", "failed", "cancelled"):
            break
        time.sleep(0.1)
    done_after = time.perf_counter() - started
    given = labeler.get(f"/api/projects/{project_id}/next").json or {}
    suggestion_after = time.perf_counter() - started
    with app.app_context():
        job = db.session.get(Job, job_id)
        log, result = job.log, job.result or {}
    return {"state": status.get("state"), "error": status.get("error"), "done_s": done_after,
            "suggestion_s": suggestion_after, "log": log, "result": result,
            "suggested_version": (given.get("suggestion") or {}).get("model_version")}


def report(name: str, run: dict) -> None:
    """Print one retrain's figures and its job log."""
    print(f"{name}: job {run['state']} {run['error'] or ''}; request -> done {run['done_s']:.1f} s; "
          f"-> next image with a suggestion of v{run['suggested_version']}: "
          f"{run['suggestion_s']:.1f} s")
    print("  " + run["log"].strip().replace("\n", "\n  "))


def val_accuracy(app, model_version_id: int, val: pd.DataFrame, data: Path) -> None:
    """The model's accuracy on the val crops, with its 95% Wilson interval."""
    from supervising_ui.extensions import db
    from supervising_ui.learning.predictions import embedding_cache_dir, predictor_for
    from supervising_ui.ml import Record
    from supervising_ui.ml.intervals import wilson_interval
    from supervising_ui.models import ModelVersion
    with app.app_context():
        path = db.session.get(ModelVersion, model_version_id).path
        predictor = predictor_for(path)
        started = time.perf_counter()
        proba = predictor.proba([Record(str(data / "images" / name)) for name in val["filename"]],
                                cache_dir=embedding_cache_dir())
    right = int(np.sum(np.array(predictor.classes)[proba.argmax(axis=1)] == val["label"].to_numpy()))
    low, high = wilson_interval(right, len(val))
    print(f"warm model on the val split: {right}/{len(val)} = {100 * right / len(val):.1f}% "
          f"(95% CI {100 * low:.1f}-{100 * high:.1f}%), predicted in "
          f"{time.perf_counter() - started:.1f} s")


def main() -> None:
    """Set up, retrain cold and warm, print the latencies and the warm model's val accuracy."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--images", type=int, default=None,
                        help="only the first N train crops (default: all 2664)")
    parser.add_argument("--labels", type=int, default=300, help="labels before the cold retrain")
    parser.add_argument("--more", type=int, default=30, help="labels added before the warm one")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 200 images, 40 + 10 labels, 100 val crops")
    parser.add_argument("--embed-job", action="store_true",
                        help="also time the import's embed job on the val crops")
    parser.add_argument("--keep", action="store_true", help="keep the temporary instance")
    args = parser.parse_args()
    if args.quick:
        args.images, args.labels, args.more = args.images or 200, 40, 10

    workdir = Path(tempfile.mkdtemp(prefix="retrain-latency-"))
    instance = workdir / "instance"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPERVISING_UI_")}
    env.update(SUPERVISING_UI_INSTANCE=str(instance), SUPERVISING_UI_EMBED_AT_IMPORT="0",
               SUPERVISING_UI_NEW_PROJECT_RETRAIN_EVERY="0")
    os.environ.update({k: v for k, v in env.items() if k.startswith("SUPERVISING_UI_")})

    frame = pd.read_csv(args.data / "manifest.csv", dtype=str)
    train = frame[frame["split"] == "train"].sort_values("filename")
    val = frame[frame["split"] == "val"].sort_values("filename")
    if args.images:
        train = train.head(args.images)
    if args.quick:
        val = val.head(100)
    train.drop(columns=["label"]).to_csv(workdir / "train.csv", index=False)
    console("init", env=env)
    console("create-project", "hirise", "--preset", "hirise", env=env)
    tick = time.perf_counter()
    console("import", "hirise", "--manifest", str(workdir / "train.csv"), "--image-root",
            str(args.data / "images"), env=env)
    print(f"imported {len(train)} images in {time.perf_counter() - tick:.1f} s "
          f"(load average {os.getloadavg()[0]:.1f})")

    from sqlalchemy import select

    from supervising_ui import create_app
    from supervising_ui.accounts.users import create_api_token, create_user
    from supervising_ui.extensions import db
    from supervising_ui.models import Project

    app = create_app()
    with app.app_context():
        admin, _ = create_user("ada", role="admin", password=PASSWORD)
        create_user("lee", role="labeler", password=PASSWORD)
        token = create_api_token(admin)
        project_id = db.session.scalar(select(Project.id).where(Project.name == "hirise"))
    headers = {"Authorization": f"Bearer {token}"}
    labeler = app.test_client()
    page = labeler.get("/login").get_data(as_text=True)
    csrf = page.split('name="csrf_token" value="')[1].split('"')[0]
    labeler.post("/login", data={"username": "lee", "password": PASSWORD, "csrf_token": csrf})
    labeled = give_labels(app, "hirise", train, args.labels, seed=0)
    print(f"{labeled} labeled training images; starting the worker")

    worker = subprocess.Popen([str(Path(sys.executable).with_name("supervising-ui")), "worker"],
                              env=env, stdout=open(workdir / "worker.log", "w"),
                              stderr=subprocess.STDOUT)
    try:
        time.sleep(30)  # let the worker import what a retrain needs: we time the retrain, not start-up
        print(f"load average before the cold retrain: {os.getloadavg()[0]:.1f}")
        cold = timed_retrain(app, project_id, headers, labeler)
        report(f"cold quick retrain ({labeled} labels, {len(train)} images, nothing cached)", cold)
        labeled = give_labels(app, "hirise", train, args.more, seed=1)
        print(f"load average before the warm retrain: {os.getloadavg()[0]:.1f}")
        warm = timed_retrain(app, project_id, headers, labeler)
        report(f"warm quick retrain ({labeled} labels: {args.more} more)", warm)
        print(f"SUMMARY cold {cold['done_s']:.1f} s (target 60), warm {warm['done_s']:.1f} s "
              f"(target 10); load average {os.getloadavg()[0]:.1f}")
        if args.embed_job:  # before the val accuracy, whose predictions cache the val features
            embed_job_seconds(env, workdir, val, args.data)
        if warm["state"] == "done":
            val_accuracy(app, warm["result"]["model_version_id"], val, args.data)
    finally:
        worker.terminate()
        worker.wait(30)
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"kept {workdir}")


def embed_job_seconds(env: dict, workdir: Path, val: pd.DataFrame, data: Path) -> None:
    """Import the val crops into a second project with EMBED_AT_IMPORT on; time its embed job."""
    from sqlalchemy import select

    from supervising_ui.extensions import db
    from supervising_ui.models import Job
    val.drop(columns=["label"]).to_csv(workdir / "val.csv", index=False)
    console("create-project", "hirise-val", "--preset", "hirise", env=env)
    console("import", "hirise-val", "--manifest", str(workdir / "val.csv"), "--image-root",
            str(data / "images"), env=dict(env, SUPERVISING_UI_EMBED_AT_IMPORT="1"))
    from supervising_ui import create_app
    app = create_app()
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        with app.app_context():
            job = db.session.scalar(select(Job).where(Job.kind == "embed").order_by(Job.id.desc()))
            state, summary = job.state, (job.result or {}).get("summary")
            seconds = (job.finished_at - job.started_at).total_seconds() if job.finished_at else None
            db.session.commit()
        if state in ("done", "failed"):
            print(f"embed job of an import of {len(val)} crops: {state}, {seconds:.1f} s: {summary}")
            return
        time.sleep(0.5)


if __name__ == "__main__":
    main()
