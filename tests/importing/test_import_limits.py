"""Manifest rows no database can store, numbers no JSON can carry, and the caps on what an
upload's zips may unpack to (the second hardening round)."""
import io
import json
import math
from contextlib import ExitStack

import pytest
from sqlalchemy import select
from werkzeug.datastructures import FileStorage

from supervising_ui.extensions import db
from supervising_ui.importing import runner, sources, uploads
from supervising_ui.manifests import read_manifest, typed_value
from supervising_ui.models import Image, SearchValue

from ..helpers import image_bytes, write_images, zip_bytes
from .test_importing import context, project, reasons  # noqa: F401 (fixtures)


@pytest.mark.parametrize("text", ["1e400", "-1e400", "1E309", "nan", "inf", "-Infinity"])
def test_numbers_no_float_holds_stay_text(text):
    assert typed_value(text) == text


def test_a_huge_exponent_is_stored_and_served_as_text(app, project, users, tmp_path,  # noqa: F811
                                                      client, auth):
    write_images(tmp_path / "images", 2)
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("filename,exposure\nimg_000.jpg,1e400\nimg_001.jpg,2.5\n")
    report = runner.run_import(project, sources.plan_manifest(manifest, tmp_path / "images"))
    assert report.added == 2
    metas = dict(db.session.execute(select(Image.original_name, Image.meta)).all())
    assert metas["img_000.jpg"] == {"exposure": "1e400"}
    assert not any(isinstance(value.number, float) and not math.isfinite(value.number)
                   for value in db.session.scalars(select(SearchValue)))
    project_id = project.id
    db.session.commit()
    auth.login("ada")
    response = client.get(f"/api/projects/{project_id}/search?q=img_000")
    json.loads(response.get_data(as_text=True), parse_constant=lambda name: pytest.fail(name))
    assert response.get_json()["items"][0]["metadata"] == {"exposure": "1e400"}


def test_rows_with_a_nul_are_rejected_with_their_reason_and_the_rest_imported(
        app, project, users, tmp_path):  # noqa: F811
    """On both engines: PostgreSQL refused the NUL and failed the whole import job."""
    write_images(tmp_path / "images", 4)
    manifest = tmp_path / "manifest.csv"
    manifest.write_bytes(b"filename,label,site,no\x00te\n"
                         b"img_000.jpg,crater,Gale,\n"
                         b"img_001.jpg,crater,Ga\x00le,\n"
                         b"img_002.jpg,,Jezero,filled\n"
                         b"img_003.jpg,cra\x00ter,Jezero,\n")
    report = runner.run_import(project, sources.plan_manifest(manifest, tmp_path / "images"),
                               user_id=users["ada"])
    assert report.added == 1 and report.labels_added == 1
    why = reasons(report)
    assert why["img_001.jpg"] == ("manifest line 3 holds a NUL character (in column 'site'): "
                                  "no database can store it")
    assert "(in column 'note')" in why["img_002.jpg"]
    assert "(in column 'label')" in why["img_003.jpg"]
    assert db.session.scalars(select(Image.original_name)).all() == ["img_000.jpg"]
    assert all("\x00" not in json.dumps(item) for item in report.rejected)


def test_a_nul_in_a_file_name_is_rejected_by_the_upload_path_too(project):  # noqa: F811
    records, columns = read_manifest(b"filename,site\na\x00.jpg,Gale\nb.jpg,Gale\n")
    assert records[0][1]["error"].startswith("holds a NUL character (in column 'filename')")
    assert records[0][1]["filename"] == "a.jpg" and records[1][1]["error"] is None
    plan = sources.plan_named_files({"a.jpg": lambda: image_bytes(1), "b.jpg": lambda: image_bytes(2)},
                                    b"filename,site\na\x00.jpg,Gale\nb.jpg,Gale\n")
    assert [candidate.name for candidate in plan.candidates] == ["b.jpg"]
    assert columns == ["site"]


# --- Zip caps per upload ---------------------------------------------------------------------

def staged_upload(app, files: dict[str, bytes]) -> str:
    """Stage files as an upload would; return its token."""
    return uploads.stage_uploads([FileStorage(io.BytesIO(data), filename=name)
                                  for name, data in files.items()])


def plan_upload(token: str):
    with ExitStack() as stack:
        return uploads.plan_staged_upload(token, stack)


def test_zips_past_the_entry_cap_are_rejected_whole(context, monkeypatch):  # noqa: F811
    monkeypatch.setattr(sources, "MAX_UPLOAD_ENTRIES", 5)
    first = zip_bytes({f"a{n}.jpg": image_bytes(n) for n in range(3)})
    second = zip_bytes({f"b{n}.jpg": image_bytes(10 + n) for n in range(3)})
    plan = plan_upload(staged_upload(context, {"first.zip": first, "second.zip": second}))
    assert sorted(candidate.name for candidate in plan.candidates) == ["a0.jpg", "a1.jpg", "a2.jpg"]
    why = {item["name"]: item["reason"] for item in plan.rejected}
    assert "zip holds 3 entries" in why["second.zip"] and "not extracted" in why["second.zip"]


def test_zips_past_the_unpacked_size_cap_are_rejected_whole(context, monkeypatch):  # noqa: F811
    monkeypatch.setattr(sources, "MAX_UPLOAD_UNPACKED_BYTES", 100_000)
    small = zip_bytes({"small.jpg": image_bytes(1)})
    bomb = zip_bytes({"zeros.bin": b"\0" * 200_000})  # deflates to a few hundred bytes
    plan = plan_upload(staged_upload(context, {"small.zip": small, "bomb.zip": bomb}))
    assert [candidate.name for candidate in plan.candidates] == ["small.jpg"]
    why = {item["name"]: item["reason"] for item in plan.rejected}
    assert "200000 bytes" in why["bomb.zip"]


def test_the_entry_count_is_read_before_the_central_directory(context, monkeypatch,  # noqa: F811
                                                              tmp_path):
    monkeypatch.setattr(sources, "MAX_UPLOAD_ENTRIES", 2)
    archive = tmp_path / "many.zip"
    archive.write_bytes(zip_bytes({f"{n}.jpg": b"x" for n in range(4)}))
    opened = []
    monkeypatch.setattr(sources.zipfile, "ZipFile", lambda *args: opened.append(args))
    plan = sources.ImportPlan()
    with ExitStack() as stack:
        assert sources.zip_entries(archive, "many.zip", stack, plan, sources.UnpackBudget()) == {}
    assert opened == [] and "zip holds 4 entries" in plan.rejected[0]["reason"]


def test_an_ordinary_upload_is_within_the_caps(context):  # noqa: F811
    archive = zip_bytes({f"img/{n}.jpg": image_bytes(n) for n in range(4)})
    plan = plan_upload(staged_upload(context, {"photos.zip": archive, "one.jpg": image_bytes(9)}))
    assert len(plan.candidates) == 5 and plan.rejected == []
