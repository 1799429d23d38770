"""Image import: manifests, folders, zips, uploads; bad input is reported and loses nothing."""
import hashlib
import os
import re
from contextlib import ExitStack
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from supervising_ui.extensions import db
from supervising_ui.importing import ImportRefused, runner, sources
from supervising_ui.manifests import ManifestError, read_manifest, typed_value
from supervising_ui.models import Image, Label
from supervising_ui.projects import service as projects

from ..conftest import TEST_DATABASE_URL
from ..helpers import image_bytes, write_images, zip_bytes


@pytest.fixture
def context(app):
    """Run the test inside an app context."""
    with app.app_context():
        yield app


@pytest.fixture
def project(context):
    """A HiRISE-preset project."""
    return projects.create_project("HiRISE", preset="hirise")


def count(model, *conditions) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*conditions))


def stored_files(app) -> list[Path]:
    return [path for path in Path(app.config["IMAGE_STORE"]).rglob("*") if path.is_file()]


def reasons(report) -> dict[str, str]:
    return {item["name"]: item["reason"] for item in report.rejected}


def test_typed_values():
    assert typed_value(" 42 ") == 42
    assert typed_value("-3.5") == -3.5
    assert typed_value("1e3") == 1000.0
    assert typed_value("0") == 0
    assert typed_value("0.25") == 0.25
    assert typed_value("007") == "007", "leading zeros mark an identifier"
    assert typed_value("ESP_011289_1950") == "ESP_011289_1950"
    assert typed_value("2012-08-06T05:17:57Z") == "2012-08-06T05:17:57Z"
    assert typed_value("nan") == "nan"
    assert typed_value(str(2**60)) == str(2**60), "too large for JavaScript"


def test_manifest_import_with_metadata_and_labels(app, project, users, tmp_path):
    write_images(tmp_path / "images", 3)
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("filename,label,source_id,sol,incidence,acquired\n"
                        "img_000.jpg,crater,ESP_011289_1950,1234,37.5,2012-08-06T05:17:57Z\n"
                        "img_001.jpg,,ESP_011289_1950,0042,,\n"
                        "img_002.jpg,edge,PSP_001234_1800,12,40,\n")
    plan = sources.plan_manifest(manifest, tmp_path / "images")
    report = runner.run_import(project, plan, user_id=users["ada"])
    assert (report.added, report.labels_added, report.rejected, report.duplicates) == (3, 2, [], [])
    images = {image.original_name: image for image in db.session.scalars(select(Image))}
    first = images["img_000.jpg"]
    assert first.meta == {"source_id": "ESP_011289_1950", "sol": 1234, "incidence": 37.5,
                          "acquired": "2012-08-06T05:17:57Z"}
    assert images["img_001.jpg"].meta == {"source_id": "ESP_011289_1950", "sol": "0042"}
    assert (first.width, first.height, first.label_count) == (32, 24, 1)
    assert images["img_001.jpg"].label_count == 0
    label = db.session.scalar(select(Label).where(Label.image_id == first.id))
    assert (label.user_id, label.label_class.name, label.project_id) == (users["ada"], "crater", project.id)
    assert len(stored_files(app)) == 3


def test_duplicates_are_reported_not_stored_twice(app, project, tmp_path):
    write_images(tmp_path / "a", 4)
    (tmp_path / "a" / "copy_of_0.jpg").write_bytes((tmp_path / "a" / "img_000.jpg").read_bytes())
    first = runner.run_import(project, sources.plan_folder(tmp_path / "a"))
    assert (first.added, first.duplicates) == (4, ["img_000.jpg"])  # sorted: copy_of_0 came first
    again = runner.run_import(project, sources.plan_folder(tmp_path / "a"))
    assert again.added == 0 and len(again.duplicates) == 5
    assert count(Image) == 4 and len(stored_files(app)) == 4
    other = projects.create_project("Other", classes=["a", "b"])
    assert runner.run_import(other, sources.plan_folder(tmp_path / "a")).added == 4, \
        "duplicates are per project"
    assert len(stored_files(app)) == 4, "the same bytes share one stored file"


@pytest.mark.skipif(not TEST_DATABASE_URL, reason="PostgreSQL: set SUPERVISING_UI_TEST_DATABASE_URL")
def test_an_import_leaves_postgresql_statistics_that_count_its_images(project, tmp_path):
    write_images(tmp_path / "a", 6)
    assert runner.run_import(project, sources.plan_folder(tmp_path / "a")).added == 6
    # ANALYZE sets the planner's row estimate at once; before it, the table looks empty.
    estimate = db.session.scalar(text("SELECT reltuples FROM pg_class WHERE oid = 'image'::regclass"))
    assert estimate == count(Image) == 6


def test_bad_manifest_rows_are_listed_and_the_rest_goes_through(app, project, users, tmp_path):
    folder = tmp_path / "images"
    write_images(folder, 2)
    (folder / "notes.jpg").write_text("not an image at all")
    (folder / "broken.jpg").write_bytes(image_bytes(9, size=(64, 64))[:150])
    (tmp_path / "secret.jpg").write_bytes(image_bytes(10))
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("filename,label,source_id\n"
                        "img_000.jpg,crater,A\n"
                        "img_001.jpg,volcano,A\n"
                        "notes.jpg,,A\n"
                        "broken.jpg,,A\n"
                        "missing.jpg,,A\n"
                        "../secret.jpg,,A\n"
                        ",crater,A\n"
                        "img_001.jpg,crater,A,extra\n")
    report = runner.run_import(project, sources.plan_manifest(manifest, folder),
                               user_id=users["ada"])
    assert report.added == 1 and report.labels_added == 1
    why = reasons(report)
    assert [item["reason"] for item in report.rejected if item["name"] == "img_001.jpg"] == [
        "manifest line 9 has 4 fields where the header has 3",
        "unknown label 'volcano': valid classes are crater, dark_dune, bright_dune, streak, "
        "other, edge"]
    assert why["notes.jpg"].startswith("not an image")
    assert why["broken.jpg"].startswith("corrupt image data")
    assert "file not found" in why["missing.jpg"]
    assert "outside the image folder" in why["../secret.jpg"]
    assert why["line 8"] == "manifest line 8 has no filename"
    assert len(report.rejected) == 7
    assert count(Image) == 1 and count(Label) == 1


@pytest.mark.parametrize("content, message", [
    (b"name,label\na.jpg,crater\n", "no 'filename' column (its columns: name, label)"),
    ("filename,label\nkrater\u00e9.jpg,crater\n".encode("latin-1"), "not UTF-8"),
    (b"", "manifest is empty"),
    (b"filename,Filename\na.jpg,b.jpg\n", "columns repeat: filename"),
])
def test_malformed_manifest_is_refused_with_reason(content, message):
    with pytest.raises(ManifestError, match=re.escape(message)):
        read_manifest(content)


def test_utf8_bom_and_windows_paths_are_accepted(project, tmp_path):
    write_images(tmp_path / "images" / "sub", 1)
    manifest = tmp_path / "m.csv"
    manifest.write_bytes("\ufeffFilename,Caméra\r\nsub\\img_000.jpg,HiRISE\r\n".encode("utf-8"))
    report = runner.run_import(project, sources.plan_manifest(manifest, tmp_path / "images"))
    assert report.added == 1
    assert db.session.scalar(select(Image.meta)) == {"Caméra": "HiRISE"}


def test_decompression_bomb_is_rejected_by_configured_limit(app, project, tmp_path):
    app.config["MAX_IMAGE_PIXELS"] = 1000
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "small.png").write_bytes(image_bytes(1, size=(20, 20), image_format="PNG"))
    (tmp_path / "f" / "big.png").write_bytes(image_bytes(2, size=(40, 40), image_format="PNG"))
    report = runner.run_import(project, sources.plan_folder(tmp_path / "f"))
    assert report.added == 1
    assert reasons(report)["big.png"].startswith("decompression bomb refused: 40x40 = 1600 pixels")


def test_zip_entries_with_dot_dot_or_absolute_paths_are_refused(app, project, tmp_path):
    archive = tmp_path / "upload.zip"
    archive.write_bytes(zip_bytes({"good/a.jpg": image_bytes(1), "../evil.jpg": image_bytes(2),
                                   "/abs/evil.jpg": image_bytes(3), "C:/x/evil.jpg": image_bytes(4),
                                   "good/../../evil.jpg": image_bytes(5),
                                   "__MACOSX/._a.jpg": b"resource fork", "notes.txt": b"hello"}))
    with ExitStack() as stack:
        plan = sources.ImportPlan()
        entries = sources.zip_entries(archive, "upload.zip", stack, plan)
        plan.candidates = sources.plan_named_files(entries, None).candidates
        report = runner.run_import(project, plan)
    assert report.added == 1
    why = reasons(report)
    for bad in ("../evil.jpg", "/abs/evil.jpg", "C:/x/evil.jpg", "good/../../evil.jpg"):
        assert why[f"upload.zip: {bad}"].startswith("unsafe path in zip")
    assert why["notes.txt"].startswith("not an image")
    assert len(why) == 5, "the __MACOSX artefact is skipped silently"
    assert not list(tmp_path.rglob("evil.jpg"))
    assert db.session.scalar(select(Image.original_name)) == "good/a.jpg"


def test_corrupt_zip_is_a_rejection(project, tmp_path):
    archive = tmp_path / "broken.zip"
    archive.write_bytes(b"PK\x03\x04 not really a zip")
    with ExitStack() as stack:
        plan = sources.ImportPlan()
        assert sources.zip_entries(archive, "broken.zip", stack, plan) == {}
    assert plan.rejected[0]["name"] == "broken.zip"
    assert "not a readable zip file" in plan.rejected[0]["reason"]


def test_upload_manifest_matches_files_by_name(project, users):
    entries = {"a.jpg": lambda: image_bytes(1), "dir/b.jpg": lambda: image_bytes(2),
               "stray.jpg": lambda: image_bytes(3)}
    manifest = b"filename,label,sol\na.jpg,crater,1\nb.jpg,streak,2\nc.jpg,other,3\n"
    plan = sources.plan_named_files(entries, manifest, "m.csv")
    report = runner.run_import(project, plan, user_id=users["ada"])
    assert (report.added, report.labels_added) == (2, 2)
    assert reasons(report) == {"c.jpg": "manifest line 4: file not found among the uploaded files",
                               "stray.jpg": "not listed in the manifest"}
    bad = sources.plan_named_files(entries, b"name\nx\n", "m.csv")
    assert bad.candidates == [] and bad.rejected[0]["name"] == "m.csv"
    assert {item["reason"] for item in bad.rejected[1:]} == {"not imported: the manifest was rejected"}


def test_folder_import_is_confined_to_its_root(app, project, tmp_path):
    root = tmp_path / "root"
    write_images(root / "set", 2)
    write_images(tmp_path / "outside", 1, start=50)
    os.symlink(tmp_path / "outside" / "img_050.jpg", root / "set" / "link.jpg")
    os.symlink(tmp_path / "outside", root / "escape")
    (root / "set" / ".DS_Store").write_bytes(b"finder")
    (root / "set" / "manifest.csv").write_text("filename\n")
    report = runner.run_import(project, sources.plan_folder(root / "set", root))
    assert report.added == 2
    assert reasons(report) == {
        "link.jpg": f"symbolic link leading outside {root.resolve()}",
        "manifest.csv": "a CSV file, not an image: give it as the manifest to import its "
                        "metadata and labels"}
    for bad in (str(tmp_path / "outside"), "../outside", "escape"):
        with pytest.raises(ImportRefused, match="outside"):
            sources.plan_folder(root / bad, root)


def test_server_import_needs_import_root_and_stays_inside(app, project, tmp_path):
    root = Path(app.config["IMPORT_ROOT"])
    write_images(root / "hirise" / "images", 2)
    (root / "hirise" / "manifest.csv").write_text("filename,split\nimg_000.jpg,train\n")
    plan = sources.plan_server_import("hirise/images", "hirise/manifest.csv")
    assert [candidate.name for candidate in plan.candidates] == ["img_000.jpg"]
    assert len(sources.plan_server_import("hirise/images", "").candidates) == 2
    assert len(sources.plan_server_import("", "hirise/manifest.csv").rejected) == 1
    for folder, manifest in (("../", ""), ("/etc", ""), ("", "../../etc/passwd")):
        with pytest.raises(ImportRefused, match="outside"):
            sources.plan_server_import(folder, manifest)
    app.config["IMPORT_ROOT"] = None
    with pytest.raises(ImportRefused, match="set IMPORT_ROOT"):
        sources.plan_server_import("hirise/images", "")


def test_import_killed_half_way_is_consistent_and_resumable(app, project, users, monkeypatch, tmp_path):
    monkeypatch.setattr(runner, "BATCH_SIZE", 4)
    names = write_images(tmp_path / "images", 10)
    manifest = tmp_path / "m.csv"
    manifest.write_text("filename,label\n" + "".join(f"{name},crater\n" for name in names))
    plan = sources.plan_manifest(manifest, tmp_path / "images")
    real_read = plan.candidates[6].read

    def killed():
        raise KeyboardInterrupt  # the process dies while reading the 7th file
    plan.candidates[6].read = killed
    with pytest.raises(KeyboardInterrupt):
        runner.run_import(project, plan, user_id=users["ada"])
    db.session.rollback()
    assert count(Image) == 4, "the committed batch, no partial one"
    assert count(Label) == 4 and db.session.scalar(select(func.sum(Image.label_count))) == 4
    plan.candidates[6].read = real_read
    report = runner.run_import(project, plan, user_id=users["ada"])
    assert (report.added, len(report.duplicates)) == (6, 4)
    assert count(Image) == 10 and count(Label) == 10


def test_concurrent_import_of_the_same_file_counts_it_as_duplicate(app, project, tmp_path):
    """Another import commits the same content mid-batch: this batch is redone row by row."""
    names = write_images(tmp_path / "images", 3)
    plan = sources.plan_folder(tmp_path / "images")
    real_read = plan.candidates[2].read

    def read_while_rival_commits():
        data = (tmp_path / "images" / names[0]).read_bytes()
        with db.engine.begin() as connection:  # a second importer, in its own transaction
            connection.execute(Image.__table__.insert().values(
                project_id=project.id, storage_key="x", original_name="rival.jpg",
                content_hash=hashlib.sha256(data).hexdigest(), width=1, height=1,
                metadata={}, random_key=0.5, label_count=0))
        return real_read()
    plan.candidates[2].read = read_while_rival_commits
    report = runner.run_import(project, plan)
    assert (report.added, report.duplicates) == (2, ["img_000.jpg"])
    assert count(Image) == 3
