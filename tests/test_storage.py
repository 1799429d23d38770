"""Managed storage: content-addressed keys, atomic writes, and the one image validator; the
files of a fresh instance (database, queue, images, thumbnails, models, caches) are private."""
import io
import os
import stat
from pathlib import Path

import pytest
from PIL import Image

from supervising_ui import storage

from .conftest import TEST_DATABASE_URL, _reset_postgres
from .helpers import image_bytes


def test_validate_reads_format_size_and_hash():
    data = image_bytes(3, size=(40, 30), image_format="PNG")
    info = storage.validate_image(data, max_pixels=10_000)
    assert (info.format, info.width, info.height) == ("PNG", 40, 30)
    assert info.content_hash == storage.content_hash(data)
    assert info.storage_key == f"{info.content_hash[:2]}/{info.content_hash[2:4]}/{info.content_hash}.png"


@pytest.mark.parametrize("data, reason", [
    (b"this is a text file, not an image", "not an image"),
    (image_bytes(1, size=(64, 64))[:200], "corrupt image data"),
    (b"", "not an image"),
])
def test_validate_rejects_non_images_and_truncated_files(data, reason):
    with pytest.raises(storage.ImageRejected, match=reason):
        storage.validate_image(data, max_pixels=10_000)


def test_validate_rejects_formats_browsers_cannot_show():
    buffer = io.BytesIO()
    Image.new("L", (8, 8)).save(buffer, format="TIFF")
    with pytest.raises(storage.ImageRejected, match="format TIFF is not accepted"):
        storage.validate_image(buffer.getvalue(), max_pixels=10_000)


def test_configured_pixel_limit_is_enforced_before_decoding():
    data = image_bytes(1, size=(100, 50))
    with pytest.raises(storage.ImageRejected, match="decompression bomb.*5000 pixels.*4999"):
        storage.validate_image(data, max_pixels=4_999)
    assert storage.validate_image(data, max_pixels=5_000).width == 100
    assert Image.MAX_IMAGE_PIXELS >= 89_478_485, "a small app limit never lowers Pillow's own"


def test_pillow_decompression_bomb_error_is_a_rejection():
    """A small PNG that claims 200 million pixels trips Pillow's own guard at open."""
    buffer = io.BytesIO()
    Image.new("1", (20_000, 10_000)).save(buffer, format="PNG")
    assert len(buffer.getvalue()) < 100_000
    with pytest.raises(storage.ImageRejected, match="decompression bomb"):
        storage.validate_image(buffer.getvalue(), max_pixels=89_478_485)


def test_store_is_atomic_idempotent_and_keyed(tmp_path):
    data = image_bytes(5)
    info = storage.validate_image(data, max_pixels=10_000)
    path = storage.store_bytes(tmp_path, info.storage_key, data)
    assert path.read_bytes() == data
    assert storage.store_bytes(tmp_path, info.storage_key, data) == path
    assert not list(path.parent.glob(".incoming-*")), "no temporary file is left behind"
    assert storage.read_bytes(tmp_path, info.storage_key) == data
    assert storage.open_image(tmp_path, info.storage_key).size == (32, 24)
    assert storage.mimetype_for_key(info.storage_key) == "image/jpeg"


@pytest.mark.parametrize("key", ["../etc/passwd", "/etc/passwd", "ab/cd/x.jpg",
                                 "ab/cd/" + "0" * 64 + ".exe", ""])
def test_path_for_key_refuses_anything_but_a_key(tmp_path, key):
    with pytest.raises(ValueError, match="not a storage key"):
        storage.path_for_key(tmp_path, key)


@pytest.fixture
def shell_umask():
    """Run with the umask of a usual login shell (022); restore the process's own afterwards."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_stored_files_are_private_whatever_the_umask(tmp_path, shell_umask):
    data = image_bytes(6)
    info = storage.validate_image(data, max_pixels=10_000)
    path = storage.store_bytes(tmp_path / "store", info.storage_key, data)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def open_to_others(root: Path) -> list[str]:
    """Files and folders under root (root too) that anyone but their owner may read or enter."""
    found = [root, *root.rglob("*")]
    return [f"{oct(stat.S_IMODE(path.stat().st_mode))} {path.relative_to(root)}"
            for path in found if stat.S_IMODE(path.stat().st_mode) & 0o077]


def test_a_fresh_instance_is_private_after_init_import_and_retrain(tmp_path, monkeypatch,
                                                                    shell_umask):
    """Password hashes, token digests, images and models: only the service's user reads them."""
    from supervising_ui import create_app
    from supervising_ui.accounts.users import create_user
    from supervising_ui.database import create_or_migrate
    from supervising_ui.extensions import db
    from supervising_ui.importing import runner, sources
    from supervising_ui.jobs import queue as jobs
    from supervising_ui.learning import triggers
    from supervising_ui.models import Project

    from .helpers import add_labels, make_stored_project
    for name in list(os.environ):
        if name.startswith("SUPERVISING_UI_"):
            monkeypatch.delenv(name)
    instance = tmp_path / "instance"
    monkeypatch.setenv("SUPERVISING_UI_INSTANCE", str(instance))
    monkeypatch.setenv("SUPERVISING_UI_RETRAIN_TOP_BLOCKS", "0")  # the head alone, faster
    folder = tmp_path / "incoming"
    folder.mkdir()
    for index in range(3):
        (folder / f"img{index}.jpg").write_bytes(image_bytes(100 + index))
    app = create_app({"TESTING": True, "SECRET_KEY": None, "DATABASE_URL": TEST_DATABASE_URL,
                      "JOB_QUEUE": "sqlite"})
    try:
        with app.app_context():
            _reset_postgres() if TEST_DATABASE_URL else create_or_migrate()  # what init does
            user = create_user("ada", role="admin", password="correct horse battery")[0]
            imported = create_project_named("imported")
            report = runner.run_import(imported, sources.plan_folder(folder), user_id=user.id)
            assert report.added == 3, report.summary()
            project_id = make_stored_project(app)
            add_labels(project_id, user.id, 24)
            job = triggers.request_retrain(db.session.get(Project, project_id))
            jobs.run_job(job.id)  # what the worker does with the queued job
            db.session.refresh(job)
            assert job.state == "done", job.error
            store, cache = app.config["IMAGE_STORE"], app.config["CACHE_DIR"]
            key = next(Path(store).rglob("*.jpg")).relative_to(store).as_posix()
            storage.thumbnail_path(store, cache, key)  # what the admin image table shows
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
    names = {path.name for path in instance.rglob("*")}
    expected = {"secret_key", "jobs.sqlite3", "images", "thumbnails", "embeddings", "models",
                "v0001-quick"} | (set() if TEST_DATABASE_URL else {"supervising_ui.sqlite3"})
    assert expected <= names, sorted(names)
    assert open_to_others(instance) == []


def create_project_named(name: str):
    """A project with two classes."""
    from supervising_ui.projects.service import create_project
    return create_project(name, classes=["crater", "dune"])
