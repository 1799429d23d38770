"""The console: import-boxes (a user created as a labeler, the password only when asked,
importing again replaces, bad files refused) and export --kind landmarks."""
import csv
import io

import pytest
from sqlalchemy import func, select

from supervising_ui.accounts.users import find_user
from supervising_ui.extensions import db
from supervising_ui.models import Box

from .helpers import make_observation

# The readers and writers of VOC, COCO, CSV and GeoJSON (helper "landmarks").
pytest.importorskip("supervising_ui.landmarks.formats",
                    reason="landmarks.formats is not in this checkout yet")

CSV_BOXES = "x_min,y_min,x_max,y_max,label\n45,45,75,75,crater\n200,100,240,140,crater\n"


def test_import_boxes_creates_the_annotator_and_replaces_on_a_second_run(app, runner, tmp_path):
    with app.app_context():
        make_observation()
    boxes = tmp_path / "boxes.csv"
    boxes.write_text(CSV_BOXES)
    first = runner.invoke(args=["import-boxes", "mars", "--observation", "obs-1",
                                "--annotator", "ann-1", "--csv", str(boxes)])
    assert first.exit_code == 0, first.output
    assert "Imported 2 boxes of 'ann-1'" in first.output
    assert "random password (not shown" in first.output
    again = runner.invoke(args=["import-boxes", "mars", "--observation", "obs-1",
                                "--annotator", "ann-1", "--csv", str(boxes)])
    assert again.exit_code == 0 and "Created" not in again.output
    shown = runner.invoke(args=["import-boxes", "mars", "--observation", "obs-1",
                                "--annotator", "ann-2", "--csv", str(boxes), "--show-password"])
    assert "with the password " in shown.output
    with app.app_context():
        assert find_user("ann-1").role == "labeler"
        assert db.session.scalar(select(func.count(Box.id))) == 4
        assert set(db.session.scalars(select(Box.source))) == {"imported"}


def test_import_boxes_refuses_bad_input(app, runner, tmp_path):
    with app.app_context():
        make_observation()
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("x_min,y_min,x_max,y_max,label\n1,1,5,5,volcano\n")
    cases = ((["--csv", str(unknown)], "unknown class 'volcano'"),
             (["--csv", str(unknown), "--voc", str(unknown)], "exactly one of"),
             ([], "exactly one of"))
    for extra, words in cases:
        answer = runner.invoke(args=["import-boxes", "mars", "--observation", "obs-1",
                                     "--annotator", "ann-1", *extra])
        assert answer.exit_code != 0 and words in answer.output, answer.output
    missing = runner.invoke(args=["import-boxes", "mars", "--observation", "nope",
                                  "--annotator", "ann-1", "--csv", str(unknown)])
    assert "has no observation 'nope'" in missing.output
    with app.app_context():
        assert find_user("ann-1") is None  # refused before any account was made
        assert db.session.scalar(select(func.count(Box.id))) == 0


def test_export_landmarks_csv_with_min_votes(app, runner, tmp_path):
    with app.app_context():
        make_observation()
    one, two = tmp_path / "one.csv", tmp_path / "two.csv"
    one.write_text(CSV_BOXES)
    two.write_text("x_min,y_min,x_max,y_max,label\n47,45,77,75,crater\n")
    for name, path in (("ann-1", one), ("ann-2", two)):
        runner.invoke(args=["import-boxes", "mars", "--observation", "obs-1", "--annotator",
                            name, "--csv", str(path)])
    out = tmp_path / "landmarks.csv"
    answer = runner.invoke(args=["export", "mars", "--kind", "landmarks", "--format", "csv",
                                 "--out", str(out)])
    assert answer.exit_code == 0, answer.output
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [(row["class"], row["human_votes"], row["x_min"]) for row in rows] == [("crater", "2", "46.0")]
    runner.invoke(args=["export", "mars", "--kind", "landmarks", "--format", "csv",
                        "--min-votes", "1", "--out", str(out)])
    assert len(list(csv.DictReader(io.StringIO(out.read_text())))) == 2
    wrong = runner.invoke(args=["export", "mars", "--kind", "labels", "--min-votes", "1",
                                "--out", str(out)])
    assert wrong.exit_code != 0 and "for --kind landmarks" in wrong.output
    voc_of_all = runner.invoke(args=["export", "mars", "--kind", "landmarks", "--format", "json",
                                     "--out", str(out)])
    assert voc_of_all.exit_code != 0 and "landmarks export as" in voc_of_all.output
