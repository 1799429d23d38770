"""The serve command's gunicorn hook: a worker freezes the loaded app's objects out of the garbage
collector's walks and loads the search snapshots before any search."""
import gc
import logging
import threading
from types import SimpleNamespace

from supervising_ui.extensions import db
from supervising_ui.web import gunicorn_config

from ..helpers import add_images, make_project


def test_a_worker_warms_the_largest_projects_search_snapshots(app):
    with app.app_context():
        small = make_project("small")
        add_images(small, 3)
        large = make_project("large")
        add_images(large, 12, start=100)
        db.session.commit()
    gc.unfreeze()
    try:
        gunicorn_config.post_worker_init(SimpleNamespace(wsgi=app, log=logging.getLogger("test")))
        assert gc.get_freeze_count() > 0, "what was alive is frozen"
    finally:
        gc.unfreeze()  # this test process collects as before
    for thread in threading.enumerate():
        if thread.name == "warm-search":
            thread.join(timeout=60)
    held = app.extensions["search_snapshots"]
    assert list(held) == [large, small]
    assert held[large].size == 12 and held[large].generation >= 0
    assert held[small].size == 3


def test_a_failed_warm_up_is_logged_not_raised(caplog):
    with caplog.at_level(logging.ERROR):
        gunicorn_config.warm_search(object())  # not an app
    assert "could not warm the search snapshots" in caplog.text
