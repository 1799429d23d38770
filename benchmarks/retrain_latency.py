"""How long from "Retrain now" to a fresh suggestion, on the real HiRISE images.

Builds a throw-away instance (SQLite, SQLite job queue), imports the 3245 HiRISE crops with
`supervising-ui import` (labels left out), gives LABELS of the training images their manifest
label as if a labeler had, starts `supervising-ui worker`, then asks for a quick retrain through
the API while a labeler keeps submitting, and prints:

- seconds from the retrain request to the job being done, and to the next image carrying a
  suggestion of the new model version;
- the labeler's submits during the run and any that failed.

Embeddings are read from --cache (the one benchmarks/active_learning.py fills); with a cold
cache the first run also embeds every image (minutes on 2 cores).

    python benchmarks/retrain_latency.py [--labels 300] [--cache benchmarks/out/cache]
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
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


def main() -> None:
    """Set up, retrain once under load, print the latencies."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--cache", type=Path, default=ROOT / "benchmarks" / "out" / "cache")
    parser.add_argument("--labels", type=int, default=300)
    parser.add_argument("--keep", action="store_true", help="keep the temporary instance")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="retrain-latency-"))
    instance = workdir / "instance"
    (instance / "cache").mkdir(parents=True)
    args.cache.mkdir(parents=True, exist_ok=True)
    (instance / "cache" / "embeddings").symlink_to(args.cache.resolve())
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPERVISING_UI_")}
    env["SUPERVISING_UI_INSTANCE"] = str(instance)
    os.environ.update({"SUPERVISING_UI_INSTANCE": str(instance)})

    frame = pd.read_csv(args.data / "manifest.csv", dtype=str)
    frame.drop(columns=["label"]).to_csv(workdir / "images.csv", index=False)
    console("init", env=env)
    console("create-project", "hirise", "--preset", "hirise", env=env)
    tick = time.perf_counter()
    console("import", "hirise", "--manifest", str(workdir / "images.csv"), "--image-root",
            str(args.data / "images"), env=env)
    print(f"imported {len(frame)} images in {time.perf_counter() - tick:.1f} s")

    from sqlalchemy import select

    from supervising_ui import create_app
    from supervising_ui.accounts.users import create_api_token, create_user
    from supervising_ui.extensions import db
    from supervising_ui.models import Image, Job, Label, Project

    app = create_app()
    with app.app_context():
        admin, _ = create_user("ada", role="admin", password=PASSWORD)
        create_user("lee", role="labeler", password=PASSWORD)
        token = create_api_token(admin)
        project = db.session.scalar(select(Project).where(Project.name == "hirise"))
        truth = dict(zip(frame["filename"], frame["label"], strict=True))
        class_ids = {c.name: c.id for c in project.classes}
        images = db.session.scalars(select(Image).where(Image.project_id == project.id)
                                    .order_by(Image.original_name)).all()  # same pick every run
        training = [i for i in images if i.meta.get("split") == "train"]
        chosen = np.random.default_rng(0).choice(len(training), args.labels, replace=False)
        for index in chosen:
            image = training[index]
            db.session.add(Label(project_id=project.id, image_id=image.id, user_id=admin.id,
                                 label_class_id=class_ids[truth[image.original_name]]))
            image.label_count = 1
        db.session.commit()
        project_id = project.id
        truth_by_id = {i.id: truth[i.original_name] for i in images}
    print(f"{args.labels} labeled training images; starting the worker")

    worker = subprocess.Popen([str(Path(sys.executable).with_name("supervising-ui")), "worker"],
                              env=env, stdout=open(workdir / "worker.log", "w"),
                              stderr=subprocess.STDOUT)
    try:
        time.sleep(8)  # let the worker import torch: we time the retrain, not the start-up
        admin_client = app.test_client()
        headers = {"Authorization": f"Bearer {token}"}
        labeler = app.test_client()
        page = labeler.get("/login")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)
        labeler.post("/login", data={"username": "lee", "password": PASSWORD, "csrf_token": csrf})
        csrf = re.search(r'name="csrf-token" content="([^"]+)"',
                         labeler.get("/").get_data(as_text=True)).group(1)

        started = time.perf_counter()
        response = admin_client.post(f"/api/projects/{project_id}/retrain", headers=headers)
        assert response.status_code == 202, response.get_data(as_text=True)
        job_id = response.json["job_id"]
        submits, failures, status = 0, [], {}
        while time.perf_counter() - started < 600:
            given = labeler.get(f"/api/projects/{project_id}/next")
            if given.status_code == 200:
                image_id = given.json["image_id"]
                answer = labeler.post(f"/api/images/{image_id}/labels",
                                      json={"label": truth_by_id[image_id],
                                            "request_id": str(uuid.uuid4())},
                                      headers={"X-CSRFToken": csrf})
                submits += 1
                if answer.status_code != 201:
                    failures.append((answer.status_code, answer.get_data(as_text=True)[:200]))
            status = admin_client.get(f"/api/jobs/{job_id}", headers=headers).json
            if status["state"] in ("done", "failed"):
                break
            time.sleep(0.5)
        done_after = time.perf_counter() - started
        given = labeler.get(f"/api/projects/{project_id}/next").json
        suggestion_after = time.perf_counter() - started
        print(f"job {job_id}: {status['state']} {status.get('error') or ''}")
        print(f"retrain request -> job done: {done_after:.1f} s; -> next image with a suggestion of "
              f"v{(given.get('suggestion') or {}).get('model_version')}: {suggestion_after:.1f} s")
        print(f"labeler submits during the run: {submits}, failed: {len(failures)} {failures[:3]}")
        with app.app_context():
            print("job log:\n" + db.session.get(Job, job_id).log)
    finally:
        worker.terminate()
        worker.wait(30)
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"kept {workdir}")


if __name__ == "__main__":
    main()
