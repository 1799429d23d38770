"""The job machinery: states, errors, one retrain per project, heartbeats and reaping."""
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from supervising_ui import jobs
from supervising_ui.extensions import db
from supervising_ui.models import Job, Project, utcnow
from supervising_ui.projects import create_project


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
        status = jobs.job_status(job)
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
        dead = Job(kind="retrain", project_id=project_id, state="running", heartbeat_at=old)
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


def test_one_status_endpoint_gives_the_result_to_all_and_the_log_to_admins(
        app, client, auth, project_id, fake_handlers):
    with app.app_context():
        job_id = jobs.submit("retrain", project_id).id
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
        status = jobs.follow_job(job.id, lines.append, poll_seconds=0.1)
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
        status = jobs.job_status(job)
        assert status["model_version"] == 3 and status["model_version_id"] == version.id
        assert db.session.get(Project, project_id) is not None
