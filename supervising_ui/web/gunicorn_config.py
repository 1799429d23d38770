"""Gunicorn settings of `supervising-ui serve` (``--config python:supervising_ui.gunicorn_config``).

Once a worker has loaded the app it freezes what is alive then (gc.freeze), and loads the
search snapshots of the largest projects in a background thread, so the first search after a
start does not pay for it (seconds at a million images). Gunicorn reads only the names below
that are its settings.

Gunicorn decides by itself whether a connection stays open and drops the app's own
``Connection`` header; an answer that leaves a body unread (a 413) says ``Connection: close``,
so the worker's app is wrapped to make gunicorn close such a connection as it says, instead
of announcing keep-alive and then dropping it (or reading the refused body to skip it).
"""
import gc
import logging
import threading
import time

log = logging.getLogger(__name__)
# The gunicorn request each worker thread is serving (set by pre_request).
_serving = threading.local()


def pre_request(worker, req) -> None:
    """Remember the request this thread serves, so that the app's answer can close it."""
    _serving.request = req


class CloseWhenAsked:
    """WSGI middleware: when the app answers ``Connection: close``, make gunicorn close."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        """Run the app; force gunicorn to close the connection if its headers ask for it."""
        def start(status, headers, exc_info=None):
            if any(name.lower() == "connection" and value.strip().lower() == "close"
                   for name, value in headers):
                request = getattr(_serving, "request", None)
                if request is not None:
                    request.force_close()
            return start_response(status, headers, exc_info)
        return self.app(environ, start)


def post_worker_init(worker) -> None:
    """Freeze the loaded app's objects; start warming the search snapshots in a thread.

    A full garbage collection walks every object it tracks while all of the worker's threads
    wait: about 130,000 after the app is loaded, 51 ms here, a pause that the requests in
    flight took as latency. Frozen, they are left out of every later collection (0.02 ms).
    """
    gc.freeze()
    threading.Thread(target=warm_search, args=(worker.wsgi, worker.log), name="warm-search",
                     daemon=True).start()
    worker.wsgi = CloseWhenAsked(worker.wsgi)


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
