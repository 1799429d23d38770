"""The import and demo console commands, including the real HiRISE manifest when present."""
import time

import pytest
from sqlalchemy import func, select

from supervising_ui import create_app
from supervising_ui.extensions import db
from supervising_ui.models import Image, Label, Project, User
from supervising_ui.projects import service as projects

from ..conftest import require_hirise
from ..helpers import write_images


def image_count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Image))


@pytest.fixture
def hirise_project(app):
    with app.app_context():
        projects.create_project("HiRISE", preset="hirise")


def test_import_manifest_prints_report_and_second_run_adds_none(app, runner, users,
                                                                hirise_project, tmp_path):
    write_images(tmp_path / "images", 3)
    (tmp_path / "m.csv").write_text("filename,label,source_id\nimg_000.jpg,crater,A\n"
                                    "img_001.jpg,dune,A\nimg_002.jpg,,B\nnope.jpg,,B\n")
    arguments = ["import", "HiRISE", "--manifest", str(tmp_path / "m.csv"),
                 "--image-root", str(tmp_path / "images")]
    result = runner.invoke(args=arguments)
    assert result.exit_code == 0, result.output
    assert "Import into 'HiRISE': added 2 images (1 labels), 0 duplicates, 2 rejected." in result.output
    assert "rejected: img_001.jpg: unknown label 'dune': valid classes are crater, dark_dune" in result.output
    assert "rejected: nope.jpg: manifest line 5: file not found" in result.output
    again = runner.invoke(args=arguments)
    assert "added 0 images (0 labels), 2 duplicates, 2 rejected" in again.output
    assert "duplicate: img_000.jpg" in again.output
    with app.app_context():
        label = db.session.scalar(select(Label))
        assert label.user_id == users["ada"], "labels go to the first admin by default"


def test_import_dir(app, runner, hirise_project, tmp_path):
    write_images(tmp_path / "d" / "sub", 4)
    result = runner.invoke(args=["import", "HiRISE", "--dir", str(tmp_path / "d")])
    assert result.exit_code == 0, result.output
    assert "added 4 images" in result.output
    with app.app_context():
        assert db.session.scalar(select(Image.original_name).order_by(Image.id)) == "sub/img_000.jpg"


def test_import_errors_are_clear(app, runner, hirise_project, tmp_path):
    write_images(tmp_path / "d", 1)
    (tmp_path / "d" / "m.csv").write_text("filename,label\nimg_000.jpg,crater\n")
    (tmp_path / "bad.csv").write_text("file\nimg_000.jpg\n")
    cases = [
        (["import", "HiRISE"], "give exactly one of --manifest"),
        (["import", "HiRISE", "--dir", str(tmp_path / "d"), "--manifest", str(tmp_path / "d" / "m.csv")],
         "give exactly one of --manifest"),
        (["import", "Nope", "--dir", str(tmp_path / "d")], "no project called 'Nope'"),
        (["import", "HiRISE", "--manifest", str(tmp_path / "d" / "m.csv")],
         "the manifest has labels but there is no admin"),
        (["import", "HiRISE", "--manifest", str(tmp_path / "bad.csv")],
         "manifest has no 'filename' column"),
        (["import", "HiRISE", "--dir", str(tmp_path / "d"), "--user", "ghost"],
         "no user called 'ghost'"),
    ]
    for arguments, message in cases:
        result = runner.invoke(args=arguments)
        assert result.exit_code != 0 and message in result.output, (arguments, result.output)
    assert image_count(app) == 0


def test_demo_creates_admin_project_and_images_once(app, runner, embedding_cache):
    app.config["CACHE_DIR"] = embedding_cache
    result = runner.invoke(args=["demo"])
    assert result.exit_code == 0, result.output
    assert "Created admin 'admin' with password: " in result.output
    assert "Demo images: added 60 images (36 labels), 0 duplicates, 0 rejected." in result.output
    password = result.output.split("with password: ")[1].split()[0]
    with app.app_context():
        admin = db.session.scalar(select(User).where(User.username == "admin"))
        assert admin.is_admin and admin.check_password(password)
        project = db.session.scalar(select(Project))
        assert project.class_names == projects.PRESETS["hirise"]
        image = db.session.scalar(select(Image))
        assert (image.width, image.height) == (227, 227)
        assert set(image.meta) == {"source_id", "instrument", "latitude", "acquired"}
        assert isinstance(image.meta["latitude"], float)
    again = runner.invoke(args=["demo"])
    assert "An admin already exists ('admin')" in again.output and "password" not in again.output
    assert "added 0 images (0 labels), 60 duplicates" in again.output


@pytest.mark.slow
@pytest.mark.hirise
def test_real_hirise_manifest_imports_3245_then_none(app, runner, client, auth, hirise_project):
    hirise = require_hirise()
    arguments = ["import", "HiRISE", "--manifest", str(hirise / "manifest.csv"),
                 "--image-root", str(hirise / "images")]
    started = time.perf_counter()
    first = runner.invoke(args=arguments)
    seconds = time.perf_counter() - started
    print(f"\nHiRISE import of 3245 images: {seconds:.1f} s")
    assert first.exit_code == 0, first.output
    assert "added 3245 images (3245 labels), 0 duplicates, 0 rejected" in first.output
    second = runner.invoke(args=arguments)
    assert "added 0 images (0 labels), 3245 duplicates, 0 rejected" in second.output
    assert seconds < 40
    with app.app_context():
        assert db.session.scalar(select(func.sum(Image.label_count))) == 3245
        image = db.session.scalar(select(Image).where(
            Image.original_name == "ESP_011289_1950_RED-0006.jpg"))
        assert image.meta == {"source_id": "ESP_011289_1950", "split": "val"}
        assert (image.width, image.height) == (227, 227)
        label = db.session.scalar(select(Label).where(Label.image_id == image.id))
        assert label.label_class.name == "edge"
        project_id = image.project_id
    auth.login("ada")
    started = time.perf_counter()
    page = client.get(f"/admin/projects/{project_id}/images?page=65").get_data(as_text=True)
    print(f"admin image page 65 of 65: {1000 * (time.perf_counter() - started):.0f} ms")
    assert "<h1>3245 images</h1>" in page and "page 65 of 65" in page
    assert "<th>source_id</th><th>split</th>" in page and page.count('class="thumb"') == 45


@pytest.mark.slow
def test_import_killed_with_sigkill_leaves_whole_batches_and_resumes(tmp_path, monkeypatch):
    """A real `supervising-ui import` process is killed mid-way; the re-run adds the rest."""
    import os
    import signal
    import sqlite3
    import subprocess
    import sys
    write_images(tmp_path / "images", 1500)
    (tmp_path / "m.csv").write_text("filename,label\n" + "".join(
        f"img_{index:03d}.jpg,crater\n" for index in range(1500)))
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith("SUPERVISING_UI_")}
    environment["SUPERVISING_UI_INSTANCE"] = str(tmp_path / "instance")
    command = [sys.executable, "-m", "supervising_ui.cli"]

    def run(*arguments):
        return subprocess.run(command + list(arguments), env=environment, capture_output=True,
                              text=True, timeout=120)
    # The set-up commands run in this process (a process start costs ~2 s of CPU).
    for name in list(os.environ):
        if name.startswith("SUPERVISING_UI_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("SUPERVISING_UI_INSTANCE", environment["SUPERVISING_UI_INSTANCE"])
    setup = create_app()
    for arguments in (["init", "--admin", "ada"], ["create-project", "P", "--preset", "hirise"]):
        assert setup.test_cli_runner().invoke(args=arguments).exit_code == 0, arguments
    with setup.app_context():
        db.engine.dispose()
    database = tmp_path / "instance" / "supervising_ui.sqlite3"
    arguments = ["import", "P", "--manifest", str(tmp_path / "m.csv"),
                 "--image-root", str(tmp_path / "images")]
    process = subprocess.Popen(command + arguments, env=environment, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)

    def images_in_database() -> int:
        with sqlite3.connect(database, timeout=30) as connection:
            return connection.execute("SELECT count(*) FROM image").fetchone()[0]
    deadline = time.monotonic() + 60
    while images_in_database() == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    with sqlite3.connect(database) as connection:
        images, labeled = connection.execute(
            "SELECT count(*), sum(label_count) FROM image").fetchone()
        labels = connection.execute("SELECT count(*) FROM label").fetchone()[0]
        keys = [row[0] for row in connection.execute("SELECT storage_key FROM image")]
    print(f"\nkilled after {images} of 1500 images were committed")
    assert 0 < images < 1500, "killed mid-way"
    assert images % 250 == 0, "only whole batches are committed"
    assert labels == labeled == images
    assert all((tmp_path / "instance" / "images" / key).is_file() for key in keys)
    rerun = run(*arguments)
    assert f"added {1500 - images} images ({1500 - images} labels), {images} duplicates, " \
           "0 rejected" in rerun.stdout, rerun.stdout + rerun.stderr
    assert images_in_database() == 1500
