"""Export: labels, consensus and training manifest as CSV/JSON, from the console and the admin page."""
import io
import json

import pandas as pd
import pytest
from sqlalchemy import select

from supervising_ui.extensions import db
from supervising_ui.labeling.decisions import submit_label
from supervising_ui.learning.dataset import labeled_images
from supervising_ui.models import Image, Label, User, utcnow
from supervising_ui.projects import export

from ..helpers import (
    add_images,
    add_serving_model,
    make_project,
    make_stored_project,
    project_of,
)


def _labeled_project(users):
    """Three images, two labels each: agreement, disagreement with a tie, and one label only."""
    project_id = make_project("hirise", labels_per_image=2)
    ids = add_images(project_id, 4, meta={"source_id": "ESP_1", "label": "clash"})
    add_serving_model(project_id, {ids[0]: [0.7, 0.2, 0.1], ids[1]: [0.1, 0.8, 0.1]})
    votes = {ids[0]: [("lee", "crater"), ("liu", "crater")],
             ids[1]: [("lee", "crater"), ("liu", "other")],
             ids[2]: [("liu", "dark_dune")]}
    for image_id, decisions in votes.items():
        for name, class_name in decisions:
            submit_label(image_id, project_of(project_id),
                         db.session.get(User, users[name]), class_name, f"{image_id}-{name}",
                         4.5, utcnow())
    return project_id, ids


def test_labels_export_has_every_label_with_suggestion_and_metadata(app, users):
    with app.app_context():
        project_id, ids = _labeled_project(users)
        frame = export.labels_frame(project_of(project_id))
    assert len(frame) == 5
    assert list(frame.columns[:12]) == [
        "label_id", "image_id", "filename", "label", "labeler", "created_at", "seconds_spent",
        "suggestion_shown", "suggested_label", "suggestion_confidence",
        "suggestion_model_version", "agreed_with_suggestion"]
    assert {"source_id", "index", "meta_label"} <= set(frame.columns)
    first = frame[frame["image_id"] == ids[0]].iloc[0]
    assert (first["filename"], first["labeler"], first["seconds_spent"]) == \
        ("img_00000.jpg", "lee", 4.5)
    assert first["suggestion_shown"] and first["suggested_label"] == "crater"
    assert first["suggestion_confidence"] == pytest.approx(0.7)
    assert first["suggestion_model_version"] == 1 and bool(first["agreed_with_suggestion"])
    disagreed = frame[(frame["image_id"] == ids[1]) & (frame["labeler"] == "lee")].iloc[0]
    assert disagreed["suggested_label"] == "dark_dune" and not disagreed["agreed_with_suggestion"]
    unsuggested = frame[frame["image_id"] == ids[2]].iloc[0]
    assert pd.isna(unsuggested["agreed_with_suggestion"]) and not unsuggested["suggestion_shown"]
    assert first["meta_label"] == "clash" and first["source_id"] == "ESP_1"


def test_consensus_and_manifest(app, users):
    with app.app_context():
        project_id, ids = _labeled_project(users)
        consensus = export.consensus_frame(project_of(project_id)).set_index("image_id")
        manifest = export.manifest_frame(project_of(project_id))
    assert consensus.loc[ids[0], ["label", "votes", "labels", "agreement", "complete"]].tolist() \
        == ["crater", 2, 2, 1.0, True]
    assert pd.isna(consensus.loc[ids[1], "label"]), "a tie has no consensus label"
    assert consensus.loc[ids[2], ["label", "agreement", "complete"]].tolist() == \
        ["dark_dune", 1.0, False]
    assert ids[3] not in consensus.index
    assert list(manifest.columns[:2]) == ["filename", "label"]
    assert manifest[["filename", "label"]].values.tolist() == [
        ["img_00000.jpg", "crater"], ["img_00002.jpg", "dark_dune"]]
    assert manifest["source_id"].tolist() == ["ESP_1", "ESP_1"]


def test_empty_project_exports_headers_only(app, users):
    with app.app_context():
        project_id = make_project()
        for kind in export.KINDS:
            assert export.export_frame(project_of(project_id), kind).empty
        with pytest.raises(export.ExportError, match="unknown export kind"):
            export.export_frame(project_of(project_id), "everything")


def test_console_export_csv_and_json(app, users, runner, tmp_path):
    with app.app_context():
        _labeled_project(users)
    out = tmp_path / "labels.csv"
    result = runner.invoke(args=["export", "hirise", "--kind", "labels", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(out)) == 5
    out_json = tmp_path / "manifest.json"
    result = runner.invoke(args=["export", "hirise", "--kind", "manifest", "--format", "json",
                                 "--out", str(out_json)])
    assert result.exit_code == 0, result.output
    records = json.loads(out_json.read_text())
    assert [(r["filename"], r["label"]) for r in records] == [
        ("img_00000.jpg", "crater"), ("img_00002.jpg", "dark_dune")]
    missing = runner.invoke(args=["export", "nope", "--out", str(tmp_path / "x.csv")])
    assert missing.exit_code == 1 and "no project called 'nope'" in missing.output


def test_admin_download(app, client, auth):
    with app.app_context():
        project_id, _ = _labeled_project({"lee": 2, "liu": 3})
    auth.login("ada")
    response = client.get(f"/admin/projects/{project_id}/export?kind=consensus&format=csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert 'filename="hirise-consensus.csv"' in response.headers["Content-Disposition"]
    assert len(pd.read_csv(io.StringIO(response.get_data(as_text=True)))) == 3
    bad = client.get(f"/admin/projects/{project_id}/export?kind=labels&format=xml")
    assert bad.status_code == 400 and b"use one of csv, json" in bad.data
    assert client.get("/admin/projects/999/export").status_code == 404
    long = client.get(f"/admin/projects/{project_id}/export?kind={'k' * 2000}")
    assert long.status_code == 400 and len(long.data) < 200, "the kind is not echoed whole"
    auth.login("lee")
    assert client.get(f"/admin/projects/{project_id}/export").status_code == 403


def test_the_training_manifest_is_what_a_retrain_learns_from(app, users):
    """Ties, several labels per image, one label only: export and retrain agree image by image."""
    with app.app_context():
        project_id = make_stored_project(app, count=8)
        project = project_of(project_id)
        bright, dark = (label_class.id for label_class in project.classes)
        image_ids = db.session.scalars(select(Image.id).where(
            Image.project_id == project_id).order_by(Image.id)).all()
        votes = {0: [bright, bright, dark],  # 2 to 1: bright
                 1: [bright, dark],  # a tie: no class
                 2: [dark],  # one label: dark
                 3: [dark, bright, bright],  # 2 to 1 the other way round: bright
                 4: [dark, dark],  # unanimous: dark
                 5: [bright, dark, dark]}  # dark; images 6 and 7 have no label
        for position, classes in votes.items():
            for user, class_id in zip(("lee", "liu", "ada"), classes, strict=False):
                db.session.add(Label(project_id=project_id, image_id=image_ids[position],
                                     user_id=users[user], label_class_id=class_id))
        db.session.commit()
        manifest = pd.read_csv(io.StringIO(export.export_text(project, "manifest", "csv")))
        learned = labeled_images(project)
        names = {image.id: image.original_name for image in db.session.scalars(
            select(Image).where(Image.project_id == project_id))}
    exported = sorted(zip(manifest["image_id"], manifest["filename"], manifest["label"], strict=True))
    assert exported == sorted((e.image_id, names[e.image_id], e.label) for e in learned)
    assert [label for _, _, label in exported] == ["bright", "dark", "bright", "dark", "dark"]


FORMULAS = ["=1+1", "@SUM(1)", "-2+3+cmd|' /C calc'!A0", "+1", "\tx", "\rx", "x\r=1+1"]


def test_csv_cells_that_start_a_formula_are_quoted_and_json_stays_raw(app, users):
    with app.app_context():
        project_id = make_project("formulas")
        ids = add_images(project_id, len(FORMULAS), meta={"=cmd": "@x"})
        for image_id, formula in zip(ids, FORMULAS, strict=True):
            image = db.session.get(Image, image_id)
            image.original_name, image.meta = formula, dict(image.meta, note=formula, sol=-3)
            db.session.commit()
            submit_label(image_id, project_of(project_id), db.session.get(User, users["lee"]),
                         "crater", f"r{image_id}", 1.0, utcnow())
        project = project_of(project_id)
        csv_text = export.export_text(project, "labels", "csv")
        records = json.loads(export.export_text(project, "labels", "json"))
    frame = pd.read_csv(io.StringIO(csv_text), keep_default_na=False)
    quoted = ["'" + formula for formula in FORMULAS[:-1]] + ["x\r=1+1"]
    assert frame["filename"].tolist() == quoted and frame["note"].tolist() == quoted
    assert "'=cmd" in frame.columns and set(frame["'=cmd"]) == {"'@x"}
    assert frame["sol"].tolist() == [-3] * len(FORMULAS), "numbers are not text: left alone"
    assert frame["label"].tolist() == ["crater"] * len(FORMULAS)
    assert [record["filename"] for record in records] == FORMULAS
    assert records[0]["=cmd"] == "@x"


def test_a_project_name_that_is_not_ascii_downloads(app, client, auth):
    with app.app_context():
        project_id = make_project("Ελληνικά Ω")
    auth.login("ada")
    response = client.get(f"/admin/projects/{project_id}/export?kind=labels&format=json")
    assert response.status_code == 200
    disposition = response.headers["Content-Disposition"]
    assert disposition == (f'attachment; filename="project-{project_id}-labels.json"; '
                           "filename*=UTF-8''%CE%95%CE%BB%CE%BB%CE%B7%CE%BD%CE%B9%CE%BA%CE%AC_"
                           "%CE%A9-labels.json")
    with app.app_context():
        accented = make_project("Café crème")
        assert export.content_disposition(project_of(accented), "labels", "csv") == (
            "attachment; filename=\"Cafe_creme-labels.csv\"; "
            "filename*=UTF-8''Caf%C3%A9_cr%C3%A8me-labels.csv")
