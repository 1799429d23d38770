"""Every image classified: the classify job after imports, the classify command, the admin page."""
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

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


# --------------------------------------------------------------------------- chunks over workers


def new_lacking_images(app, project_id: int, count: int) -> list[int]:
    """Store count generated images in the project (no prediction yet); return their ids."""
    from ..helpers import add_stored_images
    return add_stored_images(app, project_id, count)


def version_predictions(version_id: int) -> dict[int, tuple]:
    """image id -> (prediction id, class id, confidence) of the version."""
    rows = db.session.execute(select(Prediction.image_id, Prediction.id, Prediction.label_class_id,
                                     Prediction.confidence)
                              .where(Prediction.model_version_id == version_id)).all()
    return {row.image_id: (row.id, row.label_class_id, row.confidence) for row in rows}


@pytest.mark.parametrize("death", ["process gone on this host", "heartbeat stale elsewhere"])
def test_a_dead_workers_chunk_is_taken_again_and_no_prediction_is_written_twice(
        app, users, served_project, held_queue, monkeypatch, death):
    """Chunks of 3 of 8 new images; a worker claimed the first and died after storing two
    predictions of it: the classify job takes the chunk again, stores the rest once."""
    import subprocess
    import sys
    from datetime import timedelta

    from supervising_ui.jobs import queue as jobs
    from supervising_ui.jobs.runtime import host_identity
    from supervising_ui.learning import predictions
    from supervising_ui.models import utcnow
    app.config["CLASSIFY_CHUNK_IMAGES"] = 3
    with app.app_context():
        new_ids = new_lacking_images(app, served_project, 8)
        version = predictions.serving_version(served_project)
        version_id, path = version.id, version.path
        class_ids = classify._class_ids_in_model_order(version)
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        real_submit = classify._submit_chunk
        submitted, before = [], {}

        def submit_and_die(parent, version_id, ids_or_params):
            chunk_id = real_submit(parent, version_id, ids_or_params)
            if not submitted:  # another worker claims the first chunk, stores two, is killed
                same_host = death.startswith("process")
                db.session.execute(update(Job).where(Job.id == chunk_id).values(
                    state="running", started_at=utcnow(), worker_pid=dead.pid,
                    worker_host=host_identity() if same_host else "another-host",
                    heartbeat_at=utcnow() - timedelta(seconds=0 if same_host else 120)))
                db.session.commit()
                rows = db.session.execute(select(Image.id, Image.storage_key, Image.content_hash)
                                          .where(Image.id.in_(new_ids[:2]))).all()
                predictions.store_predictions(predictions.predictor_for(path), version_id, rows,
                                              class_ids)
                before.update(version_predictions(version_id))
            submitted.append(chunk_id)
            return chunk_id

        monkeypatch.setattr(classify, "_submit_chunk", submit_and_die)
        job = classify.request_classify(db.session.get(Project, served_project))
        assert job.state == "queued"
        jobs.run_job(job.id)
        assert len(before) == 32 + 2
        job = db.session.get(Job, job.id, populate_existing=True)
        assert job.state == "done", job.error
        assert job.result["predictions"] == 6, "the dead worker's two were not predicted again"
        chunk_jobs = db.session.scalars(select(Job).where(Job.kind == classify.CHUNK_KIND)
                                        .order_by(Job.id)).all()
        assert len(submitted) >= 3 and all(chunk.state == "done" for chunk in chunk_jobs
                                           if chunk.id in submitted[-3:])
        assert chunk_jobs[0].interruptions == 1 or len(submitted) == 4, "the dead chunk ran again"
        after = version_predictions(version_id)
        assert set(after) == set(before) | set(new_ids), "every image once"
        assert db.session.scalar(select(func.count(Prediction.id)).where(
            Prediction.model_version_id == version_id)) == 32 + 8
        assert {image: after[image] for image in before} == before, "stored rows untouched"
        assert "3 of 3 chunks done (8 of 8 images" in job.message

        # A chunk delivered twice (its worker died after storing) changes nothing.
        first = chunk_jobs[0].id
        db.session.execute(update(Job).where(Job.id == first).values(state="queued"))
        db.session.commit()
        jobs.run_job(first)
        assert db.session.get(Job, first, populate_existing=True).result["predictions"] == 0
        # Nor does storing the same images again.
        rows = db.session.execute(select(Image.id, Image.storage_key, Image.content_hash)
                                  .where(Image.id.in_(new_ids))).all()
        predictions.store_predictions(predictions.predictor_for(path), version_id, rows, class_ids)
        assert version_predictions(version_id) == after


def test_chunks_split_the_images_and_progress_counts_them(app, users, served_project):
    app.config["CLASSIFY_CHUNK_IMAGES"] = 4
    with app.app_context():
        new_lacking_images(app, served_project, 10)
        job = classify.request_classify(db.session.get(Project, served_project))
        assert job.state == "done", job.error
        assert job.result["predictions"] == 10 and job.progress == 1.0
        chunk_jobs = db.session.scalars(select(Job).where(Job.kind == classify.CHUNK_KIND)).all()
        assert sorted(chunk.params["images"] for chunk in chunk_jobs) == [2, 4, 4]
        assert all(chunk.params["parent"] == job.id and chunk.state == "done" for chunk in chunk_jobs)
        assert sum(chunk.result["predictions"] for chunk in chunk_jobs) == 10
        assert "3 of 3 chunks done (10 of 10 images, 1 worker)" in job.message
