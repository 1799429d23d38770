"""A real Chromium labels with the keyboard against the app served on 127.0.0.1."""
import io

import pandas as pd

from supervising_ui.extensions import db
from supervising_ui.models import Skip
from supervising_ui.projects import export

from ..browser import BROWSER_TEST, log_in
from ..helpers import add_stored_images, make_project, project_of

pytestmark = BROWSER_TEST


def shown_file(page):
    return page.text_content("#filename")


def wait_for_new_image(page, previous):
    """Wait until the page shows an image other than previous; return its file name."""
    page.wait_for_function(
        "previous => { const name = document.getElementById('filename').textContent;"
        " return name && name !== previous; }", arg=previous)
    return shown_file(page)


def test_label_with_keys_later_undo_and_export(app, users, live_server, browser):
    with app.app_context():
        project_id = make_project("mars", labels_per_image=1)
        add_stored_images(app, project_id, 4, meta={"sol": 7})
    page = log_in(browser, live_server, "lee")
    page.click(f"a[href='/projects/{project_id}/label']")
    page.wait_for_function("() => document.getElementById('filename').textContent !== ''")
    assert "sol" in page.text_content("#metadata")
    assert page.evaluate("document.getElementById('canvas').width") == 64

    first = shown_file(page)
    page.keyboard.press("1")  # crater
    assert "selected" in page.get_attribute(".class-button[data-name=crater]", "class")
    page.keyboard.press("Enter")
    second = wait_for_new_image(page, first)

    page.keyboard.press("l")  # Later
    third = wait_for_new_image(page, second)

    page.keyboard.press("2")  # dark_dune
    page.keyboard.press("Enter")
    fourth = wait_for_new_image(page, third)

    page.keyboard.press("u")  # undo: the third image comes back with its label selected
    assert wait_for_new_image(page, fourth) == third
    page.wait_for_selector(".class-button[data-name=dark_dune].selected")
    page.keyboard.press("3")  # change it to other
    page.keyboard.press("Enter")
    wait_for_new_image(page, third)
    page.wait_for_function("() => document.getElementById('mine-today').textContent === '2'")
    page.keyboard.press("s")
    assert page.is_checked("#stretch")
    assert page.script_errors == [], "the stretch (static/stretch.js) ran without errors"

    with app.app_context():
        labels = export.labels_frame(project_of(project_id))
        skipped = db.session.query(Skip).count()
    assert sorted(zip(labels["filename"], labels["label"], strict=True)) == sorted([(first, "crater"),
                                                                       (third, "other")])
    assert set(labels["labeler"]) == {"lee"} and (labels["seconds_spent"] > 0).all()
    assert skipped == 1

    admin = log_in(browser, live_server, "ada")
    download = admin.request.get(
        f"{live_server}/admin/projects/{project_id}/export?kind=manifest&format=csv")
    assert download.status == 200
    manifest = pd.read_csv(io.StringIO(download.text()))
    assert sorted(manifest["filename"]) == sorted([first, third])
    assert set(manifest["sol"]) == {7}
