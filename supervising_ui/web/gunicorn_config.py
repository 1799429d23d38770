"""Gunicorn settings of `supervising-ui serve` (``--config python:supervising_ui.gunicorn_config``).

Once a worker has loaded the app it freezes what is alive then (gc.freeze), and loads the
search snapshots of the largest projects in a background thread, so the first search after a
start does not pay for it (seconds at a million images). Gunicorn reads only the names below
that are its settings.
"""
import gc
import logging
import threading
import time

log = logging.getLogger(__name__)


def post_worker_init(worker) -> None:
    """Freeze the loaded app's objects; start warming the search snapshots in a thread.

    A full garbage collection walks every object it tracks while all of the worker's threads
    wait: about 130,000 after the app is loaded, 51 ms here, a pause that the requests in
    flight took as latency. Frozen, they are left out of every later collection (0.02 ms).
    """
    gc.freeze()
    threading.Thread(target=warm_search, args=(worker.wsgi, worker.log), name="warm-search",
                     daemon=True).start()


def warm_search(app, logger=log) -> None:
    """Load the largest projects' search snapshots in app; log (never raise) a failure."""
    from ..search import service
    started = time.perf_counter()
    try:
        with app.app_context():
            warmed = service.warm_snapshots()
    except Exception:  # the first search loads what this could not: never stop the worker
        logger.exception("could not warm the search snapshots")
        return
    if warmed:
        logger.info("search snapshots of projects %s loaded in %.1f s", warmed,
                 time.perf_counter() - started)
