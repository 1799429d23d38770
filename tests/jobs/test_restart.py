"""A job whose worker died runs again once where its kind can run twice; progress only grows."""
import subprocess
import sys

import pytest
from sqlalchemy import select

from supervising_ui.extensions import db
from supervising_ui.jobs import queue as jobs
from supervising_ui.jobs import status as job_status
from supervising_ui.jobs.runtime import ProgressReporter, host_identity
from supervising_ui.models import Job, utcnow
from supervising_ui.projects.service import create_project


@pytest.fixture
def project_id(app):
    with app.app_context():
        return create_project("mars", classes=["crater", "dune"]).id


def dead_pid() -> int:
    """The pid of a process that has ended (and been waited for)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait(30)
    return process.pid


def claimed_by_a_dead_worker(project_id: int, kind: str, interruptions: int = 0) -> int:
    """A running job whose worker process (on this host) is gone; return its id."""
    job = Job(kind=kind, project_id=project_id, state="running", started_at=utcnow(),
              heartbeat_at=utcnow(), worker_pid=dead_pid(), worker_host=host_identity(),
              interruptions=interruptions, progress=0.4, message="training")
    db.session.add(job)
    db.session.commit()
    return job.id


def test_the_kinds_that_can_run_twice_are_registered_so(app):
    assert {"retrain", "import", "classify"} <= jobs.RERUNNABLE_KINDS


@pytest.mark.parametrize("kind", ["retrain", "import", "classify"])
def test_a_dead_workers_job_is_queued_again_once(app, project_id, held_queue, kind):
    with app.app_context():
        job_id = claimed_by_a_dead_worker(project_id, kind)
        assert jobs.reap_stale_jobs() == 1
        job = db.session.get(Job, job_id)
        assert (job.state, job.interruptions, job.progress) == ("queued", 1, 0.0)
        assert job.message == jobs.RESTARTED_NOTE == "restarted after its worker stopped"
        assert job.worker_pid is None and job.error is None
        assert "worker gone: the worker process stopped" in job.log
        assert held_queue == [job_id], "sent to the queue again"
        assert job_status.job_status(job)["message"] == "restarted after its worker stopped"


def test_a_second_death_fails_the_job_with_the_reason(app, project_id, held_queue):
    with app.app_context():
        job_id = claimed_by_a_dead_worker(project_id, "retrain", interruptions=1)
        assert jobs.reap_stale_jobs() == 1
        job = db.session.get(Job, job_id)
        assert job.state == "failed" and held_queue == []
        assert job.error == ("the worker process stopped while running this job (killed or "
                             "crashed), after it had been restarted once; start it again")


def test_a_kind_that_cannot_run_twice_fails_at_the_first_death(app, project_id, held_queue,
                                                              monkeypatch):
    monkeypatch.setitem(jobs.HANDLERS, "report", lambda job, reporter: {})
    with app.app_context():
        job_id = claimed_by_a_dead_worker(project_id, "report")
        assert jobs.reap_stale_jobs() == 1
        job = db.session.get(Job, job_id)
        assert job.state == "failed" and held_queue == []
        assert job.error == ("the worker process stopped while running this job (killed or "
                             "crashed); start it again")


def test_the_second_run_says_it_was_restarted_and_discards_the_first_runs_leftovers(
        app, project_id, held_queue, monkeypatch):
    seen, discarded = [], []

    def handler(job, reporter):
        reporter.progress(0.5, "training")
        with db.engine.connect() as connection:  # what a page polling the job reads now
            seen.append(connection.scalar(select(Job.message).where(Job.id == job.id)))
        return {}

    monkeypatch.setitem(jobs.HANDLERS, "retrain", handler)
    monkeypatch.setitem(jobs.DISCARDS, "retrain", lambda job: discarded.append(job.id))
    with app.app_context():
        job_id = claimed_by_a_dead_worker(project_id, "retrain")
        jobs.reap_stale_jobs()
        assert discarded == [job_id], "the reaper discards what the dead run left"
        jobs.run_job(job_id)  # the worker takes it from the queue
        job = db.session.get(Job, job_id)
        assert job.state == "done"
        assert seen == ["training (restarted after its worker stopped)"]
        assert discarded == [job_id, job_id], "and the second run, before it starts"


def test_a_queue_that_is_down_fails_the_job_instead_of_stranding_it(app, project_id,
                                                                     monkeypatch):
    def broken(job_id):
        raise ConnectionError("the queue is down")

    monkeypatch.setitem(app.extensions, "execute_job", broken)
    with app.app_context():
        job_id = claimed_by_a_dead_worker(project_id, "classify")
        jobs.reap_stale_jobs()
        job = db.session.get(Job, job_id)
        assert job.state == "failed"
        assert job.error == "could not queue the job again: the queue is down"


def test_the_worker_reaps_every_minute(app):
    from supervising_ui.jobs import minutely
    assert jobs.reap_stale_jobs in minutely.CHECKS


# --------------------------------------------------------------------------- progress


def test_progress_never_goes_back(app, project_id):
    with app.app_context():
        job = Job(kind="retrain", project_id=project_id, state="running")
        db.session.add(job)
        db.session.commit()
        reporter = ProgressReporter(job.id, heartbeat_seconds=60)
        recorded = []
        for fraction in (0.2, 0.55, 0.04, 0.3, 0.6, 1.5):
            reporter.progress(fraction, f"at {fraction}")
            db.session.expire_all()
            recorded.append(db.session.get(Job, job.id).progress)
            db.session.commit()
        assert recorded == [0.2, 0.55, 0.55, 0.55, 0.6, 1.0]
        assert db.session.get(Job, job.id).message == "at 1.5", "the message still changes"


def test_a_retrains_passes_share_its_range_in_turn():
    """fit counts each pass from 0: embedding the training images, fitting, the held-out ones."""
    from supervising_ui.learning.retrain import _stage_progress

    class Recorder:
        def __init__(self):
            self.fractions = []

        def progress(self, fraction, message=""):
            self.fractions.append(fraction)

    reporter = Recorder()
    report = _stage_progress(reporter, 0.02, 0.55, "training", passes=3, every_seconds=0)
    for stage, total in (("embed", 40), ("fit", 5), ("embed", 10)):
        for done in range(1, total + 1):
            report(stage, done, total)
    fractions = reporter.fractions
    assert fractions == sorted(fractions), "never backwards"
    assert fractions[0] > 0.02 and fractions[-1] == pytest.approx(0.55)
    assert fractions[39] == pytest.approx(0.02 + 0.53 / 3), "the first pass ends a third in"
    reporter.fractions = []
    more = _stage_progress(reporter, 0.0, 1.0, "training", passes=3, every_seconds=0)
    for stage, total in (("fit", 2), ("embed", 2), ("evaluate", 1), ("extra", 1)):
        for done in range(1, total + 1):
            more(stage, done, total)
    assert reporter.fractions == pytest.approx([1 / 6, 1 / 3, 1 / 2, 2 / 3, 1.0, 1.0])
