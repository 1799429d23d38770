"""Reliability with real processes: `serve` killed with SIGKILL, PostgreSQL backends cut off.

Scenario "kill": `supervising-ui serve` (gunicorn and the job worker) runs in its own process
group while --labelers threads label through the JSON API with API tokens and a request_id
per decision; after --kill-after seconds the whole group gets SIGKILL and is started again.
The clients retry every request with the same request_id until it is answered (bounded in
time). Afterwards every acknowledged label must be stored once under its request_id, no
image may hold more labels than allowed, the label counts must match, and SQLite's
`PRAGMA integrity_check` must say ok.

Scenario "terminate" (PostgreSQL only): while the labelers work, every backend of the app is
ended with pg_terminate_backend, twice; the app must recover by itself (a request that meets
a dropped connection fails once and the pool is renewed; a connection idle for a while is
checked before use) and no request may fail more than once.

Then (PostgreSQL only), serve is started afresh, --vacuum-labels labels are stored, and with
the job worker idle `VACUUM (VERBOSE) image` must find no dead row it cannot remove yet.

Examples:
  .venv/bin/python benchmarks/reliability.py                       # SQLite
  .venv/bin/python benchmarks/reliability.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/scratch
Only traffic to 127.0.0.1; every loop is bounded in time. A PostgreSQL database should be a
scratch one: the script migrates it and deletes what it created at the end. Exit status 1
when a check fails.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import load  # noqa: E402  (the load benchmark's HTTP client, accounts and bulk rows)

ROOT = load.ROOT
# A client gives up on one request after retrying this long (the server restarts meanwhile).
RETRY_SECONDS = 90
RETRY_PAUSE_SECONDS = 0.2


def parse_args(argv=None):
    """Return the command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=None,
                        help="SQLAlchemy URL (default: SQLite in a temporary instance)")
    parser.add_argument("--labelers", type=int, default=16)
    parser.add_argument("--kill-after", type=float, default=6.0,
                        help="seconds of labeling before the SIGKILL")
    parser.add_argument("--after", type=float, default=6.0,
                        help="seconds of labeling once the restarted server answers")
    parser.add_argument("--terminate-at", default="3,6",
                        help="seconds into the terminate scenario at which backends are ended")
    parser.add_argument("--terminate-seconds", type=float, default=9.0)
    parser.add_argument("--vacuum-labels", type=int, default=1000,
                        help="labels stored before the VACUUM check (PostgreSQL)")
    parser.add_argument("--images", type=int, default=6000, help="images in the project")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=8, help="gunicorn threads per worker")
    parser.add_argument("--keep", action="store_true", help="keep the temporary instance")
    return parser.parse_args(argv)


# --- the server ------------------------------------------------------------------------------

class Server:
    """`supervising-ui serve` in a process group of its own, so one signal reaches all of it."""

    def __init__(self, env: dict, port: int, workers: int, threads: int, log_path: Path):
        self.env, self.port, self.log_path = env, port, log_path
        self.argv = [sys.executable, "-m", "supervising_ui.cli", "serve", "--host", "127.0.0.1",
                     "--port", str(port), "--workers", str(workers), "--threads", str(threads)]
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 120) -> float:
        """Start serve and wait until it answers; return the seconds that took."""
        started = time.monotonic()
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.argv, env=self.env, cwd=ROOT, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        while time.monotonic() - started < timeout:
            if self.process.poll() is not None:
                raise SystemExit(f"serve exited with {self.process.returncode}; see {self.log_path}")
            if answers(self.port):
                return time.monotonic() - started
            time.sleep(0.1)
        raise SystemExit(f"serve did not answer within {timeout} s; see {self.log_path}")

    def kill(self) -> None:
        """SIGKILL to the whole process group: serve, gunicorn's master and workers, the job worker."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(30)
        deadline = time.monotonic() + 30
        while group_alive(self.process.pid) and time.monotonic() < deadline:
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM to serve (it ends its children), SIGKILL to the group if that takes too long."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(45)
        except subprocess.TimeoutExpired:
            pass
        if group_alive(self.process.pid):
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def job_worker_pid(self) -> int | None:
        """The pid of serve's job worker, if it runs."""
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    command = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
                    parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, ValueError):
                    continue
                if parent == self.process.pid and command.endswith(b"supervising_ui.cli worker "):
                    return int(entry.name)
        return None


def answers(port: int) -> bool:
    """Whether the login page answers 200 on 127.0.0.1:port."""
    try:
        client = load.Client(port, None)
        status, _ = client.request("GET", "/login")
        client.close()
        return status == 200
    except (OSError, ValueError):
        return False


def group_alive(group: int) -> bool:
    """Whether any process of this process group is still there."""
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


# --- the labelers ----------------------------------------------------------------------------

@dataclass
class Decision:
    """One label decision and how its submission went."""

    image_id: int
    request_id: str
    failures: int = 0
    label_id: int | None = None
    status: int | None = None


@dataclass
class Labeler:
    """What one simulated labeler did."""

    decisions: list[Decision] = field(default_factory=list)
    failed_requests: int = 0  # of all requests (next and submit), each failed attempt
    next_failures: list[int] = field(default_factory=list)  # per GET next, failed attempts
    gave_up: int = 0
    exhausted: bool = False
    examples: list[str] = field(default_factory=list)


def retrying(client: load.Client, method: str, path: str, body: dict | None,
             record: Labeler, give_up_at: float) -> tuple[int | None, bytes, int]:
    """Send until answered below 500 (same body, so a submit keeps its request_id).

    Returns (status or None when given up, body, failed attempts).
    """
    failures = 0
    while time.monotonic() < give_up_at:
        try:
            status, answer = client.request(method, path, body)
        except (OSError, ValueError) as error:
            status, answer = None, repr(error).encode()
        if status is not None and status < 500:
            return status, answer, failures
        failures += 1
        record.failed_requests += 1
        if len(record.examples) < 3:
            record.examples.append(f"{method} {path.split('/')[-1]}: {status} {answer[:120]!r}")
        time.sleep(RETRY_PAUSE_SECONDS)
    record.gave_up += 1
    return None, b"", failures


def labeler_loop(port: int, token: str, project_id: int, stop: threading.Event,
                 classes: list[str], record: Labeler, seed: int) -> None:
    """Label until stop is set: GET next, then POST a label with a fresh request_id."""
    client = load.Client(port, token)
    while not stop.is_set():
        give_up_at = time.monotonic() + RETRY_SECONDS
        status, body, failures = retrying(client, "GET", f"/api/projects/{project_id}/next",
                                          None, record, give_up_at)
        record.next_failures.append(failures)
        if status == 204:
            record.exhausted = True
            return
        if status != 200:
            if status is not None and len(record.examples) < 3:
                record.examples.append(f"next {status} {body[:120]!r}")
            time.sleep(RETRY_PAUSE_SECONDS)
            continue
        image_id = json.loads(body)["image_id"]
        decision = Decision(image_id, f"rel-{seed}-{uuid.uuid4().hex}")
        record.decisions.append(decision)
        label = classes[(image_id + seed) % len(classes)]
        status, body, decision.failures = retrying(
            client, "POST", f"/api/images/{image_id}/labels",
            {"label": label, "request_id": decision.request_id, "seconds_spent": 1.0},
            record, give_up_at)
        decision.status = status
        if status in (200, 201):
            decision.label_id = json.loads(body)["id"]
        elif status is not None and len(record.examples) < 3:
            record.examples.append(f"submit {status} {body[:120]!r}")
    client.close()


class Crowd:
    """The labeler threads of one scenario."""

    def __init__(self, port: int, tokens: list[str], project_id: int, classes: list[str]):
        self.stop = threading.Event()
        self.records = [Labeler() for _ in tokens]
        self.threads = [threading.Thread(target=labeler_loop, daemon=True, args=(
            port, token, project_id, self.stop, classes, record, index))
            for index, (token, record) in enumerate(zip(tokens, self.records, strict=True))]

    def start(self) -> None:
        """Start labeling."""
        self.started = time.monotonic()
        for thread in self.threads:
            thread.start()

    def finish(self) -> float:
        """Stop after the requests in flight are answered; return the seconds labeled."""
        self.stop.set()
        for thread in self.threads:
            thread.join(RETRY_SECONDS + 30)
            if thread.is_alive():
                raise SystemExit("a labeler thread hung")
        return time.monotonic() - self.started

    def decisions(self) -> list[Decision]:
        """Every decision of every labeler."""
        return [decision for record in self.records for decision in record.decisions]


# --- checks ----------------------------------------------------------------------------------

def stored_labels(project_id: int) -> list[tuple]:
    """(id, image_id, user_id, request_id) of every label of the project."""
    from sqlalchemy import select

    from supervising_ui.extensions import db
    from supervising_ui.models import Label
    db.engine.dispose()  # the terminate scenario also ended this checker's pooled connections
    rows = db.session.execute(select(Label.id, Label.image_id, Label.user_id, Label.request_id)
                              .where(Label.project_id == project_id)).all()
    db.session.remove()
    return [tuple(row) for row in rows]


def count_mismatches(project_id: int) -> int:
    """Images whose label_count differs from the number of their labels."""
    from sqlalchemy import func, select

    from supervising_ui.extensions import db
    from supervising_ui.models import Image, Label
    counted = select(Label.image_id, func.count(Label.id).label("labels")).where(
        Label.project_id == project_id).group_by(Label.image_id).subquery()
    mismatches = db.session.scalar(select(func.count(Image.id)).select_from(Image).outerjoin(
        counted, counted.c.image_id == Image.id).where(
        Image.project_id == project_id,
        Image.label_count != func.coalesce(counted.c.labels, 0)))
    db.session.remove()
    return mismatches


def check_labels(decisions: list[Decision], project_id: int, labels_per_image: int) -> dict:
    """Compare what the server acknowledged with what the database holds."""
    stored = stored_labels(project_id)
    by_request = {row[3]: row for row in stored}
    acknowledged = [d for d in decisions if d.label_id is not None]
    lost = [d for d in acknowledged if d.request_id not in by_request
            or by_request[d.request_id][0] != d.label_id]
    per_request = Counter(row[3] for row in stored)
    per_image = Counter(row[1] for row in stored)
    per_user_image = Counter((row[2], row[1]) for row in stored)
    duplicates = (sum(n - 1 for n in per_request.values() if n > 1)
                  + sum(n - 1 for n in per_user_image.values() if n > 1))
    ours = {d.request_id for d in decisions}
    return {"acknowledged": len(acknowledged), "lost": len(lost), "duplicates": duplicates,
            "over_full": sum(1 for n in per_image.values() if n > labels_per_image),
            "stored_unacknowledged": sum(1 for row in stored if row[3] in ours
                                         and row[3] not in {d.request_id for d in acknowledged}),
            # Stored before the response was lost: the retry got the stored label back (200).
            "replayed_by_request_id": sum(1 for d in decisions if d.status == 200),
            "refused": sum(1 for d in decisions if d.status not in (200, 201, None)),
            "count_mismatches": count_mismatches(project_id), "stored": len(stored)}


def sqlite_integrity(path: Path) -> str:
    """PRAGMA integrity_check of a SQLite file ('ok' when sound)."""
    connection = sqlite3.connect(path)
    try:
        return ", ".join(row[0] for row in connection.execute("PRAGMA integrity_check"))
    finally:
        connection.close()


def failure_figures(crowd: Crowd) -> dict:
    """Failed attempts and the most any one request failed."""
    per_request = [d.failures for d in crowd.decisions()] + \
        [n for record in crowd.records for n in record.next_failures]
    return {"failed_attempts": sum(r.failed_requests for r in crowd.records),
            "requests_that_failed": sum(1 for n in per_request if n),
            "max_failures_per_request": max(per_request, default=0),
            "gave_up": sum(r.gave_up for r in crowd.records),
            "examples": [e for r in crowd.records for e in r.examples][:4]}


# --- PostgreSQL ------------------------------------------------------------------------------

def admin_connection(url: str):
    """An autocommit SQLAlchemy connection to the database (not one of the app's)."""
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool
    return create_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool).connect()


def terminate_app_backends(url: str) -> int:
    """pg_terminate_backend for every other backend of this database; return how many.

    This process's own pooled connections are among them: its pool starts afresh (the app
    checks only connections idle for a while, so a fresh pool spares the checks a failure).
    """
    from sqlalchemy import text

    from supervising_ui.extensions import db
    with admin_connection(url) as connection:
        ended = len(connection.execute(text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND backend_type = 'client backend'")).all())
    db.session.remove()
    db.engine.dispose()
    return ended


def vacuum_image(url: str) -> tuple[int, int, list[str]]:
    """VACUUM (VERBOSE) image: (dead rows not yet removable, rows removed, idle-in-transaction)."""
    from sqlalchemy import text
    notices = []
    with admin_connection(url) as connection:
        idle = [f"{row[0]} ({row[1]})" for row in connection.execute(text(
            "SELECT coalesce(application_name, ''), state FROM pg_stat_activity "
            "WHERE datname = current_database() AND state LIKE 'idle in transaction%'"))]
        raw = connection.connection.driver_connection
        raw.add_notice_handler(lambda diagnostic: notices.append(
            f"{diagnostic.message_primary or ''}\n{diagnostic.message_detail or ''}"))
        connection.execute(text("VACUUM (VERBOSE) image"))
    output = "\n".join(notices)
    # PostgreSQL 14+: "tuples: R removed, N remain, D are dead but not yet removable";
    # older: "D dead row versions cannot be removed yet".
    kept = re.findall(r"(\d+) are dead but not yet removable|(\d+) dead row versions cannot be "
                      r"removed yet", output)
    removed = re.findall(r"tuples: (\d+) removed|removed (\d+) row versions", output)
    if not kept:
        raise SystemExit(f"could not read VACUUM's report:\n{output}")
    return (sum(int(a or b) for a, b in kept), sum(int(a or b) for a, b in removed), idle)


# --- set-up and main -------------------------------------------------------------------------

def set_up(app, args, run_id: str) -> tuple[int, list[str], list[str]]:
    """Migrate, create labelers with tokens and a project of --images rows; return ids."""
    from supervising_ui import storage
    from supervising_ui.database import create_or_migrate
    create_or_migrate()
    data = load.synthetic_jpeg(1)
    info = storage.validate_image(data, app.config["MAX_IMAGE_PIXELS"])
    storage.store_bytes(app.config["IMAGE_STORE"], info.storage_key, data)
    project_id = load.create_project(f"reliability-{run_id}")
    load.insert_bulk_rows(project_id, args.images, {"storage_key": info.storage_key})
    tokens, _ = load.create_accounts(run_id, args.labelers)
    return project_id, tokens, load.CLASSES


def print_figures(name: str, figures: dict) -> None:
    """Print one scenario's figures as aligned lines."""
    print(f"\n{name}")
    for key, value in figures.items():
        if key == "examples":
            for example in value:
                print(f"  example failure: {example}")
        else:
            print(f"  {key:<28} {value:.2f}" if isinstance(value, float)
                  else f"  {key:<28} {value}")


def kill_scenario(server: Server, args, tokens, project_id, classes, sqlite_path) -> dict:
    """Label, SIGKILL the whole serve group, restart it, label on; check every label."""
    crowd = Crowd(server.port, tokens, project_id, classes)
    crowd.start()
    time.sleep(args.kill_after)
    before = sum(d.label_id is not None for d in crowd.decisions())
    killed_at = time.monotonic()
    server.kill()
    restart_seconds = server.start()
    outage = time.monotonic() - killed_at
    time.sleep(args.after)
    seconds = crowd.finish()
    figures = {"labelers": len(tokens), "seconds": seconds,
               "acknowledged_before_kill": before, "outage_seconds": outage,
               "restart_seconds": restart_seconds}
    figures |= check_labels(crowd.decisions(), project_id, 1)
    figures |= failure_figures(crowd)
    figures["labels_per_second"] = figures["acknowledged"] / seconds
    if sqlite_path is not None:
        figures["integrity_check"] = sqlite_integrity(sqlite_path)
        figures["job_queue_integrity_check"] = sqlite_integrity(sqlite_path.parent / "jobs.sqlite3")
    return figures


def terminate_scenario(server: Server, args, tokens, project_id, classes) -> dict:
    """Label while every app backend is terminated at the given moments; check every label."""
    crowd = Crowd(server.port, tokens, project_id, classes)
    moments = sorted(float(s) for s in args.terminate_at.split(",") if s)
    crowd.start()
    terminated = []
    for moment in moments:
        time.sleep(max(0.0, crowd.started + moment - time.monotonic()))
        terminated.append(terminate_app_backends(args.database_url))
    time.sleep(max(0.0, crowd.started + args.terminate_seconds - time.monotonic()))
    seconds = crowd.finish()
    figures = {"labelers": len(tokens), "seconds": seconds,
               "backends_terminated": "+".join(map(str, terminated))}
    figures |= check_labels(crowd.decisions(), project_id, 1)
    figures |= failure_figures(crowd)
    figures["labels_per_second"] = figures["acknowledged"] / seconds
    return figures


def top_up(server: Server, tokens, project_id, classes, wanted: int, limit_seconds=240) -> int:
    """Label until the project holds `wanted` labels (at most limit_seconds); return how many."""
    deadline = time.monotonic() + limit_seconds
    while len(stored_labels(project_id)) < wanted and time.monotonic() < deadline:
        crowd = Crowd(server.port, tokens, project_id, classes)
        crowd.start()
        time.sleep(5)
        crowd.finish()
        if all(record.exhausted for record in crowd.records):
            break  # every image has its labels: raise --images
    return len(stored_labels(project_id))


def verdict(figures: dict, strict_failures: bool) -> list[str]:
    """The checks a scenario failed."""
    problems = [f"{key} = {figures[key]}" for key in ("lost", "duplicates", "over_full",
                                                      "count_mismatches", "gave_up")
                if figures.get(key)]
    for key in ("integrity_check", "job_queue_integrity_check"):
        if key in figures and figures[key] != "ok":
            problems.append(f"{key}: {figures[key]}")
    if strict_failures and figures["max_failures_per_request"] > 1:
        problems.append(f"a request failed {figures['max_failures_per_request']} times")
    if not figures["acknowledged"]:
        problems.append("no label was acknowledged")
    return problems


def main(argv=None) -> int:
    """Run the scenarios, print their figures, return 0 when every check held."""
    args = parse_args(argv)
    postgres = bool(args.database_url and args.database_url.startswith("postgresql"))
    instance = Path(tempfile.mkdtemp(prefix="supervising_ui_reliability_"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPERVISING_UI_")}
    env.update(SUPERVISING_UI_INSTANCE=str(instance), SUPERVISING_UI_SECRET_KEY="reliability")
    if args.database_url:
        env["SUPERVISING_UI_DATABASE_URL"] = args.database_url
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    from supervising_ui import create_app
    from supervising_ui.extensions import db
    app = create_app()
    run_id = uuid.uuid4().hex[:6]
    sqlite_path = None if args.database_url else instance / "supervising_ui.sqlite3"
    with app.app_context():
        project_id, tokens, classes = set_up(app, args, run_id)
        db.session.remove()
        db.engine.dispose()  # this process holds no connection while the server runs
    backend = "PostgreSQL" if postgres else "SQLite"
    print(f"{backend}; serve with gunicorn gthread {args.workers}x{args.threads} and its job "
          f"worker; {args.labelers} labelers; {args.images} images; {os.cpu_count()} CPUs",
          flush=True)
    server = Server(env, load.free_port(), args.workers, args.threads, instance / "serve.log")
    problems = []
    try:
        server.start()
        with app.app_context():
            figures = kill_scenario(server, args, tokens, project_id, classes, sqlite_path)
        print_figures("kill -9 of the whole serve process group, restart, clients retry", figures)
        problems += [f"kill: {p}" for p in verdict(figures, strict_failures=False)]
        if postgres:
            with app.app_context():
                figures = terminate_scenario(server, args, tokens, project_id, classes)
            print_figures("pg_terminate_backend of every app connection, twice", figures)
            problems += [f"terminate: {p}" for p in verdict(figures, strict_failures=True)]
            # A fresh serve: its job worker starts before the labels whose dead rows VACUUM
            # must be able to remove (a snapshot it held from its start would keep them).
            server.stop()
            server.start()
            with app.app_context():
                before = len(stored_labels(project_id))
                stored = top_up(server, tokens, project_id, classes,
                                before + args.vacuum_labels) - before
            time.sleep(3)  # the labelers are gone; the job worker idles (polls once a second)
            kept, removed, idle = vacuum_image(args.database_url)
            print_figures("VACUUM (VERBOSE) image with the job worker idle", {
                "labels_since_serve_started": stored,
                "job_worker_running": server.job_worker_pid() is not None,
                "idle_in_transaction_backends": ", ".join(idle) or "none",
                "dead_rows_removed": removed, "dead_rows_not_yet_removable": kept})
            if kept:
                problems.append(f"vacuum: {kept} dead rows could not be removed yet")
            if stored < args.vacuum_labels:
                problems.append(f"vacuum: only {stored} labels stored")
    finally:
        server.stop()
        if postgres:
            with app.app_context():
                load.delete_created([project_id], run_id)
                db.session.remove()
                db.engine.dispose()
        if not args.keep:
            shutil.rmtree(instance, ignore_errors=True)
    print("\nall checks held" if not problems else "\nFAILED:\n  " + "\n  ".join(problems))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
