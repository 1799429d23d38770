"""Imports leave no files behind: a full disk or an interruption removes the unsaved batch's
files, and the worker's sweep removes managed files no row names once they are old enough."""
import errno
import os
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select

from supervising_ui import storage
from supervising_ui.extensions import db
from supervising_ui.importing import orphans, runner, sources
from supervising_ui.jobs import minutely
from supervising_ui.jobs import queue as jobs
from supervising_ui.models import Image
from supervising_ui.projects import service as projects

from ..helpers import image_bytes, write_images


@pytest.fixture
def project(app):
    with app.app_context():
        yield projects.create_project("mars", classes=["crater", "dune"])


def stored_keys(app) -> set[str]:
    """Storage keys of the files in managed storage."""
    store = Path(app.config["IMAGE_STORE"])
    return {str(path.relative_to(store)) for path in store.rglob("*") if path.is_file()}


def row_keys() -> set[str]:
    return set(db.session.scalars(select(Image.storage_key)))


@pytest.fixture
def disk_full_after(monkeypatch):
    """disk_full_after(n): the storage write raises ENOSPC from the (n+1)th file on."""
    real_write = storage.write_atomically
    written = []

    def arm(files: int):
        def write(path, data):
            if len(written) >= files:
                raise OSError(errno.ENOSPC, "No space left on device", str(path))
            written.append(path)
            real_write(path, data)
        monkeypatch.setattr(storage, "write_atomically", write)
        return written
    return arm


def test_a_full_disk_stops_the_import_and_removes_its_unsaved_files(
        app, project, users, tmp_path, monkeypatch, disk_full_after):
    monkeypatch.setattr(runner, "BATCH_SIZE", 4)
    write_images(tmp_path / "images", 10)
    plan = sources.plan_folder(tmp_path / "images")
    disk_full_after(6)  # one batch of 4 committed, 2 files of the next one stored
    report = runner.run_import(project, plan, user_id=users["ada"])
    assert report.added == 4
    assert report.stopped == ("the server's disk is full: the import stopped after 6 of 10 "
                              "files and removed the 2 files it had stored for its unsaved last "
                              "batch; free some space and import again (only what is missing "
                              "is added)")
    assert "stopped: the server's disk is full" in report.summary()
    assert report.as_dict()["stopped"] == report.stopped
    assert stored_keys(app) == row_keys() and len(row_keys()) == 4, "no file without its row"
    monkeypatch.undo()  # space was freed
    again = runner.run_import(project, sources.plan_folder(tmp_path / "images"))
    assert (again.added, len(again.duplicates), again.stopped) == (6, 4, None)
    assert stored_keys(app) == row_keys() and len(row_keys()) == 10


def test_an_interrupted_import_removes_its_unsaved_files(app, project, tmp_path, monkeypatch):
    """SIGTERM reaches a job at a progress report: the batch under way goes, files and all."""
    monkeypatch.setattr(runner, "BATCH_SIZE", 4)
    write_images(tmp_path / "images", 7)
    plan = sources.plan_folder(tmp_path / "images")

    def stop_at_the_sixth(done, total):
        if done == 6:
            raise jobs.JobInterrupted("the worker is shutting down")
    with pytest.raises(jobs.JobInterrupted):
        runner.run_import(project, plan, progress=stop_at_the_sixth)
    assert len(row_keys()) == 4 and stored_keys(app) == row_keys()


def test_a_file_another_import_stored_meanwhile_is_kept(app, project, tmp_path,
                                                       disk_full_after):
    """The same bytes committed by an import into another project: that file stays."""
    write_images(tmp_path / "images", 3)
    plan = sources.plan_folder(tmp_path / "images")
    other_id = projects.create_project("other", classes=["crater"]).id
    db.session.commit()  # the other import's connection must be able to write
    shared = storage.validate_image(image_bytes(0), app.config["MAX_IMAGE_PIXELS"])
    real_read = plan.candidates[1].read

    def read_while_another_import_commits():
        with db.engine.begin() as connection:  # the other importer, in its own transaction
            connection.execute(Image.__table__.insert().values(
                project_id=other_id, storage_key=shared.storage_key, original_name="same.jpg",
                content_hash=shared.content_hash, width=shared.width, height=shared.height,
                metadata={}, random_key=0.5, label_count=0))
        return real_read()
    plan.candidates[1].read = read_while_another_import_commits
    disk_full_after(2)  # the third file finds the disk full
    report = runner.run_import(project, plan)
    assert report.added == 0 and "removed the 1 file it had stored" in report.stopped
    assert stored_keys(app) == {shared.storage_key} == row_keys()


def test_a_browser_import_on_a_full_disk_fails_with_its_report(
        app, project, users, monkeypatch, disk_full_after, client, auth):
    monkeypatch.setattr(runner, "BATCH_SIZE", 3)
    write_images(Path(app.config["IMPORT_ROOT"]) / "batch", 5)
    disk_full_after(4)
    job = jobs.submit("import", project.id, {"source": "server", "folder": "batch"},
                      users["ada"])
    assert job.state == "failed"
    assert job.error.startswith("the server's disk is full: the import stopped after 4 of 5 files")
    assert job.result["report"]["added"] == 3 and job.result["report"]["stopped"] == job.error
    assert stored_keys(app) == row_keys()
    # Labeling goes on: the images that were added can be labeled at once.
    monkeypatch.undo()
    project_id = project.id
    auth.login("lee")
    given = client.get(f"/api/projects/{project_id}/next")
    assert given.status_code == 200
    answer = client.post(f"/api/images/{given.json['image_id']}/labels",
                         json={"label": "crater", "request_id": str(uuid.uuid4())},
                         headers={"X-CSRFToken": auth.csrf_token})
    assert answer.status_code == 201, answer.get_data(as_text=True)


def test_the_console_import_says_it_stopped_and_exits_with_status_1(
        app, project, users, tmp_path, monkeypatch, disk_full_after):
    monkeypatch.setattr(runner, "BATCH_SIZE", 2)
    write_images(tmp_path / "images", 4)
    disk_full_after(3)
    result = app.test_cli_runner().invoke(args=["import", "mars", "--dir", str(tmp_path / "images")])
    assert result.exit_code == 1
    assert "stopped: the server's disk is full: the import stopped after 3 of 4 files" in \
        result.output


# --------------------------------------------------------------------------- the sweep


def age(path: Path, seconds: float) -> None:
    """Make a file look written seconds ago."""
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_the_sweep_removes_old_files_no_row_names_and_keeps_the_rest(app, project, tmp_path):
    store = app.config["IMAGE_STORE"]
    grace = app.config["ORPHAN_FILE_GRACE_SECONDS"]
    write_images(tmp_path / "images", 2)
    runner.run_import(project, sources.plan_folder(tmp_path / "images"))
    kept = [storage.path_for_key(store, key) for key in row_keys()]
    old_orphan = storage.store_bytes(store, storage.validate_image(
        image_bytes(50), app.config["MAX_IMAGE_PIXELS"]).storage_key, image_bytes(50))
    new_orphan = storage.store_bytes(store, storage.validate_image(
        image_bytes(51), app.config["MAX_IMAGE_PIXELS"]).storage_key, image_bytes(51))
    half_written = old_orphan.parent / f"{orphans.TEMPORARY_PREFIX}abc123"
    half_written.write_bytes(b"half")
    stranger = Path(store) / "README.txt"  # not laid out as a key: not the sweep's
    stranger.write_text("hello")
    for path in kept + [old_orphan, half_written, stranger]:
        age(path, grace + 60)
    assert orphans.sweep_orphan_files(force=True) == 2
    assert not old_orphan.exists() and not half_written.exists()
    assert new_orphan.exists(), "younger than the grace period: an import may still be running"
    assert all(path.exists() for path in kept) and stranger.exists()


def test_storing_existing_bytes_again_renews_the_file(app, project):
    store = app.config["IMAGE_STORE"]
    data = image_bytes(7)
    key = storage.validate_image(data, app.config["MAX_IMAGE_PIXELS"]).storage_key
    path = storage.store_bytes(store, key, data)
    age(path, 10_000)
    storage.store_bytes(store, key, data)  # an import found the bytes stored already
    assert time.time() - path.stat().st_mtime < 60
    assert orphans.sweep_store(store, grace_seconds=3600) == 0


def test_the_sweep_runs_from_the_minutely_checks_at_most_every_so_often(app, project):
    assert orphans.sweep_orphan_files in minutely.CHECKS
    app.config["ORPHAN_FILE_GRACE_SECONDS"] = 0
    store = app.config["IMAGE_STORE"]
    first = storage.store_bytes(store, storage.validate_image(
        image_bytes(60), app.config["MAX_IMAGE_PIXELS"]).storage_key, image_bytes(60))
    age(first, 5)
    assert orphans.sweep_orphan_files() == 1, "the first check sweeps"
    second = storage.store_bytes(store, storage.validate_image(
        image_bytes(61), app.config["MAX_IMAGE_PIXELS"]).storage_key, image_bytes(61))
    age(second, 5)
    assert orphans.sweep_orphan_files() == 0, "the next minute's does not"
    assert second.exists()
