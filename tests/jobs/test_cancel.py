"""Admins cancel jobs: a queued one never starts, a running one stops at its next progress
report and its half-made work is discarded; labelers may not; a finished job is refused."""
import threading

import pytest

from supervising_ui.extensions import db
from supervising_ui.jobs import queue as jobs
from supervising_ui.jobs.cancel import cancel_job
from supervising_ui.models import Job, User
from supervising_ui.projects.service import create_project


@pytest.fixture
def project_id(app):
    with app.app_context():
        return create_project("HiRISE", preset="hirise").id


def test_a_queued_job_is_cancelled_through_the_api_and_never_runs(app, client, auth, project_id,
                                                                 held_queue, monkeypatch):
    ran = []
    monkeypatch.setitem(jobs.HANDLERS, "retrain", lambda job, reporter: ran.append(job.id))
    with app.app_context():
        job_id = jobs.submit("retrain", project_id).id
    auth.login("lee")
    assert client.post(f"/api/jobs/{job_id}/cancel",
                       headers={"X-CSRFToken": auth.csrf_token}).status_code == 403
    auth.logout()
    auth.login("ada")
    answer = client.post(f"/api/jobs/{job_id}/cancel", headers={"X-CSRFToken": auth.csrf_token})
    assert answer.status_code == 200 and answer.get_json()["state"] == "failed"
    assert answer.get_json()["error"] == "cancelled by an admin before it started"
    with app.app_context():
        jobs.run_job(job_id)  # the queue delivers it after all: it does not start
        assert ran == [] and db.session.get(Job, job_id).state == "failed"
    again = client.post(f"/api/jobs/{job_id}/cancel", headers={"X-CSRFToken": auth.csrf_token})
    assert again.status_code == 409 and "failed already" in again.get_json()["error"]
    assert client.post("/api/jobs/999/cancel",
                       headers={"X-CSRFToken": auth.csrf_token}).status_code == 404


def test_a_running_job_stops_at_its_next_progress_report_and_is_discarded(
        app, users, project_id, held_queue, monkeypatch):
    started, cancelled, discarded = threading.Event(), threading.Event(), []

    def long_job(job, reporter):
        reporter.progress(0.1, "working")
        started.set()
        cancelled.wait(30)
        reporter.progress(0.2, "still working")
        raise AssertionError("progress() must raise JobCancelled once the job is cancelled")

    monkeypatch.setitem(jobs.HANDLERS, "retrain", long_job)
    monkeypatch.setitem(jobs.DISCARDS, "retrain", lambda job: discarded.append(job.id))
    with app.app_context():
        job_id = jobs.submit("retrain", project_id).id

    def work():
        with app.app_context():
            jobs.run_job(job_id)
    worker = threading.Thread(target=work)
    worker.start()
    assert started.wait(30)
    with app.app_context():
        job = cancel_job(job_id, db.session.get(User, users["ada"]))
        assert job.state == "running" and job.message.startswith("cancelling")
    cancelled.set()
    worker.join(30)
    with app.app_context():
        job = db.session.get(Job, job_id)
        assert (job.state, job.error, job.cancelled_by_id) == (
            "failed", "cancelled by an admin", users["ada"])
    assert discarded == [job_id]
