"""A real Chromium on the search page: tick a facet, move the slider, open an image."""

from supervising_ui.extensions import db
from supervising_ui.models import Label, LabelClass

from ..browser import BROWSER_TEST, log_in
from ..helpers import add_serving_model, add_stored_images, make_project

pytestmark = BROWSER_TEST


def summary_count(page) -> int:
    """Return the number of matches the summary line shows."""
    text = page.text_content("#summary")
    return 0 if text.startswith("No image") else int(text.split()[0])


def wait_for_summary_change(page, previous: str) -> str:
    """Wait until the summary line differs from previous; return it."""
    page.wait_for_function(
        "previous => { const text = document.getElementById('summary').textContent;"
        " return text && text !== previous && text !== 'Searching…'; }", arg=previous)
    return page.text_content("#summary")


def test_facet_slider_and_detail(app, users, live_server, browser):  # noqa: F811
    with app.app_context():
        project_id = make_project("mars", group_column="source_id")
        ids = add_stored_images(app, project_id, 9, meta={"instrument": "HiRISE"})
        # Image k: class k % 3, confident (0.95) on even k, unsure (0.6) on odd k.
        add_serving_model(project_id, {
            image_id: [(0.95 if k % 2 == 0 else 0.6) if c == k % 3 else
                       (0.025 if k % 2 == 0 else 0.2) for c in range(3)]
            for k, image_id in enumerate(ids)})
        crater = db.session.query(LabelClass).filter_by(project_id=project_id, name="crater").one()
        db.session.add(Label(project_id=project_id, image_id=ids[1], user_id=users["lee"],
                             label_class_id=crater.id))
        db.session.commit()
    page = log_in(browser, live_server, "lee")
    page.click(f"a[href='/projects/{project_id}/search']")
    page.wait_for_selector("#grid .result")
    assert "min_confidence=0.9" in page.url  # the page's default threshold is in the URL
    confident = page.text_content("#summary")
    # Five confident predictions (k = 0, 2, 4, 6, 8) and the human label on image 1.
    assert summary_count(page) == 6 and page.locator("#grid .result").count() == 6

    page.fill("#min-confidence", "0.5")
    everything = wait_for_summary_change(page, confident)
    assert summary_count(page) == 9 and page.locator("#grid .result").count() == 9
    assert "min_confidence=0.5" in page.url
    crater_count = page.text_content(".facet[data-facet=class] label:has-text('crater') .count")
    assert crater_count == "4"  # k = 0, 3, 6 predicted, and image 1 labeled crater

    page.check(".facet[data-facet=class] input[value=crater]")
    wait_for_summary_change(page, everything)
    assert summary_count(page) == 4 and page.locator("#grid .result").count() == 4
    assert "class=crater" in page.url
    # The class facet keeps its siblings' counts; the status facet narrows to craters.
    assert page.text_content(".facet[data-facet=class] label:has-text('dark_dune') .count") == "2"  # k = 4, 7
    assert page.text_content(".facet[data-facet=status] label:has-text('labeled') .count") == "1"
    page.wait_for_function("Array.from(document.querySelectorAll('#grid img'))"
                           ".every(img => img.complete && img.naturalWidth > 0)")

    name = page.text_content("#grid .result .filename")
    page.click("#grid .result")
    page.wait_for_selector("#detail-canvas")
    assert page.text_content("h1") == name
    assert "crater" in page.text_content("#detail-class")
    page.wait_for_function("document.getElementById('detail-canvas').width === 64")
    assert page.script_errors == [], "the detail's stretch (static/stretch.js) ran cleanly"
    page.click("#back-to-search")
    page.wait_for_selector("#grid .result")
    assert summary_count(page) == 4
