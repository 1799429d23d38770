"""Faults answered cleanly (issue 30): the same faults on SQLite and PostgreSQL, side by side.

Each database runs `supervising-ui serve` (gunicorn and its job worker) on 127.0.0.1 with a
project of --images distinct images (HiRISE crops where ../shared/data/hirise is present,
generated ones otherwise), and --labelers threads that label through the JSON API with API
tokens, a request_id per decision and a short pause between labels; a request answered 5xx
or cut off is sent again (same request_id) until answered, and every status is counted.

1. retrain: a quick retrain, then a fine-tune (--finetune-epochs, one view), while the
   labelers label. On PostgreSQL, once the job trains, VACUUM (VERBOSE) of the image and
   label tables reports the dead rows it cannot remove yet, and pg_stat_activity is sampled
   all along for the longest "idle in transaction" of the job worker's connections.
2. terminate (PostgreSQL): three rounds of pg_terminate_backend on every connection of the
   app under load: responses 500 and 503 (with Retry-After), lost labels.
3. disk full: an import of --import-files files whose storage writes fail with ENOSPC after
   --disk-full-after files (the storage write is patched in this script's process, which runs
   the import as the console command does): files in managed storage that no row names, the
   import's report, and the labelers' statuses afterwards.
4. kill: the job worker gets SIGKILL a second into a quick retrain's run; serve starts a new
   worker, which must run the retrain again to the end with no operator action; a second
   retrain whose worker is killed twice must fail with the reason.

Each database runs in a child process of this script (--run-one), which prints its figures as
one JSON line; the parent prints every figure side by side. Exit status 1 when a check fails.

  .venv/bin/python benchmarks/faults.py --database-url sqlite \\
      --database-url postgresql+psycopg://postgres@127.0.0.1:5432/scratch
Only traffic to 127.0.0.1. A PostgreSQL database should be a scratch one: the script migrates
it and deletes what it created at the end.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import load  # noqa: E402  (accounts, projects of distinct images, the HTTP client)
import reliability  # noqa: E402  (serve in a process group, label checks, PostgreSQL helpers)

ROOT = load.ROOT
RETRY_SECONDS = 90
JOB_DEADLINE_SECONDS = 900  # a fine-tune on 2 busy cores
FIGURES_MARK = "FIGURES "


def parse_args(argv=None):
    """Return the command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", action="append", default=None,
                        help="'sqlite' (a file in a temporary instance) or a PostgreSQL URL; "
                             "repeat to run several side by side (default: sqlite)")
    parser.add_argument("--labelers", type=int, default=8)
    parser.add_argument("--think-ms", type=float, default=2000.0,
                        help="pause between a labeler's labels")
    parser.add_argument("--images", type=int, default=600)
    parser.add_argument("--labels-before", type=int, default=120,
                        help="labels stored before the first retrain")
    parser.add_argument("--finetune-epochs", type=int, default=2)
    parser.add_argument("--terminate-rounds", type=int, default=3)
    parser.add_argument("--import-files", type=int, default=60)
    parser.add_argument("--disk-full-after", type=int, default=40)
    parser.add_argument("--import-batch", type=int, default=25,
                        help="import batch size (rows committed per batch)")
    parser.add_argument("--run-one", default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# --- labelers that count every status ---------------------------------------------------------

class Tally:
    """What the labelers of one scenario saw."""

    def __init__(self):
        self.statuses: Counter = Counter()
        self.cut_off = 0  # requests that got no answer (the connection broke)
        self.without_retry_after = 0  # 503s with no Retry-After header
        self.decisions: list[reliability.Decision] = []
        self.lock = threading.Lock()

    def note(self, status: int | None, headers: dict) -> None:
        """Count one answer (None: no answer)."""
        with self.lock:
            if status is None:
                self.cut_off += 1
                return
            self.statuses[status] += 1
            if status == 503 and "retry-after" not in headers:
                self.without_retry_after += 1


def send(client: load.Client, tally: Tally, method: str, path: str, body=None):
    """Send until answered below 500 (the same body: a submit keeps its request_id)."""
    give_up_at = time.monotonic() + RETRY_SECONDS
    while time.monotonic() < give_up_at:
        try:
            status, answer = client.request(method, path, body)
            tally.note(status, client.last_headers)
        except (OSError, ValueError):
            status, answer = None, b""
            tally.note(None, {})
        if status is not None and status < 500:
            return status, answer
        time.sleep(0.2)
    return None, b""


def labeler(port, token, project_id, stop, tally: Tally, seed: int, think: float) -> None:
    """Label until stop is set: next, a pause, then a label with a fresh request_id."""
    client = load.Client(port, token)
    while not stop.is_set():
        status, body = send(client, tally, "GET", f"/api/projects/{project_id}/next")
        if status != 200:
            time.sleep(0.5)
            continue
        image_id = json.loads(body)["image_id"]
        time.sleep(think)
        decision = reliability.Decision(image_id, f"faults-{seed}-{uuid.uuid4().hex}")
        with tally.lock:
            tally.decisions.append(decision)
        label = load.CLASSES[image_id % 2]  # every labeler agrees: each image has a consensus
        decision.status, body = send(client, tally, "POST", f"/api/images/{image_id}/labels",
                                     {"label": label, "request_id": decision.request_id,
                                      "seconds_spent": 1.0})
        if decision.status in (200, 201):
            decision.label_id = json.loads(body)["id"]
    client.close()


class Crowd:
    """The labeler threads of one scenario."""

    def __init__(self, port, tokens, project_id, think: float):
        self.stop, self.tally = threading.Event(), Tally()
        self.threads = [threading.Thread(target=labeler, daemon=True, args=(
            port, token, project_id, self.stop, self.tally, index, think))
            for index, token in enumerate(tokens)]

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self.tally

    def __exit__(self, *exc):
        self.stop.set()
        for thread in self.threads:
            thread.join(RETRY_SECONDS + 30)


def answered(tally: Tally, project_id: int, labels_per_image: int) -> dict:
    """The labelers' statuses and the label checks of reliability.py."""
    checks = reliability.check_labels(tally.decisions, project_id, labels_per_image)
    return {"labels acknowledged": checks["acknowledged"], "labels lost": checks["lost"],
            "responses 500": sum(n for s, n in tally.statuses.items() if s >= 500 and s != 503),
            "responses 503": tally.statuses[503],
            "503 without Retry-After": tally.without_retry_after,
            "requests cut off": tally.cut_off}


# --- PostgreSQL: VACUUM and idle transactions ---------------------------------------------------

def vacuum(url: str, table: str) -> int:
    """VACUUM (VERBOSE) table; return the dead rows it could not remove yet."""
    from sqlalchemy import text
    notices = []
    with reliability.admin_connection(url) as connection:
        connection.connection.driver_connection.add_notice_handler(
            lambda diagnostic: notices.append(diagnostic.message_primary or ""))
        connection.execute(text(f'VACUUM (VERBOSE) "{table}"'))
    kept = re.findall(r"(\d+) are dead but not yet removable|(\d+) dead row versions cannot be "
                      r"removed yet", "\n".join(notices))
    if not kept:
        raise SystemExit(f"could not read VACUUM's report of {table}")
    return sum(int(a or b) for a, b in kept)


class IdleWatch:
    """Samples pg_stat_activity: the longest "idle in transaction" of the job worker's
    connections (application_name 'supervising-ui worker') and of the others."""

    def __init__(self, url: str | None):
        self.url, self.worker, self.others = url, 0.0, 0.0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self):
        if self.url:
            self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        if self.url:
            self.thread.join(10)

    def _poll(self) -> None:
        from sqlalchemy import text
        with reliability.admin_connection(self.url) as connection:
            while not self.stop.wait(0.2):
                for name, seconds in connection.execute(text(
                        "SELECT coalesce(application_name, ''), "
                        "extract(epoch FROM clock_timestamp() - state_change) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                        "AND state LIKE 'idle in transaction%'")):
                    if name == "supervising-ui worker":
                        self.worker = max(self.worker, float(seconds))
                    else:
                        self.others = max(self.others, float(seconds))


# --- the scenarios ---------------------------------------------------------------------------

def ask(admin: load.Client, method: str, path: str, body=None) -> tuple[int, bytes]:
    """One admin request; a keep-alive connection the server closed meanwhile is made again."""
    try:
        return admin.request(method, path, body)
    except (OSError, ValueError):  # closed while idle: the client reconnects on the next one
        return admin.request(method, path, body)


def job(admin: load.Client, job_id: int) -> dict:
    """The job's status through the API."""
    status, body = ask(admin, "GET", f"/api/jobs/{job_id}")
    return json.loads(body) if status == 200 else {"state": f"status {status}", "message": ""}


def wait_job(admin: load.Client, job_id: int, until, deadline: float = JOB_DEADLINE_SECONDS):
    """Poll the job until until(status) holds or it ends; return its last status."""
    give_up_at = time.monotonic() + deadline
    while time.monotonic() < give_up_at:
        status = job(admin, job_id)
        if until(status) or status["state"] in ("done", "failed"):
            return status
        time.sleep(0.5)
    return job(admin, job_id)


def training(status: dict) -> bool:
    """Whether the job trains now."""
    return status["state"] == "running" and "training" in (status.get("message") or "")


def start_retrain(admin: load.Client, project_id: int, body: dict) -> int:
    """POST a retrain; return its job id."""
    status, answer = ask(admin, "POST", f"/api/projects/{project_id}/retrain", body)
    if status != 202:
        raise SystemExit(f"the retrain was refused: {status} {answer[:300]!r}")
    return json.loads(answer)["job_id"]


def retrain_scenario(run, kind: str, body: dict) -> dict:
    """A retrain of this kind under load: its outcome, VACUUM and idle transactions (PostgreSQL)."""
    figures = {}
    with IdleWatch(run.url if run.postgres else None) as watch, \
            Crowd(run.port, run.tokens, run.project_id, run.think) as tally:
        started = time.monotonic()
        job_id = start_retrain(run.admin, run.project_id, body)
        wait_job(run.admin, job_id, training)
        time.sleep(5)  # labelers change rows while the job trains
        if run.postgres:
            for table in ("image", "label"):
                figures[f"VACUUM {table}: dead rows not yet removable"] = vacuum(run.url, table)
        final = wait_job(run.admin, job_id, lambda status: False)
        figures[f"{kind} retrain"] = f"{final['state']} in {time.monotonic() - started:.0f} s"
    if run.postgres:
        figures["longest idle in transaction, job worker (s)"] = round(watch.worker, 2)
        figures["longest idle in transaction, others (s)"] = round(watch.others, 2)
    return figures | answered(tally, run.project_id, run.labels_per_image)


def terminate_scenario(run) -> dict:
    """Rounds of pg_terminate_backend on every app connection while the labelers label."""
    ended = []
    with Crowd(run.port, run.tokens, run.project_id, run.think) as tally:
        for _ in range(run.args.terminate_rounds):
            time.sleep(3)
            ended.append(reliability.terminate_app_backends(run.url))
        time.sleep(3)
    return {"backends terminated": "+".join(map(str, ended))} | \
        answered(tally, run.project_id, run.labels_per_image)


def disk_full_scenario(run) -> dict:
    """An import whose storage writes fail with ENOSPC after some files; then labeling."""
    from supervising_ui import storage
    from supervising_ui.extensions import db
    from supervising_ui.importing import orphans, runner, sources
    from supervising_ui.models import Project
    folder = run.instance / "incoming"
    folder.mkdir()
    for index in range(run.args.import_files):
        (folder / f"new_{index:04d}.jpg").write_bytes(load.synthetic_jpeg(500_000 + index))
    real_write, written = storage.write_atomically, []

    def write(path, data):
        if len(written) >= run.args.disk_full_after:
            raise OSError(28, "No space left on device", str(path))
        written.append(path)
        real_write(path, data)
    storage.write_atomically, runner.BATCH_SIZE = write, run.args.import_batch
    try:
        with run.app.app_context():
            report = runner.run_import(db.session.get(Project, run.project_id),
                                       sources.plan_folder(folder))
            without_row = sum(1 for _ in orphans.unreferenced(
                key for _, key in orphans.managed_files(run.app.config["IMAGE_STORE"]) if key))
            db.session.remove()
    finally:
        storage.write_atomically = real_write  # space was freed
    with Crowd(run.port, run.tokens, run.project_id, run.think) as tally:
        time.sleep(4)
    return {"import": f"{report.added} added of {run.args.import_files}",
            "import report": "stopped: disk full" if report.stopped and "disk is full" in
            report.stopped else f"stopped: {report.stopped}",
            "files written before ENOSPC": len(written),
            "files in storage without a row": without_row,
            "label submits afterwards (201)": tally.statuses[201]} | \
        {key: value for key, value in answered(tally, run.project_id, run.labels_per_image)
         .items() if key in ("responses 500", "responses 503", "labels lost")}


def kill_scenario(run) -> dict:
    """SIGKILL the job worker a second into a quick retrain's run: once (it must finish), twice
    (it must fail with the reason)."""
    figures = {}

    def under_way(status: dict) -> bool:
        return status["state"] == "running"

    job_id = start_retrain(run.admin, run.project_id, {"kind": "quick"})
    started = time.monotonic()
    wait_job(run.admin, job_id, under_way)
    time.sleep(1)
    killed = run.kill_job_worker()
    again = wait_job(run.admin, job_id, lambda status: "restarted" in (status.get("message") or ""))
    final = wait_job(run.admin, job_id, lambda status: False)
    figures["killed once: worker killed"] = killed
    figures["killed once: status said"] = again.get("message") or again["state"]
    figures["killed once: outcome"] = f"{final['state']} in {time.monotonic() - started:.0f} s"
    job_id = start_retrain(run.admin, run.project_id, {"kind": "quick"})
    wait_job(run.admin, job_id, under_way)
    time.sleep(1)
    run.kill_job_worker()
    wait_job(run.admin, job_id, lambda status: under_way(status) and "restarted" in status["message"])
    time.sleep(1)
    run.kill_job_worker()
    final = wait_job(run.admin, job_id, lambda status: False, deadline=120)
    figures["killed twice: outcome"] = final["state"]
    figures["killed twice: error"] = final.get("error")
    return figures


# --- one database -----------------------------------------------------------------------------

class Run:
    """One database under test: its app in this process, its serve, project and accounts."""

    def __init__(self, url: str, args):
        self.args, self.url = args, url
        self.postgres = url.startswith("postgresql")
        self.think = args.think_ms / 1000
        self.instance = Path(tempfile.mkdtemp(prefix="supervising_ui_faults_"))
        env = {k: v for k, v in os.environ.items() if not k.startswith("SUPERVISING_UI_")}
        env.update(SUPERVISING_UI_INSTANCE=str(self.instance), SUPERVISING_UI_SECRET_KEY="faults",
                   OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "2"))
        if self.postgres:
            env["SUPERVISING_UI_DATABASE_URL"] = url
        os.environ.update(env)
        sys.path.insert(0, str(ROOT))
        from supervising_ui import create_app
        self.app, self.env, self.run_id = create_app(), env, uuid.uuid4().hex[:6]
        # Every labeler may label every image: the project lasts through every scenario.
        self.labels_per_image = args.labelers

    def set_up(self) -> None:
        """Migrate, create the project and accounts, start serve, store the first labels."""
        from supervising_ui.database import create_or_migrate
        from supervising_ui.extensions import db
        from supervising_ui.models import Project
        with self.app.app_context():
            create_or_migrate()
            self.project_id = load.project_of_pool(f"faults-{self.run_id}",
                                                   load.image_pool(self.app, self.args.images))
            db.session.get(Project, self.project_id).labels_per_image = self.labels_per_image
            db.session.commit()
            self.tokens, admin_token = load.create_accounts(self.run_id, self.args.labelers)
            db.session.remove()
            db.engine.dispose()
        self.server = reliability.Server(self.env, load.free_port(), 2, 8,
                                         self.instance / "serve.log")
        self.server.start()
        self.port, self.admin = self.server.port, load.Client(self.server.port, admin_token)
        with Crowd(self.port, self.tokens, self.project_id, 0.0) as tally:
            deadline = time.monotonic() + 120
            while tally.statuses[201] < self.args.labels_before and time.monotonic() < deadline:
                time.sleep(0.5)

    def kill_job_worker(self) -> bool:
        """SIGKILL serve's job worker (serve starts another); say whether one was found."""
        pid = self.server.job_worker_pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGKILL)
        return True

    def tear_down(self) -> None:
        """Stop serve; delete what was created (PostgreSQL) and the instance."""
        self.server.stop()
        if self.postgres:
            from supervising_ui.extensions import db
            with self.app.app_context():
                load.delete_created([self.project_id], self.run_id)
                db.session.remove()
                db.engine.dispose()
        shutil.rmtree(self.instance, ignore_errors=True)


def run_one(url: str, args) -> dict:
    """Every scenario on one database; return the figures."""
    run = Run(url, args)
    figures, name = {}, url.split("://")[0]
    try:
        run.set_up()
        print(f"{name}: set up, serve answers on {run.port}", flush=True)
        with run.app.app_context():  # the label checks read the database from here
            figures |= {f"quick: {k}" if not k.startswith("quick") else k: v
                        for k, v in retrain_scenario(run, "quick", {"kind": "quick"}).items()}
            figures |= {f"fine-tune: {k}" if not k.startswith("finetune") else k: v
                        for k, v in retrain_scenario(run, "finetune", {
                            "kind": "finetune", "epochs": args.finetune_epochs,
                            "tta_views": 1}).items()}
            print(f"{name}: retrains done", flush=True)
            if run.postgres:
                figures |= {f"terminate: {k}": v for k, v in terminate_scenario(run).items()}
            figures |= {f"disk full: {k}": v for k, v in disk_full_scenario(run).items()}
            print(f"{name}: disk full done", flush=True)
            figures |= kill_scenario(run)
    finally:
        run.tear_down()
    return figures


# --- the parent: one child per database, figures side by side --------------------------------

def problems_of(name: str, figures: dict) -> list[str]:
    """The checks of issue 30 that these figures fail."""
    problems = []
    for key, value in figures.items():
        zero_wanted = ("dead rows not yet removable" in key or key.endswith("labels lost")
                       or key.endswith("responses 500") or "without a row" in key
                       or key.endswith("without Retry-After"))
        if zero_wanted and value:
            problems.append(f"{name}: {key} = {value}")
        if "idle in transaction, job worker" in key and value > 1.0:
            problems.append(f"{name}: {key} = {value}")
    if not str(figures.get("killed once: outcome", "")).startswith("done"):
        problems.append(f"{name}: the killed retrain did not finish")
    if figures.get("killed twice: outcome") != "failed":
        problems.append(f"{name}: the twice-killed retrain did not fail")
    return problems


def main(argv=None) -> int:
    """Run each database in a child process; print the figures side by side."""
    args = parse_args(argv)
    if args.run_one:
        figures = run_one(args.run_one, args)
        print(FIGURES_MARK + json.dumps(figures), flush=True)
        return 0
    urls = args.database_url or ["sqlite"]
    columns = {}
    for url in urls:
        command = [sys.executable, __file__] + _without_database_urls(
            sys.argv[1:] if argv is None else argv) + ["--run-one", url]
        child = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
        lines = child.stdout.splitlines()
        for line in lines:
            if not line.startswith(FIGURES_MARK):
                print(line, flush=True)
        found = [line for line in lines if line.startswith(FIGURES_MARK)]
        if child.returncode or not found:
            print(child.stderr[-3000:])
            raise SystemExit(f"the run on {url.split('://')[0]} failed")
        columns["SQLite" if url == "sqlite" else "PostgreSQL"] = json.loads(
            found[-1][len(FIGURES_MARK):])
    names = list(columns)
    keys = list(dict.fromkeys(key for figures in columns.values() for key in figures))
    width = max(len(key) for key in keys) + 2
    print(f"\n{'':<{width}}" + "".join(f"{name:<44}" for name in names))
    for key in keys:
        print(f"{key:<{width}}" + "".join(f"{str(columns[name].get(key, 'n/a')):<44}"
                                          for name in names))
    problems = [p for name in names for p in problems_of(name, columns[name])]
    print("\nall checks held" if not problems else "\nFAILED:\n  " + "\n  ".join(problems))
    return 1 if problems else 0


def _without_database_urls(command: list[str]) -> list[str]:
    """command with every --database-url and --run-one option (and its value) left out."""
    kept, skip = [], False
    for part in command:
        if skip:
            skip = False
            continue
        if part in ("--database-url", "--run-one"):
            skip = True
            continue
        if part.startswith(("--database-url=", "--run-one=")):
            continue
        kept.append(part)
    return kept


if __name__ == "__main__":
    sys.exit(main())
