"""New images in an MSL-like project: import batches, per-instrument quality, the drift panel
and "label this batch first", on small generated data."""
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from supervising_ui.consensus import consensus_class_ids
from supervising_ui.extensions import db
from supervising_ui.importing import batches, runner
from supervising_ui.importing.sources import Candidate, ImportPlan
from supervising_ui.labeling.decisions import put_off, submit_label
from supervising_ui.labeling.picking import next_image
from supervising_ui.learning import drift, facets
from supervising_ui.ml.uncertainty import scores
from supervising_ui.models import Image, ImportBatch, ModelVersion, Prediction, User, utcnow
from supervising_ui.projects.service import create_project

from ..helpers import add_serving_model, jpeg_bytes, project_of

CLASSES = ["ground", "wheel", "drill holes"]
INSTRUMENTS = ("mastcam_left", "mahli")


def candidates(count: int, first_sol: int, label: str | None, seed: int) -> list[Candidate]:
    """Generated rover images, two per sol, alternating between two cameras."""
    return [Candidate(f"{first_sol + index // 2:04d}{'ML' if index % 2 == 0 else 'MH'}_{seed + index}.jpg",
                      lambda seed=seed + index: jpeg_bytes(seed),
                      {"sol": first_sol + index // 2, "instrument": INSTRUMENTS[index % 2]}, label)
            for index in range(count)]


def probabilities(top_class: int, confidence: float) -> list[float]:
    """A distribution with confidence on top_class and the rest shared by the others."""
    rest = (1 - confidence) / (len(CLASSES) - 1)
    return [confidence if index == top_class else rest for index in range(len(CLASSES))]


def add_predictions(model_version_id: int, project_id: int, by_image: dict[int, list[float]]):
    """Store predictions of an existing model version (what a classify job writes)."""
    class_ids = [c.id for c in project_of(project_id).classes]
    for image_id, probs in by_image.items():
        stored = {name: float(values[0]) for name, values in scores([probs]).items()}
        db.session.add(Prediction(model_version_id=model_version_id, image_id=image_id,
                                  label_class_id=class_ids[probs.index(max(probs))], **stored,
                                  probabilities=dict(zip(CLASSES, probs, strict=True))))
    db.session.commit()


@pytest.fixture
def rover(app, users):
    """An MSL-like project: 40 labeled early-sol images (batch 1) with a serving model, then
    20 unlabeled later-sol images (batch 2) that the model finds unfamiliar."""
    with app.app_context():
        project = create_project("Rover", classes=CLASSES)
        project.group_column, project.serving_order, project.audit_share = "sol", "least_confidence", 0.0
        db.session.commit()
        first = runner.run_import(project, ImportPlan(candidates(40, 3, "ground", 0)),
                                  user_id=users["ada"], source="manifest early.csv")
        assert first.added == 40
        early = db.session.scalars(select(Image).order_by(Image.id)).all()
        # mastcam_left: right and sure; mahli: half wrong ("wheel"), all unsure (0.6).
        held_out = [image.id for image in early if image.meta["sol"] % 2 == 0]
        predicted = {}
        for image in early:
            if image.meta["instrument"] == "mastcam_left":
                predicted[image.id] = probabilities(0, 0.95)
            else:
                predicted[image.id] = probabilities(1 if image.meta["sol"] % 4 == 0 else 0, 0.6)
        model_id = add_serving_model(project.id, predicted)
        model = db.session.get(ModelVersion, model_id)
        model.metrics = {"held_out_image_ids": held_out}
        db.session.commit()
        second = runner.run_import(project, ImportPlan(candidates(20, 182, None, 100)),
                                   user_id=users["ada"], source="manifest val.csv")
        assert second.added == 20
        batch_id = db.session.scalar(select(func.max(ImportBatch.id)))
        new = db.session.scalars(select(Image.id).where(Image.import_batch_id == batch_id)
                                 .order_by(Image.id)).all()
        # 15 images the model would abstain on ("wheel" at 0.5), 5 sure "drill holes".
        add_predictions(model_id, project.id, {image_id: probabilities(1, 0.5) if index < 15
                                               else probabilities(2, 0.95)
                                               for index, image_id in enumerate(new)})
        return {"project_id": project.id, "model_id": model_id, "batch_id": batch_id,
                "new": new, "early": [image.id for image in early], "held_out": held_out}


def test_imports_are_recorded_as_batches_that_stamp_their_images(app, rover, users, tmp_path):
    with app.app_context():
        recorded = batches.project_batches(rover["project_id"])
        assert [(b.source, b.image_count, b.created_by_id) for b in recorded] == [
            ("manifest val.csv", 20, users["ada"]), ("manifest early.csv", 40, users["ada"])]
        counts = dict(db.session.execute(select(Image.import_batch_id, func.count())
                                         .group_by(Image.import_batch_id)).all())
        assert counts == {recorded[0].id: 20, recorded[1].id: 40}
        again = runner.run_import(project_of(rover["project_id"]),
                                  ImportPlan(candidates(20, 182, None, 100)), source="again")
        assert again.added == 0 and again.duplicates
        assert len(batches.project_batches(rover["project_id"])) == 2, "nothing added, no batch"


def test_per_instrument_quality_on_the_held_out_images(app, rover, client, auth):
    with app.app_context():
        project = project_of(rover["project_id"])
        model = db.session.get(ModelVersion, rover["model_id"])
        table = facets.facet_quality(project, model, "instrument")
        assert table["column"] == "instrument" and table["recorded"]
        assert table["columns"] == ["instrument", "sol"]
        rows = {row["value"]: row for row in table["rows"]}
        # Held out: even sols, 10 sols x 2 cameras; mahli is wrong on sols divisible by 4.
        assert {key: rows["mastcam_left"][key] for key in ("value", "images", "accuracy", "abstained",
                                                         "accuracy_kept")} == {
            "value": "mastcam_left", "images": 10, "accuracy": 1.0, "abstained": 0.0, "accuracy_kept": 1.0}
        # Every accuracy comes with its sample size and 95% Wilson interval (10 of 10: 72-100%).
        judged = rows["mastcam_left"]["judged"]
        assert judged["n"] == 10 and not judged["enough"]
        assert judged["low"] == pytest.approx(0.7225, abs=1e-3) and judged["high"] == pytest.approx(1.0)
        assert rows["mahli"]["judged_kept"] is None, "nothing kept: no figure, no interval"
        overall = table["overall"]["judged"]
        assert overall["n"] == 20 and overall["enough"]
        assert overall["low"] == pytest.approx(0.5313, abs=1e-3)
        assert overall["high"] == pytest.approx(0.8881, abs=1e-3)
        assert rows["mahli"]["images"] == 10 and rows["mahli"]["abstained"] == 1.0
        assert rows["mahli"]["accuracy"] == pytest.approx(0.5) and rows["mahli"]["accuracy_kept"] is None
        assert table["overall"]["accuracy"] == pytest.approx(0.75)
        assert table["overall"]["abstained"] == pytest.approx(0.5)
        by_sol = facets.facet_quality(project, model, None)
        assert by_sol["column"] == "sol" and len(by_sol["rows"]) == 10, "default: the group column"
    auth.login("ada")
    page = client.get(f"/projects/{rover['project_id']}/models?facet=instrument").get_data(as_text=True)
    assert '<h2 id="facets">v1 per instrument</h2>' in page
    row = page[page.index('<tr class="facet" data-value="mahli">'):]
    row = row[:row.index("</tr>")]
    assert "<td>mahli</td><td>10</td>" in row and "too few images to judge" in row
    assert "5 of 10 right; 95% CI 24–76%" in row and "<td>100.0%</td><td>–</td>" in row
    row = page[page.index("<tr><th>all</th>"):]
    row = row[:row.index("</tr>")]
    assert '<span class="figure">75.0%</span>' in row and "95% CI 53–89%, n = 20" in row


def test_facets_without_recorded_ids_use_the_current_split(app, rover):
    with app.app_context():
        project = project_of(rover["project_id"])
        model = db.session.get(ModelVersion, rover["model_id"])
        model.metrics = {}
        db.session.commit()
        table = facets.facet_quality(project, model, "instrument")
        assert not table["recorded"] and 0 < table["overall"]["images"] <= 40


def test_drift_panel_figures(app, rover, client, auth):
    with app.app_context():
        project = project_of(rover["project_id"])
        model = db.session.get(ModelVersion, rover["model_id"])
        panel = drift.drift_panel(project, model, None, held_out_abstained=0.5)
        assert panel["batch"].id == rover["batch_id"] and panel["predicted"] == 20
        assert panel["unpredicted"] == 0 and panel["abstained"] == pytest.approx(0.75)
        assert [b["count"] for b in panel["histogram"]] == [0, 0, 0, 0, 0, 15, 0, 0, 0, 5]
        assert [b["abstains"] for b in panel["histogram"]] == [True] * 9 + [False]
        mix = {row["class"]: (row["predicted"], row["labeled"]) for row in panel["mix"]}
        assert mix == {"wheel": (0.75, 0.0), "drill holes": (0.25, 0.0), "ground": (0.0, 1.0)}
        assert panel["distance"] == pytest.approx(1.0)
        assert len(panel["warnings"]) == 2 and "abstain on 75%" in panel["warnings"][0]
        assert "against 50%" in panel["warnings"][0]
        assert "total variation distance 1.00" in panel["warnings"][1]
        quiet = drift.drift_panel(project, model, None, held_out_abstained=0.7)
        assert len(quiet["warnings"]) == 1, "75% against 70% abstained is no warning"
        early = drift.drift_panel(project, model, panel["batches"][1].id, held_out_abstained=0.5)
        # The model trained on the 20 early images it did not hold out: only the held-out 20
        # count (every label predates the model), and mahli is wrong on 5 of their sols.
        assert early["predicted"] == 40 and early["labeled_in_batch"] == 20
        assert early["accuracy_in_batch"]["value"] == pytest.approx(15 / 20)
        assert early["accuracy_in_batch"]["n"] == 20 and early["accuracy_in_batch"]["enough"]
    assert drift.total_variation({1: 0.5, 2: 0.5}, {1: 0.5, 2: 0.5}) == 0.0
    assert drift.total_variation({1: 0.6, 2: 0.4}, {1: 0.4, 3: 0.6}) == pytest.approx(0.6)
    assert drift.drift_warnings(9, 1.0, 0.0, 1.0) == [], "too few images to judge"
    auth.login("ada")
    page = client.get(f"/projects/{rover['project_id']}/models").get_data(as_text=True)
    assert f'data-batch-id="{rover["batch_id"]}"' in page and "manifest val.csv" in page
    assert "Would abstain (confidence below 0.9) on <strong>75.0%</strong>" in page
    assert "on its held-out images: 50.0%" in page
    assert page.count('class="warning drift-warning"') == 2
    assert '<tr data-class="wheel"><td>wheel</td><td>75.0%</td><td>0.0%</td></tr>' in page
    assert "Label this batch first" in page
    other = client.get(f"/projects/{rover['project_id']}/models?batch=999")
    assert other.status_code == 404


def test_label_this_batch_first_hands_out_only_batch_images_until_done(app, rover, client, auth,
                                                                       users):
    auth.login("ada")
    url = f"/projects/{rover['project_id']}/models/priority-batch"
    response = client.post(url, data={"csrf_token": auth.csrf_token,
                                      "batch_id": rover["batch_id"]}, follow_redirects=True)
    assert "Labelers get the images of import batch" in response.get_data(as_text=True)
    with app.app_context():
        project_id, new = rover["project_id"], set(rover["new"])
        # Ten early images lose their label: open, and more uncertain (0.34) than any new one.
        reopened = rover["early"][:10]
        add_predictions_for_reopened(rover["model_id"], project_id, reopened)
        lee = db.session.get(User, users["lee"])
        now = utcnow()
        handed = []
        for _ in range(20):
            given = next_image(project_of(project_id), lee, now)
            handed.append(given.image_id)
            assert given.image_id in new and given.pick == "uncertainty"
            put_off(given.image_id, lee, now)
        assert set(handed) == new, "the most uncertain first, within the batch"
        # Everything in the batch put off by lee: lee gets the rest of the project...
        given = next_image(project_of(project_id), lee, now)
        assert given.image_id in reopened
        put_off(given.image_id, lee, now)
        # ...while the batch still goes first for others, until it is done.
        liu = db.session.get(User, users["liu"])
        later = now + timedelta(seconds=app.config["LEASE_SECONDS"] + 1)
        for image_id in sorted(new):
            assert next_image(project_of(project_id), liu, later).image_id in new
            submit_label(image_id, project_of(project_id), liu, "wheel", f"r{image_id}", 2.0, later)
        assert batches.batch_progress(project_of(project_id), rover["batch_id"]).is_done
        assert next_image(project_of(project_id), liu, later).image_id in reopened
    page = client.get(f"/projects/{rover['project_id']}/models").get_data(as_text=True)
    assert "it is done: they get the whole project again" in page
    client.post(url, data={"csrf_token": auth.csrf_token})
    with app.app_context():
        assert project_of(rover["project_id"]).priority_batch_id is None


def add_predictions_for_reopened(model_id: int, project_id: int, image_ids: list[int]) -> None:
    """Take the labels off some early images and make the model least sure of them."""
    from supervising_ui.models import Label
    db.session.query(Label).filter(Label.image_id.in_(image_ids)).delete()
    db.session.query(Image).filter(Image.id.in_(image_ids)).update({"label_count": 0})
    db.session.query(Prediction).filter(Prediction.image_id.in_(image_ids)).delete()
    db.session.commit()
    add_predictions(model_id, project_id, {image_id: probabilities(0, 0.34) for image_id in image_ids})
    assert all(image_id not in consensus_class_ids(project_id) for image_id in image_ids)


def test_only_admins_set_the_priority_batch(app, rover, client, auth):
    auth.login("lee")
    response = client.post(f"/projects/{rover['project_id']}/models/priority-batch",
                           data={"csrf_token": auth.csrf_token, "batch_id": rover["batch_id"]})
    assert response.status_code == 403
    auth.logout()
    auth.login("ada")
    response = client.post(f"/projects/{rover['project_id']}/models/priority-batch",
                           data={"csrf_token": auth.csrf_token, "batch_id": 999},
                           follow_redirects=True)
    assert "has no import batch 999" in response.get_data(as_text=True)
    with app.app_context():
        assert project_of(rover["project_id"]).priority_batch_id is None
