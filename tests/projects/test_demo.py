"""First run: the page an admin of an empty instance lands on, and the demo with its quick model."""
import pytest
from sqlalchemy import func, select

from supervising_ui.extensions import db
from supervising_ui.models import Image, Label, ModelVersion, Prediction, Project, User
from supervising_ui.projects import demo

from ..conftest import csrf_token_from

DEMO_IMAGES = 60
DEMO_LABELS = 36


def check_demo_model(app, labeler_name: str) -> None:
    """The demo project serves a quick model with a prediction for every image."""
    with app.app_context():
        project = db.session.scalar(select(Project).where(Project.name == demo.DEMO_PROJECT))
        serving = db.session.scalar(select(ModelVersion).where(
            ModelVersion.project_id == project.id, ModelVersion.is_serving.is_(True)))
        assert serving is not None and serving.kind == "quick"
        predicted = set(db.session.scalars(select(Prediction.image_id).where(
            Prediction.model_version_id == serving.id)))
        images = set(db.session.scalars(select(Image.id).where(Image.project_id == project.id)))
        assert len(images) == DEMO_IMAGES and predicted == images
        labelers = db.session.execute(select(User.username, func.count(Label.id))
                                      .join(Label, Label.user_id == User.id)
                                      .group_by(User.username)).all()
        assert labelers == [(labeler_name, DEMO_LABELS)]
        assert serving.metrics["held_out_accuracy"] >= 0.5  # the generated kinds are easy


def test_an_admin_without_projects_lands_on_the_first_run_page(client, auth):
    auth.login()
    page = client.get("/").get_data(as_text=True)
    assert "This instance has no project yet" in page
    assert 'href="/admin/"' in page and 'action="/demo"' in page and "Load the demo" in page
    auth.logout()
    auth.login("lee")
    page = client.get("/").get_data(as_text=True)
    assert "No projects yet" in page and "Load the demo" not in page


def test_loading_the_demo_needs_an_admin_and_a_csrf_token(app, client, auth):
    auth.login("lee")
    assert client.post("/demo", data={"csrf_token": auth.csrf_token}).status_code == 403
    auth.logout()
    auth.login()
    assert client.post("/demo").status_code == 400
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Project)) == 0


@pytest.mark.slow
def test_the_first_run_page_loads_the_demo_with_a_serving_model(app, client, auth,
                                                               embedding_cache):
    app.config["CACHE_DIR"] = embedding_cache
    auth.login()
    token = csrf_token_from(client.get("/").get_data(as_text=True))
    response = client.post("/demo", data={"csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"].endswith("/")
    home = client.get("/").get_data(as_text=True)
    assert demo.DEMO_PROJECT in home and "A quick model is training (job 1)" in home
    check_demo_model(app, "ada")
    with app.app_context():
        project_id = db.session.scalar(select(Project.id))
    answer = client.get(f"/api/projects/{project_id}/search?status=unlabeled").get_json()
    assert answer["total"] == DEMO_IMAGES - DEMO_LABELS
    assert all(item["predicted"] and item["model_version"] == 1 for item in answer["items"])
    assert client.get(f"/projects/{project_id}/models").status_code == 200
    following = client.get(f"/api/projects/{project_id}/next").get_json()
    assert following["suggestion"] is None or following["suggestion"]["model_version"] == 1


@pytest.mark.slow
def test_the_demo_command_trains_a_quick_model_once(app, runner, embedding_cache):
    app.config["CACHE_DIR"] = embedding_cache
    result = runner.invoke(args=["demo"])
    assert result.exit_code == 0, result.output
    assert f"added {DEMO_IMAGES} images ({DEMO_LABELS} labels)" in result.output
    assert "Trained quick model v1 on the labeled demo images" in result.output
    assert f"it predicted all {DEMO_IMAGES} images" in result.output
    check_demo_model(app, "admin")
    again = runner.invoke(args=["demo"])
    assert again.exit_code == 0 and "Model v1 serves the demo already." in again.output
