"""Every image classified: the classify job after imports, the classify command, the admin page."""
from pathlib import Path

import pytest
from sqlalchemy import func, select

from supervising_ui.extensions import db
from supervising_ui.importing import uploads
from supervising_ui.learning import classify, triggers
from supervising_ui.models import Image, Job, LabelClass, ModelVersion, Prediction, Project

from ..helpers import LOOP_CLASSES, add_labels, generated_png, make_stored_project

NEW_IMAGES = 6


@pytest.fixture
def served_project(app, users, embedding_cache):
    """A project of 32 generated images, 24 labeled, with a quick model serving; returns its id."""
    app.config["CACHE_DIR"] = embedding_cache
    with app.app_context():
        project_id = make_stored_project(app)
        add_labels(project_id, users["lee"], 24)
        job = triggers.request_retrain(db.session.get(Project, project_id))
        assert job.state == "done", job.error
        return project_id


def write_new_images(folder, count=NEW_IMAGES) -> list[str]:
    """Write generated PNGs (bright and dark, unlike the project's) into folder; return names."""
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for index in range(count):
        name = f"new_{index:02d}.png"
        (folder / name).write_bytes(generated_png(LOOP_CLASSES[index % 2], 500 + index))
        names.append(name)
    return names


def serving_predictions(project_id: int) -> dict[str, str]:
    """Map file name -> predicted class of the serving version, for the project's images."""
    rows = db.session.execute(
        select(Image.original_name, LabelClass.name)
        .join(Prediction, Prediction.image_id == Image.id)
        .join(ModelVersion, ModelVersion.id == Prediction.model_version_id)
        .join(LabelClass, LabelClass.id == Prediction.label_class_id)
        .where(Image.project_id == project_id, ModelVersion.is_serving.is_(True))).all()
    return dict(rows)


def test_an_import_job_queues_a_classify_job_and_search_shows_the_classes(
        app, client, auth, users, served_project):
    names = write_new_images(Path(app.config["IMPORT_ROOT"]) / "new")
    with app.app_context():
        project = db.session.get(Project, served_project)
        job = uploads.submit_server_import(project, "new", "", users["ada"])
        assert job.state == "done", job.error
        assert job.result["report"]["added"] == NEW_IMAGES
        classify_job = db.session.scalar(select(Job).where(Job.kind == "classify"))
        assert classify_job.state == "done", classify_job.error
        assert classify_job.params == {"trigger": "import", "added": NEW_IMAGES}
        assert classify_job.result["predictions"] == NEW_IMAGES and classify_job.progress == 1.0
        assert classify_job.result["summary"] == f"model v1 classified {NEW_IMAGES} images"
        predicted = serving_predictions(served_project)
        assert set(names) <= set(predicted) and len(predicted) == 32 + NEW_IMAGES
        # The generated classes are easy: the model gets the new images right.
        assert sum(predicted[name] == LOOP_CLASSES[i % 2] for i, name in enumerate(names)) >= 5
    auth.login()
    answer = client.get(f"/api/projects/{served_project}/search?q=new_&per_page=50").get_json()
    assert answer["total"] == NEW_IMAGES
    for item in answer["items"]:
        assert item["predicted"] == predicted[item["filename"]] == item["class"]
        assert item["model_version"] == 1 and item["label"] is None
        assert 0.5 <= item["confidence"] == item["class_confidence"] <= 1.0
    assert sum(answer["facets"]["predicted"].values()) == NEW_IMAGES
    page = client.get(f"/admin/projects/{served_project}").get_data(as_text=True)
    assert "Classification of new images" in page
    assert f"model v1 classified {NEW_IMAGES} images" in page


def test_no_classify_job_without_a_serving_model_or_new_images(app, users, served_project):
    write_new_images(Path(app.config["IMPORT_ROOT"]) / "new", 2)
    with app.app_context():
        other = make_stored_project(app, name="unserved", count=4)
        job = uploads.submit_server_import(db.session.get(Project, other), "new", "", users["ada"])
        assert job.state == "done" and job.result["report"]["added"] == 2
        assert classify.classify_new_images(served_project, 0) is None
        assert db.session.scalar(select(func.count()).select_from(Job).where(
            Job.kind == "classify")) == 0


def test_console_import_classifies_the_new_images(app, runner, served_project, tmp_path):
    names = write_new_images(tmp_path / "incoming")
    result = runner.invoke(args=["import", "mars", "--dir", str(tmp_path / "incoming")])
    assert result.exit_code == 0, result.output
    assert f"added {NEW_IMAGES} images" in result.output
    assert f"done: model v1 classified {NEW_IMAGES} images" in result.output
    with app.app_context():
        assert set(names) <= set(serving_predictions(served_project))


def test_classify_command_predicts_what_lacks_a_prediction(app, runner, served_project):
    with app.app_context():
        version_id = db.session.scalar(select(ModelVersion.id).where(ModelVersion.is_serving))
        lost = db.session.scalars(select(Prediction).where(
            Prediction.model_version_id == version_id).order_by(Prediction.id).limit(5)).all()
        lost_ids = {prediction.image_id for prediction in lost}
        for prediction in lost:
            db.session.delete(prediction)
        db.session.commit()
    result = runner.invoke(args=["classify", "mars", "--wait"])
    assert result.exit_code == 0, result.output
    assert "model v1 predicts 5 images lacking its predictions" in result.output
    assert "done: model v1 classified 5 images" in result.output
    with app.app_context():
        assert lost_ids <= set(db.session.scalars(select(Prediction.image_id).where(
            Prediction.model_version_id == version_id)))
    again = runner.invoke(args=["classify", "mars"])
    assert again.exit_code == 0 and "nothing to classify" in again.output


def test_classify_command_refuses_a_project_without_a_model(app, runner):
    with app.app_context():
        make_stored_project(app, name="fresh", count=2)
    result = runner.invoke(args=["classify", "fresh"])
    assert result.exit_code == 1
    assert "no model serves project 'fresh': retrain it first" in result.output
    assert "no project called 'nope'" in runner.invoke(args=["classify", "nope"]).output


def test_a_model_whose_class_is_gone_fails_the_job_with_a_reason(app, users, served_project):
    with app.app_context():
        dark = db.session.scalar(select(LabelClass).where(LabelClass.name == "dark"))
        dark.name = "shadow"
        db.session.execute(Prediction.__table__.delete())
        db.session.commit()
        job = classify.request_classify(db.session.get(Project, served_project))
        assert job.state == "failed"
        assert "predicts classes the project no longer has (dark): retrain" in job.error
