"""No transaction stays open across a retrain's long work (PostgreSQL): training and prediction
run with the worker's connection idle, so VACUUM can remove what labelers change meanwhile."""
import threading
import time

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from supervising_ui.extensions import db
from supervising_ui.learning import triggers
from supervising_ui.models import Project

from ..conftest import TEST_DATABASE_URL
from ..helpers import add_labels, make_stored_project

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    not TEST_DATABASE_URL, reason="pg_stat_activity is PostgreSQL's: set "
                                  "SUPERVISING_UI_TEST_DATABASE_URL")]
# Longest a backend of the app may sit "idle in transaction" (seconds).
LONGEST_IDLE_IN_TRANSACTION = 1.0


class IdleInTransactionWatch:
    """Polls pg_stat_activity from a connection of its own while a retrain runs."""

    def __init__(self, url: str, every_seconds: float = 0.1):
        self.engine = create_engine(url, poolclass=NullPool)
        self.every_seconds = every_seconds
        self.samples = 0
        self.longest = 0.0
        self.worst = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(10)
        self.engine.dispose()

    def _poll(self) -> None:
        with self.engine.connect() as connection:
            while not self._stop.is_set():
                rows = connection.execute(text(
                    "SELECT extract(epoch FROM clock_timestamp() - state_change), query "
                    "FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%'")).all()
                connection.commit()  # each poll sees the activity of now
                self.samples += 1
                for seconds, query in rows:
                    if float(seconds) > self.longest:
                        self.longest, self.worst = float(seconds), query
                self._stop.wait(self.every_seconds)


@pytest.mark.parametrize("params", [{"kind": "quick"},
                                    {"kind": "finetune", "epochs": 2, "tta_views": 1}])
def test_a_retrain_keeps_no_transaction_open_while_it_works(app, users, embedding_cache, params):
    app.config["CACHE_DIR"] = embedding_cache
    with app.app_context():
        project_id = make_stored_project(app)
        add_labels(project_id, users["lee"], 24)
        project = db.session.get(Project, project_id)
        db.session.commit()
        with IdleInTransactionWatch(TEST_DATABASE_URL) as watch:
            started = time.monotonic()
            job = triggers.request_retrain(project, params["kind"], epochs=params.get("epochs"),
                                           tta_views=params.get("tta_views"))
            seconds = time.monotonic() - started
        assert job.state == "done", job.error
    print(f"{params['kind']} retrain: {seconds:.1f} s, {watch.samples} samples, longest idle in "
          f"transaction {watch.longest:.2f} s")
    assert seconds > 2 * LONGEST_IDLE_IN_TRANSACTION and watch.samples >= 10, \
        "the retrain ran long enough to tell"
    assert watch.longest <= LONGEST_IDLE_IN_TRANSACTION, \
        f"a backend sat idle in transaction {watch.longest:.1f} s after: {watch.worst}"
