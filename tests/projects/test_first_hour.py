"""What a scientist meets in the first hour: the loop on by default, why an image was handed
out, an honest model page, the field guide, "unsure", and counts that are the labeler's own."""

import pytest

from supervising_ui import create_app
from supervising_ui.database import create_or_migrate
from supervising_ui.extensions import db
from supervising_ui.importing import runner
from supervising_ui.importing.sources import Candidate, ImportPlan
from supervising_ui.learning import report, triggers
from supervising_ui.ml.intervals import proportion, wilson_interval
from supervising_ui.models import Label, LabelClass, ModelVersion, Skip
from supervising_ui.projects import export
from supervising_ui.projects import service as projects

from ..helpers import add_images, add_serving_model, image_bytes, make_project, project_of


def test_a_new_project_has_the_learning_loop_on(tmp_path, monkeypatch):
    monkeypatch.setenv("SUPERVISING_UI_INSTANCE", str(tmp_path / "instance"))
    app = create_app({"TESTING": True, "SECRET_KEY": "test", "JOB_QUEUE": "memory"})
    with app.app_context():
        create_or_migrate()
        project = projects.create_project("HiRISE", preset="hirise")
        assert (project.serving_order, project.retrain_every) == ("least_confidence", 20)
        crater = project.classes[0]
        assert crater.name == "crater" and "circular depression" in crater.description
        db.session.remove()


def test_the_next_image_says_why_it_was_picked(app, client, auth):
    with app.app_context():
        waiting = make_project("waiting", serving_order="least_confidence", retrain_every=20)
        add_images(waiting, 2)
        plain = make_project("plain")
        add_images(plain, 1, start=10)
        served = make_project("served", serving_order="least_confidence", audit_share=0.0)
        [image_id] = add_images(served, 1, start=20)
        add_serving_model(served, {image_id: [0.5, 0.3, 0.2]}, version=3)
    auth.login("lee")
    reason = client.get(f"/api/projects/{waiting}/next").get_json()["pick_reason"]
    assert reason.startswith("random: no model serves yet") and "after 20 labels" in reason
    assert client.get(f"/api/projects/{plain}/next").get_json()["pick_reason"] == \
        "random order, as the project's settings ask"
    given = client.get(f"/api/projects/{served}/next").get_json()
    assert given["pick"] == "uncertainty" and "v3 is least sure" in given["pick_reason"]


def test_wilson_intervals_and_too_few_to_judge():
    low, high = wilson_interval(7, 9)
    assert (round(low, 3), round(high, 3)) == (0.453, 0.937)  # 7 of 9: 45-94%
    assert wilson_interval(0, 0) is None and wilson_interval(4, 4)[1] == pytest.approx(1.0)
    small, large = proportion(7 / 9, 9), proportion(0.9, 400)
    assert not small["enough"] and large["enough"] and large["high"] - large["low"] < 0.06
    assert proportion(None, 10) is None and proportion(0.5, 0) is None


def _version_with(project_id: int, metrics: dict, version: int = 1) -> int:
    version_id = add_serving_model(project_id, {}, version=version)
    version = db.session.get(ModelVersion, version_id)
    version.metrics = metrics
    db.session.commit()
    return version_id


def test_the_model_page_gives_sample_sizes_and_says_too_few(app, client, auth):
    classes = ["crater", "dark_dune", "other"]
    with app.app_context():
        project_id = make_project(classes=classes)
        _version_with(project_id, {
            "held_out_accuracy": 7 / 9, "held_out_count": 9, "train_count": 11,
            "at_threshold": {"threshold": 0.9, "accuracy": 1.0, "kept": 4, "abstained": 5 / 9},
            "per_class": {"crater": {"precision": 0.8, "recall": 0.8, "support": 5},
                          "dark_dune": {"precision": 0.75, "recall": 0.75, "support": 4},
                          "other": {"precision": None, "recall": None, "support": 0}},
            "confusion_matrix": [[4, 1, 0], [1, 3, 0], [0, 0, 0]], "classes": classes})
    auth.login("ada")
    page = client.get(f"/projects/{project_id}/models").get_data(as_text=True)
    assert "too few images to judge" in page and "7 of 9 right; 95% CI 45–94%" in page
    assert page.count("77.8%") == 1 and "77.8% on 9 held-out images" in page, \
        "no bare accuracy on nine images (the chart's point names its sample)"
    assert "4 of 4 right" in page, "the accuracy at the threshold on 4 images is not a figure"
    assert "no held-out images of this class" in page
    assert "1 classes with no held-out image and no prediction left out" in page
    assert f"/projects/{project_id}/search?label=crater&amp;predicted=dark_dune&amp;min_confidence=0" in page
    with app.app_context():
        version = db.session.get(ModelVersion, _version_with(project_id, {
            "held_out_accuracy": 0.9, "held_out_count": 400}, version=2))
        assert report.version_figures(version)["held_out"]["enough"]
    page = client.get(f"/projects/{project_id}/models").get_data(as_text=True)
    assert "90.0%" in page and "(95% CI 87–93%, n = 400)" in page


def test_imported_labels_are_not_the_labelers_work_and_arm_no_idle_finetune(app, client, auth,
                                                                            users):
    app.config.update(FINETUNE_WHEN_IDLE_MINUTES=1, FINETUNE_MIN_NEW_LABELS=1,
                      RETRAIN_MIN_LABELS=1)
    with app.app_context():
        project_id = make_project()
        plan = ImportPlan([Candidate(f"a{i}.jpg", lambda i=i: image_bytes(i), {}, "crater")
                           for i in range(3)])
        report_ = runner.run_import(project_of(project_id), plan, user_id=users["lee"])
        assert report_.added == 3
        assert all(label.imported for label in db.session.query(Label))
        old = db.session.query(Label).all()
        for label in old:  # long ago: the project looks idle
            label.created_at = label.created_at.replace(year=2020)
        db.session.commit()
        assert triggers.queue_idle_finetunes() == [], "imported labels do not arm it"
    auth.login("lee")
    counts = client.get(f"/api/projects/{project_id}/progress").get_json()
    assert counts["mine_total"] == 0 and counts["mine_today"] == 0
    assert counts["done"] == 3


def test_unsure_with_a_comment_counts_like_later_and_is_exported(app, client, auth):
    with app.app_context():
        project_id = make_project()
        first, second = add_images(project_id, 2)
    auth.login("lee")
    headers = {"X-CSRFToken": auth.csrf_token}
    given = client.get(f"/api/projects/{project_id}/next").get_json()["image_id"]
    answer = client.post(f"/api/images/{given}/later", headers=headers,
                         json={"unsure": True, "comment": "  a crater or a pit?  "})
    assert answer.status_code == 200 and answer.get_json()["unsure"] is True
    other = client.get(f"/api/projects/{project_id}/next").get_json()["image_id"]
    assert {given, other} == {first, second}, "an unsure image goes to the back, as Later"
    assert client.post(f"/api/images/{other}/later", headers=headers,
                       json={"unsure": True, "comment": 5}).status_code == 400
    with app.app_context():
        skip = db.session.query(Skip).filter_by(image_id=given).one()
        assert skip.unsure and skip.comment == "a crater or a pit?"
        frame = export.export_frame(project_of(project_id), "unsure")
        assert frame[["image_id", "labeler", "comment"]].values.tolist() == [
            [given, "lee", "a crater or a pit?"]]


def test_the_field_guide_shows_descriptions_and_examples(app, client, auth, users):
    with app.app_context():
        project_id = make_project()
        [image_id] = add_images(project_id, 1)
        crater = db.session.query(LabelClass).filter_by(project_id=project_id, name="crater").one()
        db.session.add(Label(project_id=project_id, image_id=image_id, user_id=users["lee"],
                             label_class_id=crater.id))
        db.session.commit()
        crater_id = crater.id
    auth.login("ada")
    response = client.post(f"/admin/projects/{project_id}/classes/{crater_id}/description",
                           data={"csrf_token": auth.csrf_token, "description": "A round pit."})
    assert response.status_code == 302
    refused = client.post(f"/admin/projects/{project_id}/classes/{crater_id}/description",
                          data={"csrf_token": auth.csrf_token, "description": "x" * 2001},
                          follow_redirects=True)
    assert "at most 2000 characters" in refused.get_data(as_text=True)
    auth.logout()
    auth.login("lee")
    page = client.get(f"/projects/{project_id}/label").get_data(as_text=True)
    assert 'id="guide"' in page and "A round pit." in page
    assert f"/api/images/{image_id}/thumbnail" in page and "No image labeled dark_dune yet" in page


def test_the_detail_page_steps_through_the_search(app, client, auth):
    with app.app_context():
        project_id = make_project()
        ids = add_images(project_id, 3)
    auth.login("lee")
    url = f"/projects/{project_id}/search/images/{ids[1]}?sort=filename&min_confidence="
    page = client.get(url).get_data(as_text=True)
    assert f"/search/images/{ids[0]}?sort=filename" in page and 'id="previous-image"' in page
    assert f"/search/images/{ids[2]}?sort=filename" in page and 'id="next-image"' in page
    first = client.get(f"/projects/{project_id}/search/images/{ids[0]}?sort=filename")
    assert 'id="previous-image"' not in first.get_data(as_text=True)
    assert client.get(f"/projects/{project_id}/search/images/{ids[0]}?sort=nonsense") \
        .status_code == 200, "a bad search leaves the page without neighbours, not an error"


def test_pages_name_a_favicon(client, auth):
    auth.login("lee")
    assert 'rel="icon"' in client.get("/").get_data(as_text=True)
    assert client.get("/static/favicon.svg").status_code == 200
