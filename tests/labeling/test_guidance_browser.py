"""A real Chromium on what guides a labeler: the field guide ("?"), "unsure" with a comment
("N"), the model page's confusion matrix opening the search, the groups page keeping the
search's class and threshold, and stepping through results on the detail page."""
from supervising_ui.extensions import db
from supervising_ui.models import LabelClass, ModelVersion, Skip

from ..browser import BROWSER_TEST, log_in
from ..helpers import add_serving_model, add_stored_images, make_project

pytestmark = BROWSER_TEST


def test_field_guide_and_unsure_from_the_keyboard(app, users, live_server, browser):
    with app.app_context():
        project_id = make_project("mars")
        add_stored_images(app, project_id, 3)
        crater = db.session.query(LabelClass).filter_by(project_id=project_id, name="crater").one()
        crater.description = "A round pit with a raised rim."
        db.session.commit()
    page = log_in(browser, live_server, "lee")
    page.goto(f"{live_server}/projects/{project_id}/label")
    page.wait_for_function("() => document.getElementById('filename').textContent !== ''")
    assert "random order" in page.text_content("#pick-reason")

    page.keyboard.press("?")
    page.wait_for_selector("#guide[open]")
    assert "A round pit with a raised rim." in page.text_content("#guide")
    page.keyboard.press("1")  # a class key does nothing while the guide is open
    assert page.locator(".class-button.selected").count() == 0
    page.keyboard.press("Escape")
    page.wait_for_selector("#guide:not([open])", state="attached")

    first = page.text_content("#filename")
    assert not page.is_visible("#unsure-form"), "the comment box shows only after N"
    page.keyboard.press("n")
    page.wait_for_selector("#unsure-form:not([hidden])")
    page.keyboard.type("a crater or a pit?")
    page.keyboard.press("Enter")
    page.wait_for_function("previous => document.getElementById('filename').textContent !== previous",
                           arg=first)
    assert "Put off as unsure" in page.text_content("#message")
    assert not page.is_visible("#unsure-form")
    with app.app_context():
        skip = db.session.query(Skip).one()
        assert skip.unsure and skip.comment == "a crater or a pit?" and skip.user_id == users["lee"]
    assert page.script_errors == []


def test_confusion_cells_open_the_search_and_groups_keep_the_filters(app, users, live_server,
                                                                    browser):
    classes = ["crater", "dark_dune", "other"]
    with app.app_context():
        project_id = make_project("mars", group_column="source_id")
        ids = add_stored_images(app, project_id, 6)
        version_id = add_serving_model(project_id, {
            image_id: [0.95 if c == k % 3 else 0.025 for c in range(3)]
            for k, image_id in enumerate(ids)})
        version = db.session.get(ModelVersion, version_id)
        version.metrics = {"held_out_accuracy": 0.75, "held_out_count": 4, "classes": classes,
                           "confusion_matrix": [[2, 1, 0], [0, 1, 0], [0, 0, 0]],
                           "per_class": {"crater": {"precision": 1.0, "recall": 2 / 3, "support": 3},
                                         "dark_dune": {"precision": 0.5, "recall": 1.0, "support": 1},
                                         "other": {"precision": None, "recall": None, "support": 0}}}
        db.session.commit()
    page = log_in(browser, live_server, "ada")
    page.goto(f"{live_server}/projects/{project_id}/models")
    assert "too few images to judge" in page.text_content("body")
    page.click("#confusion a:text('1')")
    page.wait_for_selector("#summary")
    assert "label=crater" in page.url and "predicted=dark_dune" in page.url
    assert "min_confidence=0" in page.url

    page.goto(f"{live_server}/projects/{project_id}/search?class=crater&min_confidence=0.8")
    page.wait_for_selector("#grid .result")
    page.click("#groups-link")
    page.wait_for_selector("#group-rows tr")
    assert "class=crater" in page.url and "min_confidence=0.8" in page.url
    assert page.input_value("#group-class") == "crater"

    page.goto(f"{live_server}/projects/{project_id}/search?sort=filename&min_confidence=")
    page.wait_for_selector("#grid .result")
    page.click("#grid .result >> nth=0")
    page.wait_for_selector("#detail-canvas")
    first = page.text_content("h1")
    page.keyboard.press("ArrowRight")
    page.wait_for_function("previous => document.querySelector('h1').textContent !== previous",
                           arg=first)
    assert page.is_visible("#previous-image") and "sort=filename" in page.url
    assert page.script_errors == []


def test_an_admin_cancels_a_queued_retrain_on_the_model_page(app, users, live_server, browser,
                                                             held_queue):
    from supervising_ui.jobs import queue as jobs
    from supervising_ui.models import Job
    with app.app_context():
        project_id = make_project("mars")
        job_id = jobs.submit("retrain", project_id, {"kind": "quick"}).id
    page = log_in(browser, live_server, "ada")
    page.goto(f"{live_server}/projects/{project_id}/models")
    page.click(f"button.cancel-job[data-job-id='{job_id}']")
    page.wait_for_selector(f"tr.job[data-job-id='{job_id}'][data-state='failed']")
    assert "cancelled by an admin before it started" in page.text_content(
        f"tr.job[data-job-id='{job_id}']")
    assert page.locator("button.cancel-job").count() == 0
    with app.app_context():
        assert db.session.get(Job, job_id).state == "failed"
    assert page.script_errors == []
