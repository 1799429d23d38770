"""Retraining: consensus labels, held-out split, training runs, the better-model rule,
predictions in batches, triggers, the retrain/job API, the CLI and the model page."""
import builtins
import io
import json
import math
import os
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image as PILImage
from sqlalchemy import event, func, select

from supervising_ui import images
from supervising_ui.accounts.users import create_api_token
from supervising_ui.consensus import consensus_labels
from supervising_ui.extensions import db
from supervising_ui.jobs import minutely
from supervising_ui.jobs import queue as jobs
from supervising_ui.learning import dataset, report, triggers
from supervising_ui.models import (
    Image,
    Job,
    Label,
    LabelClass,
    ModelVersion,
    Prediction,
    Project,
    User,
    utcnow,
)

from ..helpers import IMAGE_COUNT, LOOP_CLASSES, add_labels, make_stored_project


@pytest.fixture
def loop_app(app, embedding_cache):
    app.config["CACHE_DIR"] = embedding_cache
    return app


@pytest.fixture
def labeled_project(loop_app, users):
    """A project of 32 images, 24 labeled by 'lee'; returns its id."""
    with loop_app.app_context():
        project_id = make_stored_project(loop_app)
        add_labels(project_id, users["lee"], 24)
        return project_id


# --------------------------------------------------------------------------- data


def test_consensus_takes_the_majority_and_drops_ties(loop_app, users):
    with loop_app.app_context():
        project_id = make_stored_project(loop_app, count=4)
        project = db.session.get(Project, project_id)
        bright, dark = (c.id for c in project.classes)
        first, second, third, fourth = db.session.scalars(select(Image.id).order_by(Image.id)).all()
        votes = [(first, users["ada"], bright), (first, users["lee"], bright), (first, users["liu"], dark),
                 (second, users["ada"], bright), (second, users["lee"], dark),
                 (third, users["liu"], dark)]
        for image_id, user_id, class_id in votes:
            db.session.add(Label(project_id=project_id, image_id=image_id, user_id=user_id,
                                 label_class_id=class_id))
        db.session.commit()
        assert consensus_labels(project.id) == {first: "bright", third: "dark"}
        assert fourth not in consensus_labels(project.id)


def test_holdout_is_by_group_and_stable_as_labels_grow(loop_app, users):
    with loop_app.app_context():
        project_id = make_stored_project(loop_app)
        project = db.session.get(Project, project_id)
        add_labels(project_id, users["lee"], 24)
        train, held_out, how = dataset.holdout_split(project_id, dataset.labeled_images(project))
        assert how == "by group" and held_out and train
        assert not {e.group for e in train} & {e.group for e in held_out}
        add_labels(project_id, users["lee"])
        train2, held_out2, _ = dataset.holdout_split(project_id, dataset.labeled_images(project))
        assert {e.image_id for e in held_out} <= {e.image_id for e in held_out2}
        assert {e.image_id for e in train} <= {e.image_id for e in train2}


def test_holdout_falls_back_to_images_without_groups(loop_app, users):
    with loop_app.app_context():
        project_id = make_stored_project(loop_app, count=12, group_column=None)
        add_labels(project_id, users["lee"])
        examples = dataset.labeled_images(db.session.get(Project, project_id))
        train, held_out, how = dataset.holdout_split(project_id, examples)
        assert how == "by image" and len(train) + len(held_out) == 12 and held_out


def test_too_few_labels_fail_with_a_clear_error(loop_app, users):
    with loop_app.app_context():
        project_id = make_stored_project(loop_app, count=12)
        add_labels(project_id, users["lee"], 6)
        job = triggers.request_retrain(db.session.get(Project, project_id))
        assert job.state == "failed"
        assert job.error == ("need at least 10 labeled images in at least 2 classes to train "
                             "(have 6 in 2 classes)")
        assert db.session.scalar(select(func.count(ModelVersion.id))) == 0


def test_unknown_kind_is_refused(loop_app, labeled_project):
    with loop_app.app_context(), pytest.raises(dataset.RetrainError, match="unknown retrain kind"):
        triggers.request_retrain(db.session.get(Project, labeled_project), "deep")


# --------------------------------------------------------------------------- training runs


def test_quick_retrain_stores_version_metrics_plots_and_predictions(loop_app, labeled_project,
                                                                    monkeypatch):
    monkeypatch.setattr("supervising_ui.learning.predictions.WRITE_BATCH", 7)
    inserts = []

    def count_inserts(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("INSERT INTO PREDICTION"):
            inserts.append(len(parameters) if executemany else 1)

    with loop_app.app_context():
        event.listen(db.engine, "before_cursor_execute", count_inserts)
        try:
            job = triggers.request_retrain(db.session.get(Project, labeled_project))
        finally:
            event.remove(db.engine, "before_cursor_execute", count_inserts)
        assert job.state == "done", job.error
        version = db.session.get(ModelVersion, job.model_version_id)
        assert version.version == 1 and version.kind == "quick" and version.is_serving
        assert version.num_labels == 24
        metrics = version.metrics
        assert metrics["held_out_count"] + metrics["train_count"] == 24
        assert metrics["held_out_by"] == "by group"
        assert metrics["held_out_accuracy"] >= 0.8  # the generated classes are easy
        assert set(metrics["per_class"]) == set(LOOP_CLASSES)
        assert len(metrics["confusion_matrix"]) == 2 and metrics["threshold_curve"]
        assert metrics["compared_with_version"] is None and metrics["promoted"]
        for name in report.PLOT_FILES:
            assert (Path(version.path) / name).stat().st_size > 1000
        predictions = db.session.scalars(select(Prediction).where(
            Prediction.model_version_id == version.id)).all()
        assert len(predictions) == IMAGE_COUNT
        assert inserts == [7] * (IMAGE_COUNT // 7) + [IMAGE_COUNT % 7]  # 500-row batches in production
        names = {c.id: c.name for c in db.session.scalars(select(LabelClass))}
        for prediction in predictions:
            probabilities = prediction.probabilities
            assert sum(probabilities.values()) == pytest.approx(1.0, abs=1e-4)
            ordered = sorted(probabilities.values(), reverse=True)
            assert prediction.confidence == pytest.approx(ordered[0], abs=1e-5)
            assert prediction.margin == pytest.approx(ordered[0] - ordered[1], abs=1e-5)
            assert prediction.entropy == pytest.approx(
                -sum(p * math.log(p) for p in ordered if p > 0), abs=1e-4)
            assert names[prediction.label_class_id] == max(probabilities, key=probabilities.get)
        correct = sum(names[p.label_class_id] == db.session.get(Image, p.image_id).meta["truth"]
                      for p in predictions)
        assert correct >= 0.8 * IMAGE_COUNT
        assert "serves now" in job.log and job.result["serving"] is True


def test_a_quick_retrain_on_cached_embeddings_opens_no_image_file(loop_app, labeled_project,
                                                                  monkeypatch):
    """The stored content hash keys the embedding cache: no file is read to hash or decode it."""
    with loop_app.app_context():
        project = db.session.get(Project, labeled_project)
        first = triggers.request_retrain(project)  # fills the cache (and serves v1)
        assert first.state == "done", first.error
        store = Path(loop_app.config["IMAGE_STORE"]).resolve()
        opened = []

        def watched(real_open):
            def guarded(file, *args, **kwargs):
                if isinstance(file, (str, os.PathLike)) and store in Path(file).resolve().parents:
                    opened.append(str(file))
                return real_open(file, *args, **kwargs)
            return guarded

        def refuse(*args, **kwargs):
            opened.append(f"decoded {args[:1]}")
            raise AssertionError("an image was decoded")

        with monkeypatch.context() as patch:
            patch.setattr(builtins, "open", watched(builtins.open))
            patch.setattr(io, "open", watched(io.open))  # pathlib opens through io.open
            patch.setattr(PILImage, "open", refuse)
            patch.setattr(images, "open_file", refuse)
            second = triggers.request_retrain(project)
        assert second.state == "done", second.error
        assert opened == []
        version = db.session.get(ModelVersion, second.model_version_id)
        assert version.metrics["compared_with_version"] == 1, "the serving model was compared too"
        assert db.session.scalar(select(func.count(Prediction.id)).where(
            Prediction.model_version_id == version.id)) == IMAGE_COUNT


def test_the_better_model_serves(loop_app, labeled_project, users):
    with loop_app.app_context():
        project = db.session.get(Project, labeled_project)
        first = triggers.request_retrain(project, epochs=30)
        assert first.state == "done", first.error
        # A candidate trained on wrong labels (training images only) loses on the same held-out set.
        db.session.execute(Label.__table__.delete())
        db.session.commit()
        add_labels(labeled_project, users["lee"], 24,
                   flip=lambda image: not dataset.is_held_out(
                       labeled_project, f"group:{image.meta['source_id']}"))
        worse = triggers.request_retrain(project, epochs=30)
        assert worse.state == "done", worse.error
        worse_version = db.session.get(ModelVersion, worse.model_version_id)
        assert not worse_version.is_serving
        assert worse_version.metrics["compared_with_version"] == 1
        assert worse_version.metrics["compared_accuracy"] > worse_version.metrics["held_out_accuracy"]
        assert db.session.get(ModelVersion, first.model_version_id).is_serving
        assert "does not serve: v1 scored" in worse.log
        # Right labels again: at least as good as v1 on the same images, so v3 serves.
        db.session.execute(Label.__table__.delete())
        db.session.commit()
        add_labels(labeled_project, users["lee"], 24)
        better = triggers.request_retrain(project, epochs=30)
        serving = db.session.scalars(select(ModelVersion).where(ModelVersion.is_serving)).all()
        assert [v.id for v in serving] == [better.model_version_id]
        # v1 no longer serves and is not among the two latest: its predictions are pruned.
        kept = db.session.scalars(select(Prediction.model_version_id).distinct()).all()
        assert sorted(kept) == sorted([worse.model_version_id, better.model_version_id])


def test_finetune_kind_trains_the_whole_network(loop_app, users):
    with loop_app.app_context():
        project_id = make_stored_project(loop_app, count=12)  # small: a CPU fine-tune is slow
        add_labels(project_id, users["lee"])
        job = triggers.request_retrain(db.session.get(Project, project_id), "finetune",
                                         epochs=1, tta_views=1)
        assert job.state == "done", job.error
        version = db.session.get(ModelVersion, job.model_version_id)
        assert version.kind == "finetune" and version.is_serving
        assert (Path(version.path) / "model.pt").stat().st_size > 1_000_000  # backbone too
        assert db.session.scalar(select(func.count(Prediction.id))) == 12


def test_retrain_device_setting_reaches_training(loop_app, users, monkeypatch):
    """RETRAIN_DEVICE is where the job worker trains; one that torch cannot use fails the job."""
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    loop_app.config["RETRAIN_DEVICE"] = "cuda"
    with loop_app.app_context():
        project_id = make_stored_project(loop_app, count=12)
        add_labels(project_id, users["lee"])
        job = triggers.request_retrain(db.session.get(Project, project_id), "quick")
        assert job.state == "failed" and "no CUDA device is available" in job.error
        loop_app.config["RETRAIN_DEVICE"] = "auto"
        job = triggers.request_retrain(db.session.get(Project, project_id), "quick")
        assert job.state == "done", job.error
        version = db.session.get(ModelVersion, job.model_version_id)
        assert json.loads((Path(version.path) / "metrics.json").read_text())["device"] == "cpu"


def test_quick_retrain_trains_the_last_block_by_default(loop_app, users):
    loop_app.config["RETRAIN_TOP_BLOCKS"] = None  # the default: 1 for efficientnet_lite0
    with loop_app.app_context():
        project_id = make_stored_project(loop_app, count=16)
        add_labels(project_id, users["lee"])
        job = triggers.request_retrain(db.session.get(Project, project_id), "quick")
        assert job.state == "done", job.error
        version = db.session.get(ModelVersion, job.model_version_id)
        config = json.loads((Path(version.path) / "config.json").read_text())
        assert config["train_config"]["top_blocks"] == 1 and version.is_serving
        assert db.session.scalar(select(func.count(Prediction.id)).where(
            Prediction.model_version_id == version.id)) == 16
        loop_app.config["RETRAIN_TOP_BLOCKS"] = 17
        job = triggers.request_retrain(db.session.get(Project, project_id), "quick")
        assert job.state == "failed" and "top_blocks of efficientnet_lite0 must be 0 to 16" in job.error


def test_a_colour_project_retrains_on_colour_and_predicts_with_it(loop_app, users):
    """project.color_input reaches training; the model keeps its input for every prediction."""
    from supervising_ui.ml import load_model
    with loop_app.app_context():
        project_id = make_stored_project(loop_app, count=12)
        project = db.session.get(Project, project_id)
        project.color_input = True
        db.session.commit()
        add_labels(project_id, users["lee"])
        for kind, stretch in (("quick", "color"), ("finetune", "color")):
            job = triggers.request_retrain(db.session.get(Project, project_id), kind,
                                           epochs=1, tta_views=1)
            assert job.state == "done", job.error
            version = db.session.get(ModelVersion, job.model_version_id)
            assert load_model(version.path)[1].preprocessing.stretch == stretch
            assert db.session.scalar(select(func.count(Prediction.id)).where(
                Prediction.model_version_id == version.id)) == 12
        project = db.session.get(Project, project_id)
        project.color_input = False
        db.session.commit()
        job = triggers.request_retrain(project, "quick", epochs=1, tta_views=1)
        assert job.state == "done", job.error
        version = db.session.get(ModelVersion, job.model_version_id)
        assert load_model(version.path)[1].preprocessing.stretch == "mixed"


# --------------------------------------------------------------------------- triggers


def test_automatic_retrain_after_every_n_labels(loop_app, users, monkeypatch):
    runs = []
    monkeypatch.setitem(jobs.HANDLERS, "retrain", lambda job, reporter: runs.append(job.params) or {})
    with loop_app.app_context():
        project_id = make_stored_project(loop_app, count=20)
        project = db.session.get(Project, project_id)
        add_labels(project_id, users["lee"], 5)
        assert triggers.maybe_trigger_retrain(project) is None, "off while retrain_every is 0"
        project.retrain_every = 8
        db.session.commit()
        assert triggers.maybe_trigger_retrain(project) is None
        add_labels(project_id, users["lee"], 3)
        job = triggers.maybe_trigger_retrain(project)
        assert job is not None and job.state == "done"
        assert runs == [{"kind": "quick", "trigger": "labels"}]
        add_labels(project_id, users["lee"], 7)
        assert triggers.maybe_trigger_retrain(project) is None, "7 labels since the last run"
        add_labels(project_id, users["liu"], 1)
        assert triggers.maybe_trigger_retrain(project) is not None
        assert len(runs) == 2


def test_idle_project_with_enough_new_labels_gets_one_fine_tune(loop_app, users, monkeypatch):
    runs = []
    monkeypatch.setitem(jobs.HANDLERS, "retrain", lambda job, reporter: runs.append(job.params) or {})
    loop_app.config.update(FINETUNE_WHEN_IDLE_MINUTES=30, FINETUNE_MIN_NEW_LABELS=12,
                           RETRAIN_MIN_LABELS=10)
    with loop_app.app_context():
        project_id = make_stored_project(loop_app, count=30)
        add_labels(project_id, users["lee"], 11)
        quiet = utcnow() + timedelta(minutes=31)
        assert triggers.queue_idle_finetunes(quiet) == [], "11 labels, 12 needed"
        add_labels(project_id, users["lee"], 1)
        assert triggers.queue_idle_finetunes(utcnow() + timedelta(minutes=29)) == [], "not idle yet"
        assert [job.project_id for job in triggers.queue_idle_finetunes(quiet)] == [project_id]
        assert runs == [{"kind": "finetune", "trigger": "idle"}]
        assert triggers.queue_idle_finetunes(quiet) == [], "no new label since that fine-tune"
        add_labels(project_id, users["liu"], 11)
        assert triggers.queue_idle_finetunes(utcnow() + timedelta(minutes=31)) == []
        add_labels(project_id, users["liu"], 1)
        loop_app.config["FINETUNE_WHEN_IDLE_MINUTES"] = 0
        assert triggers.queue_idle_finetunes(utcnow() + timedelta(days=1)) == [], "switched off"
        loop_app.config["FINETUNE_WHEN_IDLE_MINUTES"] = 30
        assert len(triggers.queue_idle_finetunes(utcnow() + timedelta(minutes=31))) == 1
        assert len(runs) == 2


def test_idle_fine_tune_waits_for_a_running_retrain(loop_app, users, held_queue):
    loop_app.config.update(FINETUNE_WHEN_IDLE_MINUTES=30, FINETUNE_MIN_NEW_LABELS=12)
    with loop_app.app_context():
        project_id = make_stored_project(loop_app, count=20)
        add_labels(project_id, users["lee"], 12)
        quick = triggers.request_retrain(db.session.get(Project, project_id), "quick")
        assert quick.state == "queued"
        assert triggers.queue_idle_finetunes(utcnow() + timedelta(hours=1)) == []
        assert db.session.scalar(select(func.count(Job.id))) == 1


def test_worker_minutely_task_runs_the_registered_checks(loop_app, monkeypatch):
    assert triggers.queue_idle_finetunes in minutely.CHECKS
    calls = []

    def broken():
        raise RuntimeError("a check that fails")

    monkeypatch.setattr(minutely, "CHECKS", [broken, lambda: calls.append(1)])
    loop_app.extensions["minutely"].call_local()
    assert calls == [1], "a failing check does not stop the next one"
    # The worker's consumer (periodic=True) queues whatever read_periodic returns each minute.
    due = loop_app.extensions["huey"].read_periodic(datetime(2026, 11, 26, 18, 41))
    assert [task.name for task in due] == ["minutely"]


def test_automatic_trigger_waits_for_a_running_retrain(loop_app, users, held_queue):
    with loop_app.app_context():
        project_id = make_stored_project(loop_app, count=12)
        project = db.session.get(Project, project_id)
        project.retrain_every = 2
        db.session.commit()
        add_labels(project_id, users["lee"], 2)
        queued = triggers.maybe_trigger_retrain(project)
        assert queued.state == "queued"
        add_labels(project_id, users["liu"], 4)
        assert triggers.maybe_trigger_retrain(project) is None
        assert db.session.scalar(select(func.count(Job.id))) == 1


# --------------------------------------------------------------------------- API and CLI


def test_retrain_api_refuses_anonymous_and_labelers(app, client, auth, labeled_project, held_queue):
    assert client.post(f"/api/projects/{labeled_project}/retrain").status_code == 401
    auth.login("lee")
    response = client.post(f"/api/projects/{labeled_project}/retrain",
                           headers={"X-CSRFToken": auth.csrf_token})
    assert response.status_code == 403
    with app.app_context():
        token = create_api_token(db.session.get(User, 2))
    response = client.post(f"/api/projects/{labeled_project}/retrain",
                           headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403
    assert held_queue == []


def test_retrain_api_with_token_202_then_409(app, client, users, labeled_project, held_queue):
    with app.app_context():
        token = create_api_token(db.session.get(User, users["ada"]))
    headers = {"Authorization": f"Bearer {token}"}
    response = client.post(f"/api/projects/{labeled_project}/retrain", headers=headers,
                           json={"kind": "quick"})
    assert response.status_code == 202
    job_id = response.json["job_id"]
    assert response.headers["Location"].endswith(f"/api/jobs/{job_id}")
    again = client.post(f"/api/projects/{labeled_project}/retrain", headers=headers)
    assert again.status_code == 409 and again.json["job_id"] == job_id
    status = client.get(f"/api/jobs/{job_id}", headers=headers).json
    assert {"state", "progress", "error", "model_version"} <= set(status)
    assert status["state"] == "queued" and status["progress"] == 0 and status["model_version"] is None
    assert client.post("/api/projects/999/retrain", headers=headers).status_code == 404
    assert client.get("/api/jobs/999", headers=headers).status_code == 404


def test_retrain_api_bad_input_is_400(client, auth, labeled_project, held_queue):
    auth.login("ada")
    headers = {"X-CSRFToken": auth.csrf_token}
    response = client.post(f"/api/projects/{labeled_project}/retrain", json={"kind": "deep"},
                           headers=headers)
    assert response.status_code == 400 and "unknown retrain kind" in response.json["error"]
    response = client.post(f"/api/projects/{labeled_project}/retrain", json={"epochs": "many"},
                           headers=headers)
    assert response.status_code == 400 and "epochs must be a whole number" in response.json["error"]
    response = client.post(f"/api/projects/{labeled_project}/retrain", json={"tta_views": 9},
                           headers=headers)
    assert response.status_code == 400
    assert held_queue == []


def test_retrain_api_runs_the_job_and_reports_the_model_version(client, auth, labeled_project):
    auth.login("ada")
    response = client.post(f"/api/projects/{labeled_project}/retrain",
                           headers={"X-CSRFToken": auth.csrf_token})
    assert response.status_code == 202
    status = client.get(f"/api/jobs/{response.json['job_id']}").json
    assert status["state"] == "done" and status["progress"] == 1.0
    assert status["model_version"] == 1 and status["error"] is None
    assert "serves now" in status["log"]


def test_cli_retrain_waits_and_prints_progress(loop_app, runner, labeled_project):
    result = runner.invoke(args=["retrain", "mars", "--wait"])
    assert result.exit_code == 0, result.output
    assert "Queued quick retrain job 1 of 'mars'." in result.output
    assert "done 100.0%" in result.output and "model version 1" in result.output
    busy = runner.invoke(args=["retrain", "nowhere"])
    assert busy.exit_code == 1 and "no project called 'nowhere'" in busy.output


def test_cli_retrain_reports_a_failed_job(loop_app, runner, users):
    with loop_app.app_context():
        make_stored_project(loop_app, count=4)
    result = runner.invoke(args=["retrain", "mars", "--wait"])
    assert result.exit_code == 1 and "need at least 10 labeled images" in result.output


# --------------------------------------------------------------------------- model page


def test_model_page_for_labelers_and_admins(app, client, auth, labeled_project):
    auth.login("lee")
    page = client.get(f"/projects/{labeled_project}/models")
    assert page.status_code == 200
    assert b"No model serves suggestions yet" in page.data and b"Retrain now" not in page.data
    assert client.get("/projects/999/models").status_code == 404
    auth.logout()
    auth.login("ada")
    page = client.get(f"/projects/{labeled_project}/models")
    assert b"Retrain now" in page.data
    response = client.post(f"/projects/{labeled_project}/models/retrain",
                           data={"csrf_token": auth.csrf_token, "kind": "quick"})
    assert response.status_code == 302
    html = client.get(f"/projects/{labeled_project}/models").get_data(as_text=True)
    assert "Retrain job 1 queued." in html
    assert "Suggestions come from <strong>v1</strong>" in html
    assert "Per-class precision and recall" in html and "Confusion matrix" in html
    assert "<polyline" in html and 'data-state="done"' in html
    with app.app_context():
        version_id = db.session.scalar(select(ModelVersion.id))
    plot = client.get(f"/projects/{labeled_project}/models/{version_id}/threshold.png")
    assert plot.status_code == 200 and plot.mimetype == "image/png"
    assert client.get(f"/projects/{labeled_project}/models/{version_id}/config.json").status_code == 404
    assert client.get(f"/projects/{labeled_project}/models/{version_id}/..%2Fmodel.pt").status_code == 404
    assert client.get(f"/projects/{labeled_project + 1}/models/{version_id}/threshold.png").status_code == 404


def test_model_page_shows_failed_job_error_and_suggestion_acceptance(app, client, auth, users):
    with app.app_context():
        project_id = make_stored_project(app, count=4)
        project = db.session.get(Project, project_id)
        triggers.request_retrain(project)  # fails: too few labels
        bright, dark = (c.id for c in project.classes)
        version = ModelVersion(project_id=project_id, version=1, kind="quick", path="/nowhere",
                               metrics={}, is_serving=True)
        db.session.add(version)
        db.session.flush()
        image_ids = db.session.scalars(select(Image.id).order_by(Image.id)).all()
        for image_id, chosen in zip(image_ids, (bright, bright, dark), strict=False):
            db.session.add(Label(project_id=project_id, image_id=image_id, user_id=users["lee"],
                                 label_class_id=chosen, suggestion_shown=True,
                                 suggested_class_id=bright, suggestion_model_version_id=version.id))
        db.session.commit()
        assert retraining_acceptance(project_id) == [
            {"version": 1, "shown": 3, "accepted": 2, "rate": pytest.approx(2 / 3)}]
    auth.login("ada")
    html = client.get(f"/projects/{project_id}/models").get_data(as_text=True)
    assert "need at least 10 labeled images" in html and 'data-state="failed"' in html
    assert "66.7%" in html


def retraining_acceptance(project_id):
    from supervising_ui.learning.report import suggestion_acceptance
    return suggestion_acceptance(project_id)



def test_quick_retrain_uses_mixed_channels_and_its_temperature_everywhere(loop_app, labeled_project):
    """The quick model keeps albedo (mixed); stored predictions use the model's temperature."""
    import torch

    from supervising_ui import storage
    from supervising_ui.learning.predictions import embedding_cache_dir, predict_project
    from supervising_ui.ml import Record, load_model
    from supervising_ui.ml.predict import proba_from_model
    with loop_app.app_context():
        job = triggers.request_retrain(db.session.get(Project, labeled_project))
        assert job.state == "done", job.error
        version = db.session.get(ModelVersion, job.model_version_id)
        model, info = load_model(version.path)
        assert info.preprocessing.stretch == "mixed"
        calibration = version.metrics["calibration"]
        assert calibration["n"] == version.metrics["held_out_count"] < 50
        # A handful of held-out images fit no temperature: T stays 1 rather than near 0.
        assert calibration["skipped"] and info.temperature == calibration["temperature"] == 1.0

        # As if a temperature had been fitted: predict the project again through the app's path.
        weights = Path(version.path) / "model.pt"
        state = torch.load(weights, weights_only=True)
        torch.save(dict(state, temperature=0.5), weights)
        db.session.execute(Prediction.__table__.delete().where(
            Prediction.model_version_id == version.id))
        db.session.commit()
        predict_project(version)
        model, info = load_model(version.path)
        prediction = db.session.scalars(select(Prediction).where(
            Prediction.model_version_id == version.id).order_by(Prediction.image_id)).first()
        image = db.session.get(Image, prediction.image_id)
        record = Record(str(storage.path_for_key(loop_app.config["IMAGE_STORE"], image.storage_key)),
                        content_hash=image.content_hash)
        scaled = proba_from_model(model, info.config, [record], cache_dir=embedding_cache_dir())[0]
        raw = proba_from_model(model, dict(info.config, temperature=1.0), [record],
                               cache_dir=embedding_cache_dir())[0]
        stored = [prediction.probabilities[name] for name in info.classes]
        assert info.temperature == 0.5
        assert stored == pytest.approx(list(scaled), abs=1e-5)
        assert stored != pytest.approx(list(raw), abs=1e-4)


def test_a_retrain_names_its_steps_and_the_time_they_have_left():
    from supervising_ui.learning import retrain
    assert retrain.step_message("embed", 0, 40, since=100.0, now=100.0) == "embedding images 0/40"
    assert retrain.step_message("embed", 10, 40, since=100.0, now=102.0) == \
        "embedding images 10/40", "no estimate in a stage's first seconds"
    assert retrain.step_message("embed", 10, 40, since=100.0, now=104.0) == \
        "embedding images 10/40, about 12 s left"
    assert retrain.step_message("fit", 3, 60, since=0.0, now=30.0) == \
        "training, epoch 3/60, about 570 s left"
    seen = []

    class Reporter:
        def progress(self, fraction, message):
            seen.append((round(fraction, 3), message))

    report = retrain._stage_progress(Reporter(), 0.0, 1.0, "training", every_seconds=0)
    report("predict", 5, 10)
    assert seen == [(0.5, "training: predicting images 5/10")]
