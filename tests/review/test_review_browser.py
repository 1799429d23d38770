"""A real Chromium on the review page: accept (A), fix (a class key) and reject (R, with a
reason) from the keyboard, each stored as a review."""
from sqlalchemy import select

from supervising_ui.extensions import db
from supervising_ui.models import Image, Label, Review

from ..browser import BROWSER_TEST, log_in
from ..helpers import add_stored_images, make_project
from .helpers import make_reviewer, vote

pytestmark = BROWSER_TEST


def test_accept_fix_and_reject_from_the_keyboard(app, users, live_server, browser):
    with app.app_context():
        project_id = make_project("mars")
        images = add_stored_images(app, project_id, 3)
        for image in images:  # three images whose two labels disagree: the queue's first step
            vote(project_id, image, users["lee"], "crater")
            vote(project_id, image, users["liu"], "other")
        make_reviewer()
    page = log_in(browser, live_server, "rae")
    page.goto(f"{live_server}/projects/{project_id}/review")

    def shown(image_id):
        page.wait_for_function("id => document.getElementById('why').textContent.startsWith(`Image ${id}:`)",
                               arg=image_id)

    shown(images[0])
    assert "← under review" in page.text_content("#labels")
    page.keyboard.press("a")
    shown(images[1])
    page.keyboard.press("2")  # the second class: dark_dune
    shown(images[2])
    page.keyboard.press("r")
    page.wait_for_selector("#reject-form:not([hidden])")
    page.keyboard.type("not a crater: a shadow")
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.getElementById('why').textContent.startsWith('Nothing to review')")
    with app.app_context():
        reviews = db.session.scalars(select(Review).order_by(Review.id)).all()
        assert [(r.image_id, r.decision) for r in reviews] == [
            (images[0], "accept"), (images[1], "fix"), (images[2], "reject")]
        classes = {c.id: c.name for c in db.session.get(Image, images[0]).project.classes}
        # Accept took the label under review (the latest: liu's "other"); fix the key's class.
        assert classes[reviews[0].label_class_id] == "other"
        assert classes[reviews[1].label_class_id] == "dark_dune"
        assert reviews[2].reason == "not a crater: a shadow"
        assert db.session.scalar(select(Label.id).where(
            Label.image_id == images[2], Label.user_id == users["liu"])) is None
    assert page.script_errors == []
