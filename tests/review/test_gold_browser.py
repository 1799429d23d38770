"""A real Chromium labels a project with gold images at gold_share 1: the gold images come
first, unannounced (the page says "random" and shows no answer), and their answers score
the labeler's gold accuracy; an admin makes the image under review gold from the queue."""
from supervising_ui.extensions import db
from supervising_ui.models import Image
from supervising_ui.review import agreement, gold

from ..browser import BROWSER_TEST, log_in
from ..helpers import add_stored_images, make_project, project_of
from ..labeling.test_labeling_browser import wait_for_new_image
from .helpers import vote

pytestmark = BROWSER_TEST


def test_gold_images_are_served_first_and_unannounced(app, users, live_server, browser):
    with app.app_context():
        project_id = make_project("mars", labels_per_image=1, gold_share=1.0)
        images = add_stored_images(app, project_id, 4)
        project = project_of(project_id)
        for image_id in images[:2]:
            gold.set_gold(project, image_id, "crater")
        gold_names = {db.session.get(Image, image_id).original_name for image_id in images[:2]}
    page = log_in(browser, live_server, "lee")
    page.goto(f"{live_server}/projects/{project_id}/label")
    page.wait_for_function("() => document.getElementById('filename').textContent !== ''")
    shown = [page.text_content("#filename")]
    assert page.text_content("#pick") == "(random)"
    assert "gold" not in page.content().lower()
    page.keyboard.press("1")  # crater: right
    page.keyboard.press("Enter")
    shown.append(wait_for_new_image(page, shown[0]))
    assert page.text_content("#pick") == "(random)"
    page.keyboard.press("3")  # other: wrong
    page.keyboard.press("Enter")
    shown.append(wait_for_new_image(page, shown[1]))
    assert set(shown[:2]) == gold_names and shown[2] not in gold_names
    with app.app_context():
        [row] = agreement.agreement_report(project_of(project_id))["labelers"]
        assert (row["gold_answered"], row["gold_accuracy"]) == (2, 0.5)
    assert page.script_errors == []


def test_an_admin_makes_the_image_under_review_gold(app, users, live_server, browser):
    with app.app_context():
        project_id = make_project("mars")
        [image_id] = add_stored_images(app, project_id, 1)
        vote(project_id, image_id, users["lee"], "crater")
        vote(project_id, image_id, users["liu"], "other")
    page = log_in(browser, live_server, "ada")
    page.goto(f"{live_server}/projects/{project_id}/review")
    page.wait_for_function("() => document.getElementById('why').textContent.startsWith('Image')")
    page.click("#make-gold")
    page.wait_for_function("() => document.getElementById('status').textContent.includes('gold')")
    with app.app_context():
        image = db.session.get(Image, image_id)
        assert image.gold_class_id == project_of(project_id).classes[2].id  # liu's, under review
    assert page.script_errors == []
