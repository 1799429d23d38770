"""The job machinery: states, errors, one retrain per project, heartbeats and reaping."""
import os
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from supervising_ui.extensions import db
from supervising_ui.jobs import queue as jobs
from supervising_ui.jobs import status as job_status
from supervising_ui.jobs.runtime import host_identity
from supervising_ui.models import Job, ModelVersion, Prediction, Project, utcnow
from supervising_ui.projects.service import create_project


@pytest.fixture
def project_id(app):
    with app.app_context():
        return create_project("mars", classes=["crater", "dune"]).id


@pytest.fixture
def fake_handlers(monkeypatch):
    """Replace the job handlers with small ones that record what they saw."""
    seen = {}

    def succeed(job, reporter):
        seen["state_inside"] = db.session.get(Job, job.id).state
        reporter.progress(0.5, "half way")
        reporter.log("a line of log")
        return {"answer": 42}

    def crash(job, reporter):
        reporter.log("about to fail")
        raise RuntimeError("the disk is full")

    monkeypatch.setitem(jobs.HANDLERS, "retrain", succeed)
    monkeypatch.setitem(jobs.HANDLERS, "crash", crash)
    return seen


def test_job_runs_from_queued_to_done(app, project_id, fake_handlers):
    with app.app_context():
        job = jobs.submit("retrain", project_id, {"kind": "quick"})
        assert fake_handlers["state_inside"] == "running"
        assert job.state == "done" and job.progress == 1.0
        assert job.result == {"answer": 42}
        assert "a line of log" in job.log and job.message == "half way"
        assert job.started_at <= job.finished_at
        status = job_status.job_status(job)
        assert status["state"] == "done" and status["job_id"] == job.id


def test_queued_job_stays_queued_without_worker(app, project_id, fake_handlers, held_queue):
    with app.app_context():
        job = jobs.submit("retrain", project_id)
        assert job.state == "queued" and held_queue == [job.id]
        jobs.run_job(job.id)  # what the worker does
        db.session.refresh(job)
        assert job.state == "done"


def test_failed_job_records_error_and_server_keeps_serving(app, client, auth, project_id,
                                                           fake_handlers):
    with app.app_context():
        job = jobs.submit("crash", project_id)
        assert job.state == "failed"
        assert job.error == "RuntimeError: the disk is full"
        assert "about to fail" in job.log and "Traceback" in job.log
    auth.login("ada")
    assert client.get("/").status_code == 200


def test_unknown_kind_is_refused(app):
    with app.app_context(), pytest.raises(ValueError, match="no handler"):
        jobs.submit("nothing")


def test_one_retrain_per_project_at_a_time(app, project_id, fake_handlers, held_queue):
    with app.app_context():
        first = jobs.submit("retrain", project_id)
        with pytest.raises(jobs.JobBusy) as busy:
            jobs.submit("retrain", project_id)
        assert busy.value.job.id == first.id
        other = create_project("other", classes=["a", "b"])
        assert jobs.submit("retrain", other.id).state == "queued"  # other projects are free
        assert jobs.submit("crash", project_id).state == "queued"  # other kinds are not exclusive
        db.session.get(Job, first.id).state = "done"
        db.session.commit()
        assert jobs.submit("retrain", project_id).id != first.id


def test_concurrent_submits_queue_one_retrain(app, project_id, fake_handlers, held_queue):
    outcomes = []
    barrier = threading.Barrier(4)

    def submit():
        with app.app_context():
            barrier.wait()
            try:
                outcomes.append(jobs.submit("retrain", project_id).id)
            except jobs.JobBusy as busy:
                outcomes.append(f"busy {busy.job.id}")
            finally:
                db.session.remove()

    threads = [threading.Thread(target=submit) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
        assert not thread.is_alive(), "a submit hung"
    with app.app_context():
        assert db.session.scalar(select(func.count(Job.id))) == 1
    created = [outcome for outcome in outcomes if isinstance(outcome, int)]
    assert len(created) == 1 and outcomes.count(f"busy {created[0]}") == 3


def test_claim_waits_while_a_sibling_runs(app, project_id, fake_handlers, held_queue, monkeypatch):
    with app.app_context():
        running = Job(kind="retrain", project_id=project_id, state="running", heartbeat_at=utcnow())
        waiting = Job(kind="retrain", project_id=project_id)
        db.session.add_all([running, waiting])
        db.session.commit()
        scheduled = []
        monkeypatch.setitem(app.extensions, "execute_job", _Recorder(scheduled))
        jobs.run_job(waiting.id)
        db.session.refresh(waiting)
        assert waiting.state == "queued"
        assert scheduled == [((waiting.id,), jobs.RETRY_DELAY_SECONDS)]


class _Recorder:
    """Stands for the Huey task: records schedule() calls."""

    def __init__(self, calls):
        self.calls = calls

    def schedule(self, args, delay):
        self.calls.append((args, delay))


def test_stale_running_job_is_reaped_fresh_one_is_not(app, client, auth, project_id):
    with app.app_context():
        old = utcnow() - timedelta(seconds=app.config["JOB_STALE_SECONDS"] + 5)
        dead = Job(kind="other", project_id=project_id, state="running", heartbeat_at=old)
        alive = Job(kind="crash", project_id=project_id, state="running", heartbeat_at=utcnow())
        db.session.add_all([dead, alive])
        db.session.commit()
        dead_id, alive_id = dead.id, alive.id
    auth.login("ada")
    response = client.get(f"/api/jobs/{dead_id}")  # reading a job reaps stale ones first
    assert response.json["state"] == "failed"
    assert "worker stopped" in response.json["error"]
    assert client.get(f"/api/jobs/{alive_id}").json["state"] == "running"
    with app.app_context():
        assert jobs.reap_stale_jobs() == 0


def test_one_status_endpoint_gives_the_result_to_its_starter_and_the_log_to_admins(
        app, client, auth, users, project_id, fake_handlers):
    with app.app_context():
        job_id = jobs.submit("retrain", project_id, created_by_id=users["lee"]).id
    auth.login("lee")
    seen_by_labeler = client.get(f"/api/jobs/{job_id}").json
    assert seen_by_labeler["state"] == "done" and seen_by_labeler["result"] == {"answer": 42}
    assert "log" not in seen_by_labeler
    auth.logout()
    auth.login("ada")
    seen_by_admin = client.get(f"/api/jobs/{job_id}").json
    assert "a line of log" in seen_by_admin["log"] and seen_by_admin["result"] == {"answer": 42}
    missing = client.get("/api/jobs/999")
    assert missing.status_code == 404 and missing.json["error"] == "no job with id 999"


def test_heartbeat_keeps_a_long_job_alive(app, project_id, monkeypatch):
    app.config["JOB_HEARTBEAT_SECONDS"] = 0.2
    beats = []

    def slow(job, reporter):
        first = db.session.get(Job, job.id).heartbeat_at
        time.sleep(1.0)
        db.session.expire_all()
        beats.append((first, db.session.get(Job, job.id).heartbeat_at))
        return {}

    monkeypatch.setitem(jobs.HANDLERS, "retrain", slow)
    with app.app_context():
        assert jobs.submit("retrain", project_id).state == "done"
    first, later = beats[0]
    assert later > first


def test_queue_failure_leaves_no_blocking_job(app, project_id, fake_handlers, monkeypatch):
    def broken(job_id):
        raise ConnectionError("redis is down")

    monkeypatch.setitem(app.extensions, "execute_job", broken)
    with app.app_context():
        with pytest.raises(ConnectionError):
            jobs.submit("retrain", project_id)
        job = db.session.scalar(select(Job))
        assert job.state == "failed" and "redis is down" in job.error


def test_follow_job_echoes_progress_until_done(app, project_id, fake_handlers, held_queue):
    with app.app_context():
        job = jobs.submit("retrain", project_id)
        lines = []
        worker = threading.Timer(0.3, _run_in_context, (app, job.id))
        worker.start()
        status = job_status.follow_job(job.id, lines.append, poll_seconds=0.1)
        worker.join(30)
        assert not worker.is_alive(), "the worker thread hung"
        assert status["state"] == "done"
        assert lines[0].split()[0] == "queued" and lines[-1].split()[:2] == ["done", "100.0%"]


def _run_in_context(app, job_id):
    with app.app_context():
        jobs.run_job(job_id)
        db.session.remove()


def test_job_status_names_the_model_version(app, project_id):
    from supervising_ui.models import ModelVersion
    with app.app_context():
        version = ModelVersion(project_id=project_id, version=3, kind="quick", path="/nowhere")
        db.session.add(version)
        db.session.flush()
        job = Job(kind="retrain", project_id=project_id, state="done", model_version_id=version.id)
        db.session.add(job)
        db.session.commit()
        status = job_status.job_status(job)
        assert status["model_version"] == 3 and status["model_version_id"] == version.id
        assert db.session.get(Project, project_id) is not None


# --------------------------------------------------------------------------- who sees a job


def test_a_job_is_readable_only_by_admins_and_its_starter(app, client, auth, users, project_id,
                                                          fake_handlers):
    with app.app_context():
        job_id = jobs.submit("crash", project_id, created_by_id=users["lee"]).id
        anonymous = jobs.submit("crash", project_id).id
    auth.login("liu")
    response = client.get(f"/api/jobs/{job_id}")
    assert response.status_code == 404 and response.json == {"error": f"no job with id {job_id}"}
    assert client.get(f"/api/jobs/{anonymous}").status_code == 404
    auth.logout()
    auth.login("lee")
    assert client.get(f"/api/jobs/{job_id}").json["state"] == "failed"
    assert client.get(f"/api/jobs/{anonymous}").status_code == 404
    auth.logout()
    auth.login("ada")
    assert client.get(f"/api/jobs/{anonymous}").json["state"] == "failed"


def test_error_text_shows_server_paths_to_admins_only(app, client, auth, users, project_id,
                                                      monkeypatch):
    def missing_file(job, reporter):
        reporter.progress(0.5, "reading /srv/lab/instance/images/ab/cd/abcd.png")
        raise FileNotFoundError(2, "No such file or directory", "/srv/lab/instance/models/v0001")

    monkeypatch.setitem(jobs.HANDLERS, "retrain", missing_file)
    with app.app_context():
        job_id = jobs.submit("retrain", project_id, created_by_id=users["lee"]).id
    auth.login("lee")
    seen = client.get(f"/api/jobs/{job_id}").json
    assert seen["error"] == "FileNotFoundError: [Errno 2] No such file or directory: '…/v0001'"
    assert seen["message"] == "reading …/abcd.png"
    auth.logout()
    auth.login("ada")
    assert "/srv/lab/instance/models/v0001" in client.get(f"/api/jobs/{job_id}").json["error"]


@pytest.mark.parametrize("text, shown", [
    ("OSError: [Errno 28] No space left on device: '/var/lib/app/x.db'",
     "OSError: [Errno 28] No space left on device: '…/x.db'"),
    ("cannot read C:\\data\\instance\\db.sqlite3 now", "cannot read …/db.sqlite3 now"),
    ("see https://example.org/a/b and a/b/c.png", "see https://example.org/a/b and a/b/c.png"),
    ("need 10 labels (have 6/10)", "need 10 labels (have 6/10)"),
    (None, None),
])
def test_without_paths_cuts_absolute_paths_only(text, shown):
    assert job_status.without_paths(text) == shown


# --------------------------------------------------------------------------- dead workers


def ended_process_id() -> int:
    """The pid of a process that has ended (and been waited for)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait(30)
    return process.pid


def running_job(project_id, kind="retrain", pid=None, host=None, heartbeat=None) -> int:
    """Insert a job row as a worker with this pid on this host would have claimed it."""
    job = Job(kind=kind, project_id=project_id, state="running", started_at=utcnow(),
              heartbeat_at=heartbeat or utcnow(), worker_pid=pid,
              worker_host=host_identity() if host is None else host)
    db.session.add(job)
    db.session.commit()
    return job.id


def test_a_job_whose_worker_process_ended_is_reaped_at_once(app, project_id):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        wait_for_zombie(zombie.pid)
        with app.app_context():
            dead = running_job(project_id, "other", pid=ended_process_id())
            undead = running_job(project_id, "other", pid=zombie.pid)
            alive = running_job(project_id, "crash", pid=sleeper.pid)
            elsewhere = running_job(project_id, "other", pid=ended_process_id(), host="another-host")
            assert jobs.reap_stale_jobs() == 2  # the heartbeats are all fresh
            states = {job.id: (job.state, job.error) for job in db.session.scalars(select(Job))}
        assert states[dead][0] == states[undead][0] == "failed"
        assert "worker process stopped" in states[dead][1]
        assert states[alive][0] == states[elsewhere][0] == "running"
    finally:
        sleeper.kill()
        sleeper.wait(10)
        zombie.wait(10)


def wait_for_zombie(pid: int) -> None:
    """Wait until child pid has exited but is not yet waited for."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return
        time.sleep(0.05)
    pytest.fail("the child did not exit")


def test_a_job_claimed_by_an_earlier_process_with_this_pid_is_reaped(app, project_id):
    """A restarted worker can get its predecessor's pid (in a container): the job is not its own."""
    with app.app_context():
        job_id = running_job(project_id, "other", pid=os.getpid())
        assert jobs.reap_stale_jobs() == 1
        assert "restarted" in db.session.get(Job, job_id).error


def test_submit_reaps_a_dead_workers_retrain_instead_of_answering_busy(app, project_id,
                                                                       fake_handlers, held_queue):
    """Its second death: the retrain fails and the new one is queued."""
    with app.app_context():
        dead = running_job(project_id, pid=ended_process_id())
        db.session.get(Job, dead).interruptions = 1  # it was restarted once already
        db.session.commit()
        job = jobs.submit("retrain", project_id)
        assert job.state == "queued" and job.id != dead
        assert db.session.get(Job, dead).state == "failed"


def test_submit_finds_a_dead_workers_retrain_queued_again(app, project_id, fake_handlers,
                                                          held_queue):
    """Its first death: the retrain is queued again, so a new request is answered busy."""
    with app.app_context():
        dead = running_job(project_id, pid=ended_process_id())
        with pytest.raises(jobs.JobBusy) as busy:
            jobs.submit("retrain", project_id)
        assert busy.value.job.id == dead and busy.value.job.state == "queued"
        assert held_queue == [dead]


def test_a_claimed_job_records_its_worker(app, project_id, monkeypatch):
    seen = {}

    def look(job, reporter):
        row = db.session.get(Job, job.id)
        seen.update(pid=row.worker_pid, host=row.worker_host)
        return {}

    monkeypatch.setitem(jobs.HANDLERS, "retrain", look)
    with app.app_context():
        jobs.submit("retrain", project_id)
    assert seen == {"pid": os.getpid(), "host": host_identity()}


# --------------------------------------------------------------------------- shutdown (SIGTERM)


@pytest.fixture
def shutdown():
    """jobs.SHUTDOWN, cleared again after the test."""
    yield jobs.SHUTDOWN
    jobs.SHUTDOWN.clear()


def test_a_job_cut_off_by_shutdown_is_queued_again_once_then_failed(
        app, project_id, monkeypatch, held_queue, shutdown):
    discarded = []

    def long_job(job, reporter):
        reporter.progress(0.1, "working")
        shutdown.set()  # SIGTERM reached the worker
        reporter.progress(0.2, "still working")
        raise AssertionError("progress() must raise JobInterrupted during a shutdown")

    monkeypatch.setitem(jobs.HANDLERS, "retrain", long_job)
    monkeypatch.setitem(jobs.DISCARDS, "retrain", lambda job: discarded.append(job.id))
    with app.app_context():
        job = jobs.submit("retrain", project_id)
        jobs.run_job(job.id)
        db.session.refresh(job)
        assert (job.state, job.interruptions) == ("queued", 1)
        assert "queued again" in job.message and job.worker_pid is None
        assert held_queue == [job.id, job.id], "sent to the queue again"
        assert discarded == [job.id]
        shutdown.clear()  # the worker restarted; it is stopped again during the second run
        jobs.run_job(job.id)
        db.session.refresh(job)
        assert (job.state, job.interruptions) == ("failed", 2)
        assert job.error == "interrupted twice by a worker shutdown; start it again"
        assert held_queue == [job.id, job.id]
        assert discarded == [job.id, job.id, job.id], "before the second run and after it"


def test_a_job_that_ignores_shutdown_is_queued_again_after_the_grace_time(
        app, project_id, monkeypatch, held_queue, shutdown):
    started, release = threading.Event(), threading.Event()

    def deaf_job(job, reporter):
        started.set()
        release.wait(30)  # never reports progress
        return {}

    monkeypatch.setitem(jobs.HANDLERS, "retrain", deaf_job)
    with app.app_context():
        job_id = jobs.submit("retrain", project_id).id
    worker = threading.Thread(target=_run_in_context, args=(app, job_id))
    worker.start()
    try:
        assert started.wait(30)
        with app.app_context():
            before = time.monotonic()
            jobs._stop_running_job(grace_seconds=0.3)
            assert time.monotonic() - before < 5
            job = db.session.get(Job, job_id)
            assert (job.state, job.interruptions) == ("queued", 1)
    finally:
        release.set()
        worker.join(30)
    with app.app_context():
        assert db.session.get(Job, job_id).state == "queued", "the late finish changes nothing"


# --------------------------------------------------------------------------- half-made versions


def test_a_retrain_failing_while_storing_predictions_leaves_no_version(
        app, users, monkeypatch, embedding_cache):
    """2000 of 3245 predictions, in small: the version, its predictions and folder all go."""
    from supervising_ui.learning import predictions, triggers

    from ..helpers import add_labels, make_stored_project
    app.config["CACHE_DIR"] = embedding_cache
    real_write = predictions.write_in_batches
    writes = []

    def write_then_fail(model, rows, batch_size=None):
        if writes:
            raise OSError(28, "No space left on device")
        writes.append(len(rows))
        return real_write(model, rows, batch_size)

    monkeypatch.setattr(predictions, "PREDICT_CHUNK", 10)
    monkeypatch.setattr(predictions, "write_in_batches", write_then_fail)
    with app.app_context():
        project_id = make_stored_project(app)
        add_labels(project_id, users["lee"], 24)
        job = triggers.request_retrain(db.session.get(Project, project_id))
        assert job.state == "failed" and "No space left on device" in job.error
        assert writes == [10], "some predictions were stored before the failure"
        assert job.model_version_id is None
        assert db.session.scalar(select(func.count(ModelVersion.id))) == 0
        assert db.session.scalar(select(func.count(Prediction.id))) == 0
    project_folder = Path(app.config["MODEL_STORE"]) / f"project-{project_id}"
    assert not project_folder.exists() or not any(project_folder.iterdir())


def test_a_reaped_retrain_leaves_no_version(app, project_id, tmp_path, held_queue):
    """A worker killed while storing predictions: the reaper discards what it left."""
    folder = tmp_path / "models" / "v0001-quick"
    folder.mkdir(parents=True)
    (folder / "model.pt").write_bytes(b"half")
    with app.app_context():
        version = ModelVersion(project_id=project_id, version=1, kind="quick", path=str(folder))
        db.session.add(version)
        db.session.flush()
        job_id = running_job(project_id, pid=ended_process_id())
        db.session.get(Job, job_id).model_version_id = version.id
        db.session.commit()
        assert jobs.reap_stale_jobs() == 1
        assert db.session.scalar(select(func.count(ModelVersion.id))) == 0
        assert db.session.get(Job, job_id).model_version_id is None
    assert not folder.exists()


def test_a_failed_retrain_keeps_a_version_that_already_serves(app, project_id, tmp_path):
    from supervising_ui.learning.retrain import discard_unfinished
    with app.app_context():
        version = ModelVersion(project_id=project_id, version=1, kind="quick",
                               path=str(tmp_path), is_serving=True)
        db.session.add(version)
        db.session.flush()
        job = Job(kind="retrain", project_id=project_id, state="failed",
                  model_version_id=version.id)
        db.session.add(job)
        db.session.commit()
        discard_unfinished(job)
        assert db.session.get(ModelVersion, version.id) is not None
    assert tmp_path.exists()
