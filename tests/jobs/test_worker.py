"""The real worker: `supervising-ui worker` in its own process, a SQLite file database and the
SQLite job queue, while a labeler keeps submitting through the JSON API.

Shows the loop end to end: label -> retrain -> the next image carries a suggestion of the new
version; a retrain fires after N labels; a worker killed with SIGKILL mid-job has its job
queued again at once (its process is gone), never stuck "running", and the next worker runs
it to the end (a second kill fails it with the reason); a worker stopped with SIGTERM queues
its job again once; an idle worker holds no transaction (PostgreSQL). With
SUPERVISING_UI_TEST_DATABASE_URL set, the app and the worker use that database.
"""
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select

from supervising_ui import create_app
from supervising_ui.accounts.users import create_api_token, create_user
from supervising_ui.database import create_or_migrate
from supervising_ui.extensions import db
from supervising_ui.models import Image, Job, Label, Project, User

from ..conftest import (
    PASSWORD,
    TEST_DATABASE_URL,
    AuthActions,
    _reset_postgres,
    cheap_password_hashes,
)
from ..helpers import add_labels, make_stored_project

pytestmark = pytest.mark.slow
DEADLINE_SECONDS = 120  # a retrain from a cold cache on 2 busy cores took up to ~60 s


@pytest.fixture
def loop(tmp_path, monkeypatch):
    """An app on a SQLite file (or the test PostgreSQL) and the SQLite queue, with a project of
    32 images, 24 labeled."""
    instance = tmp_path / "instance"
    instance.mkdir()
    # A heartbeat that goes stale only after minutes: a killed worker's job must be reaped
    # because its process is gone, not because its heartbeat stopped.
    settings = "JOB_HEARTBEAT_SECONDS = 0.5\nJOB_STALE_SECONDS = 300\nSECRET_KEY = 'worker-test'\n"
    if TEST_DATABASE_URL:
        settings += f"DATABASE_URL = {TEST_DATABASE_URL!r}\n"
    (instance / "config.py").write_text(settings)
    for name in list(os.environ):
        if name.startswith("SUPERVISING_UI_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("SUPERVISING_UI_INSTANCE", str(instance))
    app = create_app({"TESTING": True})
    assert app.config["JOB_QUEUE"] == "sqlite"
    with app.app_context(), cheap_password_hashes():
        if TEST_DATABASE_URL:
            _reset_postgres()
        else:
            create_or_migrate()
        ids = {name: create_user(name, role=role, password=PASSWORD)[0].id
               for name, role in (("ada", "admin"), ("lee", "labeler"))}
        project_id = make_stored_project(app)
        db.session.get(Project, project_id).labels_per_image = 2  # lee may label all 32
        add_labels(project_id, ids["ada"], 24)
        token = create_api_token(db.session.get(User, ids["ada"]))
    worker = Worker(instance, tmp_path / "worker.log")
    yield app, project_id, token, worker
    worker.stop()
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


class Worker:
    """`supervising-ui worker` as a child process with the test's instance folder."""

    def __init__(self, instance: Path, log_path: Path):
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SUPERVISING_UI_")}
        self.env["SUPERVISING_UI_INSTANCE"] = str(instance)
        self.env["SUPERVISING_UI_RETRAIN_TOP_BLOCKS"] = "0"  # quick retrains: the head alone, faster
        self.log_path = log_path
        self.process = None

    def start(self) -> None:
        """Start the worker through the console command."""
        command = Path(sys.executable).with_name("supervising-ui")
        argv = [str(command), "worker"] if command.exists() else \
            [sys.executable, "-m", "supervising_ui.cli", "worker"]
        self.process = subprocess.Popen(argv, env=self.env, stdout=open(self.log_path, "ab"),
                                        stderr=subprocess.STDOUT)

    def kill(self) -> None:
        """SIGKILL: no chance to clean up, as when the machine loses power."""
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        """End the worker if it still runs."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        """What the worker printed."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class Labeler:
    """A labeler using the JSON API through the app's test client (no HTTP server needed)."""

    def __init__(self, app, name="lee"):
        self.client = app.test_client()
        self.auth = AuthActions(self.client)
        assert self.auth.login(name).status_code == 302
        self.app = app
        self.statuses = []  # of every request
        self.submits = []  # of label submits

    def next_image(self, project_id: int) -> dict | None:
        """GET the next image; None when nothing is left."""
        response = self.client.get(f"/api/projects/{project_id}/next")
        self.statuses.append(response.status_code)
        assert response.status_code in (200, 204), response.get_data(as_text=True)
        return response.json if response.status_code == 200 else None

    def label_next(self, project_id: int) -> dict | None:
        """Label the next image with its true class; return the image payload."""
        given = self.next_image(project_id)
        if given is None:
            return None
        with self.app.app_context():
            truth = db.session.get(Image, given["image_id"]).meta["truth"]
        response = self.client.post(f"/api/images/{given['image_id']}/labels",
                                    json={"label": truth, "request_id": str(uuid.uuid4()),
                                          "seconds_spent": 1.5},
                                    headers={"X-CSRFToken": self.auth.csrf_token})
        self.statuses.append(response.status_code)
        self.submits.append(response.status_code)
        assert response.status_code == 201, response.get_data(as_text=True)
        return given


def job_state(client, token: str, job_id: int) -> dict:
    """GET /api/jobs/<id> with the admin token."""
    response = client.get(f"/api/jobs/{job_id}", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    return response.json


def wait_for(predicate, timeout: float, worker: Worker, what: str, poll: float = 0.2):
    """Call predicate until it returns something truthy; fail with the worker log on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    pytest.fail(f"timed out waiting for {what}; worker log:\n{worker.log()[-3000:]}")


def test_real_worker_retrains_while_labelers_submit_and_survives_a_kill(loop):
    app, project_id, token, worker = loop
    admin = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    labeler = Labeler(app)
    worker.start()

    # "Retrain now" through the API; the labeler keeps labeling while the worker trains.
    started = time.monotonic()
    response = admin.post(f"/api/projects/{project_id}/retrain", headers=headers)
    assert response.status_code == 202
    job_id = response.json["job_id"]
    submitted = 0

    def retrained():
        nonlocal submitted
        if submitted < 20 and labeler.label_next(project_id) is not None:
            submitted += 1
        status = job_state(admin, token, job_id)
        assert status["state"] != "failed", f"{status['error']}\n{worker.log()[-3000:]}"
        return status if status["state"] == "done" else None

    status = wait_for(retrained, DEADLINE_SECONDS, worker, "the first retrain", poll=0.5)
    print(f"retrain done {time.monotonic() - started:.1f} s after the request "
          f"(worker start included); {submitted} labels submitted meanwhile")
    assert status["model_version"] == 1 and status["progress"] == 1.0
    assert submitted >= 1 and labeler.submits == [201] * submitted

    # The next image shows a suggestion from the new version: at once in the worker's own
    # process, within SETTINGS_CACHE_SECONDS in this one (labeling/snapshots.py).
    time.sleep(app.config["SETTINGS_CACHE_SECONDS"])
    given = labeler.next_image(project_id)
    assert given["suggestion"] is not None and given["suggestion"]["model_version"] == 1

    # Automatic retraining after N labels: N counts the labels since the last run began (those
    # submitted while it trained are new to the model), so set it 3 above that count: the
    # labeler's third submit from here queues the run.
    with app.app_context():
        began = db.session.get(Job, job_id).started_at
        since = db.session.scalar(select(func.count(Label.id)).where(
            Label.project_id == project_id, Label.created_at >= began))
        db.session.get(Project, project_id).retrain_every = since + 3
        db.session.commit()
    for count in range(3):
        with app.app_context():
            queued = db.session.scalar(select(Job).where(Job.id > job_id))
        assert queued is None, f"a retrain was queued after {count} of 3 labels"
        labeler.label_next(project_id)
    with app.app_context():
        auto = db.session.scalar(select(Job).where(Job.id > job_id).order_by(Job.id))
        assert auto is not None and auto.params.get("trigger") == "labels"
        auto_id = auto.id
    started = time.monotonic()
    wait_for(lambda: job_state(admin, token, auto_id)["state"] == "done", DEADLINE_SECONDS,
             worker, "the automatic retrain")
    print(f"automatic retrain done {time.monotonic() - started:.1f} s after it was queued")
    assert labeler.submits == [201] * (submitted + 3)

    # A worker killed in the middle of a fine-tune: the job is queued again at once (its
    # process is gone), never stuck running, and a new worker runs it to the end.
    response = admin.post(f"/api/projects/{project_id}/retrain", headers=headers,
                          json={"kind": "finetune", "epochs": 5, "tta_views": 1})
    assert response.status_code == 202
    doomed = response.json["job_id"]
    wait_for(lambda: "training" in job_state(admin, token, doomed)["message"], DEADLINE_SECONDS,
             worker, "the fine-tune to be under way")
    worker.kill()
    status = job_state(admin, token, doomed)  # the first read after the kill reaps it
    assert status["state"] == "queued" and status["message"] == "restarted after its worker stopped"
    assert admin.post(f"/api/projects/{project_id}/retrain", headers=headers).status_code == 409
    worker.start()

    def finished():
        status = job_state(admin, token, doomed)
        return status if status["state"] in ("done", "failed") else None
    status = wait_for(finished, DEADLINE_SECONDS, worker, "the restarted fine-tune")
    assert status["state"] == "done", status
    assert "restarted after its worker stopped" in status["message"]
    with app.app_context():
        assert db.session.get(Job, doomed).interruptions == 1


def test_a_retrain_whose_worker_is_killed_twice_fails_with_the_reason(loop):
    app, project_id, token, worker = loop
    admin = app.test_client()
    worker.start()
    response = admin.post(f"/api/projects/{project_id}/retrain",
                          headers={"Authorization": f"Bearer {token}"},
                          json={"kind": "finetune", "epochs": 500, "tta_views": 1})
    job_id = response.json["job_id"]
    for run in (1, 2):
        wait_for(lambda: "training" in job_state(admin, token, job_id)["message"],
                 DEADLINE_SECONDS, worker, f"run {run} to be training")
        worker.kill()
        status = job_state(admin, token, job_id)
        if run == 1:
            assert status["state"] == "queued", status
            worker.start()
    assert status["state"] == "failed", status
    assert status["error"] == ("the worker process stopped while running this job (killed or "
                               "crashed), after it had been restarted once; start it again")
    # Nothing blocks the next retrain.
    again = admin.post(f"/api/projects/{project_id}/retrain",
                       headers={"Authorization": f"Bearer {token}"})
    assert again.status_code == 202


def test_sigterm_queues_the_running_job_again_once_then_fails_it(loop):
    app, project_id, token, worker = loop
    admin = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    worker.start()
    response = admin.post(f"/api/projects/{project_id}/retrain", headers=headers,
                          json={"kind": "finetune", "epochs": 500, "tta_views": 1})
    assert response.status_code == 202
    job_id = response.json["job_id"]
    for run in (1, 2):
        wait_for(lambda: "training" in job_state(admin, token, job_id)["message"],
                 DEADLINE_SECONDS, worker, f"run {run} to be training")
        worker.process.send_signal(signal.SIGTERM)  # what serve's shutdown sends
        assert worker.process.wait(30) == 0, worker.log()[-3000:]
        status = job_state(admin, token, job_id)
        with app.app_context():
            interruptions = db.session.get(Job, job_id).interruptions
        if run == 1:
            assert status["state"] == "queued" and interruptions == 1, status
            assert "queued again" in status["message"]
            worker.start()  # the queued job runs again in the next worker
        else:
            assert status["state"] == "failed" and interruptions == 2, status
            assert status["error"] == "interrupted twice by a worker shutdown; start it again"
    models = Path(app.config["MODEL_STORE"]) / f"project-{project_id}"
    assert not models.exists() or not any(models.iterdir()), "no half-made model folder"


@pytest.mark.skipif(not TEST_DATABASE_URL, reason="pg_stat_activity is PostgreSQL's")
def test_an_idle_worker_holds_no_transaction(loop):
    """VACUUM can only remove dead rows that no open transaction might still see."""
    from sqlalchemy import create_engine, text
    app, project_id, token, worker = loop
    admin = app.test_client()
    worker.start()
    response = admin.post(f"/api/projects/{project_id}/retrain",
                          headers={"Authorization": f"Bearer {token}"})
    job_id = response.json["job_id"]
    wait_for(lambda: job_state(admin, token, job_id)["state"] == "done", DEADLINE_SECONDS,
             worker, "the retrain")
    observer = create_engine(TEST_DATABASE_URL)
    try:
        deadline = time.monotonic() + 4  # a few turns of the worker's idle loop (1 s each)
        seen = []
        while time.monotonic() < deadline:
            with observer.connect() as connection:
                seen += connection.execute(text(
                    "SELECT state, backend_xmin IS NOT NULL FROM pg_stat_activity "
                    "WHERE datname = current_database() "
                    "AND application_name = 'supervising-ui worker'")).all()
            time.sleep(0.5)
    finally:
        observer.dispose()
    assert seen, "the worker's connections are named in pg_stat_activity"
    assert [row for row in seen if row[0] != "idle" or row[1]] == [], seen
