"""The several-servers check of the load benchmark: a retrain started through one server runs
once, by one job worker, and its suggestions show on every server.

A small project (60 images of the pool, suggestions never hidden) gets 40 labels through the
servers in turn; the admin starts a quick retrain through the first server and follows the
job through the last; then each server hands out an image with the new version's suggestion.
"""
from __future__ import annotations

import json
import time
import uuid

from load_client import CLASSES, Client

IMAGES, LABELED = 60, 40
DEADLINE_SECONDS = 600  # a quick retrain from a cold embedding cache on 2 busy cores


def retrain_check(engine, make_project) -> int:
    """Run the check on engine's servers, print what it found; return 1 if a check failed.

    make_project(count) creates a project of count images of the pool and returns its id.
    """
    from supervising_ui.extensions import db
    from supervising_ui.models import Job, ModelVersion, Project
    with engine.app.app_context():
        project_id = make_project(IMAGES)
        db.session.get(Project, project_id).hide_suggestion_share = 0.0
        db.session.commit()
        engine.created.append(project_id)
        db.session.remove()
    ports = engine.ports()
    labelers = [Client(port, engine.tokens[index]) for index, port in enumerate(ports)]
    labeled = sum(_label_one(labelers[index % len(labelers)], project_id, index)
                  for index in range(LABELED))
    admin = Client(ports[0], engine.admin_token)
    status, body = admin.request("POST", f"/api/projects/{project_id}/retrain",
                                 {"kind": "quick"})
    if status != 202:
        print(f"retrain check: the retrain was refused: {status} {body[:300]!r}")
        return 1
    job_id = json.loads(body)["job_id"]
    started = time.monotonic()
    state = _follow(Client(ports[-1], engine.admin_token), job_id)
    seconds = time.monotonic() - started
    with engine.app.app_context():
        job = db.session.get(Job, job_id)
        versions = db.session.query(ModelVersion).filter_by(project_id=project_id).count()
        worker, interruptions = job.worker_pid, job.interruptions
        db.session.remove()
    workers = [server.job_worker_pid() for server in engine.servers]
    shown = [_suggestion_version(Client(port, engine.tokens[-1 - index]), project_id)
             for index, port in enumerate(ports)]
    print(f"\n{engine.name}: {len(ports)} servers, {labeled} labels through them in turn; a quick "
          f"retrain started through the first, followed through the last: {state} after "
          f"{seconds:.0f} s, run by job worker {worker} (the servers' job workers: {workers}), "
          f"{interruptions} interruptions, {versions} model version(s); suggestion of model "
          f"version per server: {shown}", flush=True)
    passed = (state == "done" and worker in workers and interruptions == 0 and versions == 1
              and shown == [1] * len(ports))
    print("retrain check " + ("passed" if passed else "FAILED"), flush=True)
    return 0 if passed else 1


def _label_one(client: Client, project_id: int, index: int) -> int:
    """Label the next image through client; return 1 if the label was stored."""
    status, body = client.request("GET", f"/api/projects/{project_id}/next")
    if status != 200:
        return 0
    image_id = json.loads(body)["image_id"]
    status, _ = client.request("POST", f"/api/images/{image_id}/labels",
                               {"label": CLASSES[index % 2], "request_id": str(uuid.uuid4())})
    return int(status == 201)


def _follow(client: Client, job_id: int) -> str:
    """Poll the job until it is done or failed (or the deadline passes); return its state."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    state = "unknown"
    while time.monotonic() < deadline:
        status, body = client.request("GET", f"/api/jobs/{job_id}")
        state = json.loads(body)["state"] if status == 200 else f"status {status}"
        if state in ("done", "failed"):
            return state
        time.sleep(1)
    return f"{state} at the deadline"


def _suggestion_version(client: Client, project_id: int) -> int | None:
    """Return the model version of the suggestion on the next image this server hands out."""
    status, body = client.request("GET", f"/api/projects/{project_id}/next")
    if status != 200:
        return None
    suggestion = json.loads(body)["suggestion"]
    return suggestion["model_version"] if suggestion else None
