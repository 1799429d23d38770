"""Load benchmark of labeling: simulated labelers against gunicorn on 127.0.0.1.

For each N in --labelers it creates a fresh project (lpi 1) over a pool of distinct 227x227
grayscale JPEGs (the HiRISE crops when ../shared/data/hirise is present, topped up with
generated ones), starts N labeler threads that each loop over the JSON API with a keep-alive
connection and an API token, with no think time: GET next, GET the image, then POST a label
(or, with probability --later-share, POST later), for --seconds. It prints labels/s, p50/p95/p99
latency of next and submit, failed requests, duplicate concurrent assignments (two labelers
holding the same image at once on the client's timeline: from next's response to the
submit/later request), lost labels (accepted submits missing from the admin CSV export) and
the client's own CPU use.

Then it times GET next over HTTP on projects of --big-sizes images (rows inserted in bulk,
no files: the API never reads the file for next), each followed by an untimed submit, and
prints the ratio of the medians.

Examples:
  .venv/bin/python benchmarks/load.py                       # SQLite in a temporary instance
  .venv/bin/python benchmarks/load.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench
  .venv/bin/python benchmarks/load.py --labelers 32 --seconds 10 --big-sizes ""
Only traffic to 127.0.0.1. A PostgreSQL database should be a scratch one: the benchmark
migrates it and deletes what it created at the end.
"""
from __future__ import annotations

import argparse
import csv
import http.client
import io
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HIRISE = ROOT.parent / "shared" / "data" / "hirise"
CLASSES = ["crater", "dark_dune", "bright_dune", "streak", "other", "edge"]


def parse_args(argv=None):
    """Return the command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=None,
                        help="SQLAlchemy URL (default: SQLite in a temporary instance)")
    parser.add_argument("--labelers", default="1,8,32,64", help="comma-separated N values")
    parser.add_argument("--seconds", type=float, default=20.0, help="duration of each round")
    parser.add_argument("--images", type=int, default=8000, help="distinct images per project")
    parser.add_argument("--later-share", type=float, default=0.05)
    parser.add_argument("--think-ms", type=float, default=0.0,
                        help="mean time a labeler looks at an image before deciding "
                             "(uniform 0..2x mean; 0: no pause, a saturation test)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=8, help="gunicorn threads per worker")
    parser.add_argument("--big-sizes", default="10000,1000000",
                        help="project sizes for the next-latency test ('' to skip)")
    parser.add_argument("--big-requests", type=int, default=300)
    parser.add_argument("--keep", action="store_true", help="keep the temporary instance")
    parser.add_argument("--access-log", default=None,
                        help="write gunicorn's access log with server-side request times here")
    return parser.parse_args(argv)


# --- set-up --------------------------------------------------------------------------------

def synthetic_jpeg(seed: int) -> bytes:
    """Return a 227x227 grayscale JPEG of smooth terrain with noise (about HiRISE's size)."""
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:227, 0:227] / 227.0
    field_ = sum(rng.uniform(10, 40) * np.sin(rng.uniform(2, 12) * x + rng.uniform(0, 6)) *
                 np.cos(rng.uniform(2, 12) * y + rng.uniform(0, 6)) for _ in range(4))
    pixels = np.clip(120 + field_ + rng.normal(0, 9, (227, 227)), 0, 255).astype("uint8")
    buffer = io.BytesIO()
    Image.fromarray(pixels, "L").save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def image_pool(app, count: int) -> list[dict]:
    """Store count distinct images (HiRISE first, then generated) and return their row fields."""
    from supervising_ui import storage
    sources = sorted((HIRISE / "images").glob("*.jpg"))[:count] if HIRISE.exists() else []
    pool = []
    for index in range(count):
        if index < len(sources):
            data, name = sources[index].read_bytes(), sources[index].name
        else:
            data, name = synthetic_jpeg(index), f"synthetic_{index:06d}.jpg"
        info = storage.validate_image(data, app.config["MAX_IMAGE_PIXELS"])
        storage.store_bytes(app.config["IMAGE_STORE"], info.storage_key, data)
        pool.append({"storage_key": info.storage_key, "original_name": name,
                     "content_hash": info.content_hash, "width": info.width,
                     "height": info.height, "meta": {"source_id": name.rsplit("-", 1)[0]}})
    return pool


def create_project(name: str) -> int:
    """Create a random-order project with one label per image; return its id."""
    from supervising_ui.projects import create_project as create
    return create(name, classes=CLASSES).id


def insert_images(project_id: int, rows: list[dict]) -> None:
    """Insert image rows for project_id in bulk."""
    from sqlalchemy import insert

    from supervising_ui.extensions import db
    from supervising_ui.models import Image
    rng = random.Random(project_id)
    for start in range(0, len(rows), 20000):
        chunk = [dict(row, project_id=project_id, random_key=rng.random(), label_count=0)
                 for row in rows[start:start + 20000]]
        db.session.execute(insert(Image), chunk)
        db.session.commit()


def insert_bulk_rows(project_id: int, count: int, template: dict) -> None:
    """Insert count image rows without files, fast (COPY on PostgreSQL, executemany on SQLite)."""
    from supervising_ui.extensions import db
    from supervising_ui.models import utcnow
    rng = random.Random(count)
    now = utcnow()
    columns = ("project_id", "storage_key", "original_name", "content_hash", "width", "height",
               "metadata", "random_key", "label_count", "created_at")
    rows = ((project_id, template["storage_key"], f"bulk_{i:07d}.jpg", f"{i:064x}", 227, 227,
             "{}", rng.random(), 0, now) for i in range(count))
    connection = db.engine.raw_connection()
    try:
        cursor = connection.cursor()
        if db.engine.dialect.name == "postgresql":
            with cursor.copy(f"COPY image ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            cursor.execute("ANALYZE image")
        else:
            cursor.executemany(f"INSERT INTO image ({', '.join(columns)}) VALUES "
                               f"({', '.join('?' * len(columns))})",
                               ((*row[:9], row[9].isoformat(sep=" ")) for row in rows))
            cursor.execute("ANALYZE")
        connection.commit()
    finally:
        connection.close()


def create_accounts(run_id: str, count: int) -> tuple[list[str], str]:
    """Create count labelers and an admin with API tokens; return (labeler tokens, admin token)."""
    from supervising_ui.accounts import create_api_token, create_user
    tokens = [create_api_token(create_user(f"bench{run_id}_{i}", password="benchmark password")[0])
              for i in range(count)]
    admin = create_user(f"bench{run_id}_admin", role="admin", password="benchmark password")[0]
    return tokens, create_api_token(admin)


def free_port() -> int:
    """Return a free TCP port on 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(env: dict, port: int, workers: int, threads: int,
                 access_log: str | None = None) -> subprocess.Popen:
    """Start gunicorn (gthread) on 127.0.0.1:port and wait until it answers."""
    command = [sys.executable, "-m", "gunicorn", "--workers", str(workers),
               "--worker-class", "gthread", "--threads", str(threads),
               "--bind", f"127.0.0.1:{port}", "--log-level", "warning",
               "supervising_ui:create_app()"]
    if access_log:  # %(M)s: milliseconds the server spent on the request
        command[-1:-1] = ["--access-logfile", access_log,
                          "--access-logformat", '%(m)s %(U)s %(s)s %(M)s']
    server = subprocess.Popen(command, env=env, cwd=ROOT)
    for _ in range(200):
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/login")
            if connection.getresponse().status == 200:
                return server
        except OSError:
            time.sleep(0.1)
    server.terminate()
    raise SystemExit("gunicorn did not start")


# --- the simulated labelers ------------------------------------------------------------------

@dataclass
class LabelerRecord:
    """What one simulated labeler saw."""

    next_latencies: list = field(default_factory=list)
    submit_latencies: list = field(default_factory=list)
    # (image_id, held_from, held_until): from next's response to the submit/later request.
    holdings: list = field(default_factory=list)
    accepted: list = field(default_factory=list)  # label ids the server acknowledged
    labels: int = 0
    failures: int = 0
    failure_examples: list = field(default_factory=list)
    exhausted: bool = False


class Client:
    """A minimal keep-alive HTTP/1.1 client over a raw socket (http.client's header parsing
    costs several times more CPU, which the server would miss on a 2-core machine)."""

    def __init__(self, port: int, token: str | None):
        self.port = port
        # No token: an anonymous client (an Authorization header with a bad token is a 401).
        self.auth = f"Authorization: Bearer {token}\r\n" if token else ""
        self.sock = None
        self.buffer = b""

    def _connect(self) -> None:
        self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
        """Send one request; return (status, body bytes). Raises OSError on a broken link."""
        payload = json.dumps(body).encode() if body is not None else b""
        head = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{self.auth}"
                f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n")
        try:
            if self.sock is None:
                self._connect()
            self.sock.sendall(head.encode() + payload)
            return self._response()
        except (OSError, ValueError):
            self.close()
            raise

    def _read_until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            self._fill()
        found, _, self.buffer = self.buffer.partition(marker)
        return found

    def _read_exactly(self, count: int) -> bytes:
        while len(self.buffer) < count:
            self._fill()
        found, self.buffer = self.buffer[:count], self.buffer[count:]
        return found

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self.buffer += chunk

    def _response(self) -> tuple[int, bytes]:
        head = self._read_until(b"\r\n\r\n").decode("latin-1").split("\r\n")
        status = int(head[0].split(" ", 2)[1])
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self._read_until(b"\r\n").split(b";")[0], 16)
                body += self._read_exactly(size)
                self._read_until(b"\r\n")
                if size == 0:
                    break
        else:
            body = self._read_exactly(int(headers.get("content-length", "0")))
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, body

    def close(self) -> None:
        """Close the connection (the next request reconnects)."""
        if self.sock is not None:
            self.sock.close()
        self.sock = None


def labeler_loop(port: int, token: str, project_id: int, deadline: float, later_share: float,
                 think_seconds: float, record: LabelerRecord, seed: int) -> None:
    """Label as fast as the server answers until the deadline."""
    rng = random.Random(seed)
    client = Client(port, token)

    def fail(what):
        record.failures += 1
        if len(record.failure_examples) < 3:
            record.failure_examples.append(what)

    while time.perf_counter() < deadline:
        try:
            started = time.perf_counter()
            status, body = client.request("GET", f"/api/projects/{project_id}/next")
            held_from = time.perf_counter()
            record.next_latencies.append(held_from - started)
            if status == 204:
                record.exhausted = True
                return
            if status != 200:
                fail(f"next {status} {body[:200]!r}")
                continue
            given = json.loads(body)
            status, image = client.request("GET", given["image_url"])
            if status != 200 or not image:
                fail(f"image {status}")
            if think_seconds:
                time.sleep(rng.uniform(0, 2 * think_seconds))
            if rng.random() < later_share:
                held_until = time.perf_counter()
                status, body = client.request("POST", f"/api/images/{given['image_id']}/later")
                if status != 200:
                    fail(f"later {status} {body[:200]!r}")
            else:
                decision = {"label": rng.choice(CLASSES), "request_id": str(uuid.uuid4()),
                            "seconds_spent": held_from - started}
                held_until = time.perf_counter()
                status, body = client.request("POST", f"/api/images/{given['image_id']}/labels",
                                              decision)
                record.submit_latencies.append(time.perf_counter() - held_until)
                if status in (200, 201):
                    record.accepted.append(json.loads(body)["id"])
                    record.labels += 1
                else:
                    fail(f"submit {status} {body[:200]!r}")
            record.holdings.append((given["image_id"], held_from, held_until))
        except (OSError, ValueError) as error:
            fail(repr(error))


def duplicate_assignments(records: list[LabelerRecord]) -> int:
    """Count pairs of labelers holding the same image at overlapping times."""
    by_image = defaultdict(list)
    for labeler, record in enumerate(records):
        for image_id, held_from, held_until in record.holdings:
            by_image[image_id].append((held_from, held_until, labeler))
    duplicates = 0
    for holdings in by_image.values():
        holdings.sort()
        for index, (_start, end, labeler) in enumerate(holdings):
            for other_start, _, other in holdings[index + 1:]:
                if other_start >= end:
                    break
                duplicates += other != labeler
    return duplicates


def exported_label_ids(port: int, admin_token: str, project_id: int) -> set[int]:
    """Return the label ids of the project's labels export (CSV over HTTP)."""
    client = Client(port, admin_token)
    status, body = client.request("GET", f"/admin/projects/{project_id}/export?kind=labels"
                                         f"&format=csv")
    if status != 200:
        raise SystemExit(f"export failed: {status} {body[:300]!r}")
    return {int(row["label_id"]) for row in csv.DictReader(io.StringIO(body.decode()))}


def percentile_ms(values: list[float], q: float) -> float:
    """Return the q-th percentile of values (seconds) in milliseconds."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def server_cpu_seconds(server: subprocess.Popen) -> float:
    """Return the CPU seconds used so far by gunicorn's master and workers (Linux /proc)."""
    pids = [server.pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == server.pid:
                pids.append(int(entry.name))
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except OSError:
            pass
    return total


def run_round(port, tokens, admin_token, project_id, seconds, later_share, think_seconds,
              server) -> dict:
    """Run len(tokens) labelers for seconds; return the measured figures."""
    records = [LabelerRecord() for _ in tokens]
    deadline = time.perf_counter() + seconds
    threads = [threading.Thread(target=labeler_loop, daemon=True,
                                args=(port, token, project_id, deadline, later_share,
                                      think_seconds, record, i))
               for i, (token, record) in enumerate(zip(tokens, records, strict=True))]
    cpu_before, server_before = time.process_time(), server_cpu_seconds(server)
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    client_cpu = time.process_time() - cpu_before
    server_cpu = server_cpu_seconds(server) - server_before
    accepted = [label_id for record in records for label_id in record.accepted]
    exported = exported_label_ids(port, admin_token, project_id)
    return {
        "labelers": len(tokens), "seconds": elapsed,
        "labels": len(accepted), "labels_per_s": len(accepted) / elapsed,
        "next": [l for r in records for l in r.next_latencies],
        "submit": [l for r in records for l in r.submit_latencies],
        "failed": sum(r.failures for r in records),
        "failure_examples": [e for r in records for e in r.failure_examples][:5],
        "duplicates": duplicate_assignments(records),
        "lost": len(set(accepted) - exported), "exported": len(exported),
        "exhausted": any(r.exhausted for r in records),
        "client_cpu": client_cpu / elapsed, "server_cpu": server_cpu / elapsed,
    }


def big_project_latency(port, token, project_id, requests) -> list[float]:
    """Time GET next (each followed by an untimed submit) on a project; return latencies."""
    client = Client(port, token)
    latencies = []
    for index in range(requests):
        started = time.perf_counter()
        status, body = client.request("GET", f"/api/projects/{project_id}/next")
        latencies.append(time.perf_counter() - started)
        if status != 200:
            raise SystemExit(f"next on the big project answered {status}: {body[:200]!r}")
        image_id = json.loads(body)["image_id"]
        status, body = client.request("POST", f"/api/images/{image_id}/labels",
                                      {"label": "crater", "request_id": f"big-{project_id}-{index}"})
        if status != 201:
            raise SystemExit(f"submit on the big project answered {status}: {body[:200]!r}")
    return latencies[10:]  # the first few warm the caches of a fresh project


# --- main ----------------------------------------------------------------------------------

def main(argv=None) -> None:
    """Set up, run every round and the big-project test, print the figures."""
    args = parse_args(argv)
    sizes = [int(n) for n in args.labelers.split(",") if n]
    big_sizes = [int(n) for n in args.big_sizes.split(",") if n]
    instance = Path(tempfile.mkdtemp(prefix="supervising_ui_load_"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPERVISING_UI_")}
    env.update(SUPERVISING_UI_INSTANCE=str(instance), SUPERVISING_UI_SECRET_KEY="benchmark",
               SUPERVISING_UI_JOB_QUEUE="memory")
    if args.database_url:
        env["SUPERVISING_UI_DATABASE_URL"] = args.database_url
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    from supervising_ui import create_app
    from supervising_ui.database import create_or_migrate
    app = create_app()
    run_id = uuid.uuid4().hex[:6]
    created_projects = []
    with app.app_context():
        create_or_migrate()
        backend = app.config["SQLALCHEMY_DATABASE_URI"].split(":", 1)[0]
        print(f"backend {backend}; gunicorn gthread {args.workers} workers x {args.threads} "
              f"threads; {os.cpu_count()} CPUs; {args.seconds:.0f} s per round; "
              f"Later share {args.later_share}; think time {args.think_ms:.0f} ms mean",
              flush=True)
        started = time.perf_counter()
        pool = image_pool(app, args.images)
        print(f"stored {len(pool)} distinct images in {time.perf_counter() - started:.1f} s "
              f"({'HiRISE crops first' if HIRISE.exists() else 'generated'})", flush=True)
        tokens, admin_token = create_accounts(run_id, max(sizes + [1]))
        projects = {}
        for n in sizes:
            projects[n] = create_project(f"load-{run_id}-{n}")
            insert_images(projects[n], pool)
            created_projects.append(projects[n])
    port = free_port()
    server = start_server(env, port, args.workers, args.threads, args.access_log)
    try:
        if sizes:
            print(f"\n{'N':>3} {'labels/s':>9} {'labels':>7} {'next p50/p95/p99 ms':>22} "
                  f"{'submit p50/p95/p99 ms':>24} {'failed':>6} {'dup':>4} {'lost':>5} "
                  f"{'client CPU':>10} {'server CPU':>10}", flush=True)
        for n in sizes:
            result = run_round(port, tokens[:n], admin_token, projects[n], args.seconds,
                               args.later_share, args.think_ms / 1000, server)
            print(f"{n:>3} {result['labels_per_s']:>9.1f} {result['labels']:>7} "
                  f"{percentile_ms(result['next'], 50):>7.1f}/{percentile_ms(result['next'], 95):.1f}"
                  f"/{percentile_ms(result['next'], 99):.1f}".ljust(45) +
                  f"{percentile_ms(result['submit'], 50):>8.1f}/"
                  f"{percentile_ms(result['submit'], 95):.1f}/{percentile_ms(result['submit'], 99):.1f}"
                  .ljust(24) +
                  f" {result['failed']:>6} {result['duplicates']:>4} {result['lost']:>5} "
                  f"{result['client_cpu']:>9.0%} {result['server_cpu']:>10.0%}"
                  + ("  (ran out of images)" if result["exhausted"] else ""), flush=True)
            for example in result["failure_examples"]:
                print(f"    failure: {example}")
        if big_sizes:
            print("\nGET next over HTTP (one labeler, each followed by a submit), by project size:")
            medians = {}
            for size in big_sizes:
                with app.app_context():
                    project_id = create_project(f"big-{run_id}-{size}")
                    created_projects.append(project_id)
                    started = time.perf_counter()
                    insert_bulk_rows(project_id, size, pool[0])
                    inserted = time.perf_counter() - started
                latencies = big_project_latency(port, tokens[0], project_id, args.big_requests)
                medians[size] = statistics.median(latencies)
                print(f"{size:>9} images (inserted in {inserted:.1f} s): next p50 "
                      f"{percentile_ms(latencies, 50):.2f} ms, p95 {percentile_ms(latencies, 95):.2f}"
                      f" ms, p99 {percentile_ms(latencies, 99):.2f} ms", flush=True)
            if len(medians) > 1:
                smallest, largest = min(medians), max(medians)
                print(f"median next at {largest} / at {smallest} images: "
                      f"{medians[largest] / medians[smallest]:.2f}x")
    finally:
        server.terminate()
        server.wait()
        if args.database_url:
            with app.app_context():
                delete_created(created_projects, run_id)
        if not args.keep:
            shutil.rmtree(instance, ignore_errors=True)


def delete_created(project_ids: list[int], run_id: str) -> None:
    """Delete what the benchmark created in a persistent database."""
    from sqlalchemy import delete, select

    from supervising_ui.extensions import db
    from supervising_ui.models import (
        ApiToken,
        Image,
        ImportBatch,
        Job,
        Label,
        LabelClass,
        ModelVersion,
        Prediction,
        Project,
        SearchColumn,
        SearchImage,
        SearchMeta,
        SearchState,
        SearchValue,
        Skip,
        User,
    )
    for project_id in project_ids:
        image_ids = select(Image.id).where(Image.project_id == project_id)
        columns = select(SearchColumn.id).where(SearchColumn.project_id == project_id)
        # Children before parents: the search index, skips, labels and predictions refer to
        # images; images to their import batch; everything to the project.
        for statement in (
                delete(SearchMeta).where(SearchMeta.project_id == project_id),
                delete(SearchImage).where(SearchImage.project_id == project_id),
                delete(SearchValue).where(SearchValue.column_id.in_(columns)),
                delete(SearchColumn).where(SearchColumn.project_id == project_id),
                delete(SearchState).where(SearchState.project_id == project_id),
                delete(Skip).where(Skip.image_id.in_(image_ids)),
                delete(Label).where(Label.project_id == project_id),
                delete(Prediction).where(Prediction.image_id.in_(image_ids)),
                delete(Image).where(Image.project_id == project_id),
                delete(ImportBatch).where(ImportBatch.project_id == project_id),
                delete(Job).where(Job.project_id == project_id),
                delete(ModelVersion).where(ModelVersion.project_id == project_id),
                delete(LabelClass).where(LabelClass.project_id == project_id),
                delete(Project).where(Project.id == project_id)):
            db.session.execute(statement)
    users = select(User.id).where(User.username.like(f"bench{run_id}_%"))
    db.session.execute(delete(ApiToken).where(ApiToken.user_id.in_(users)))
    db.session.execute(delete(User).where(User.username.like(f"bench{run_id}_%")))
    db.session.commit()


if __name__ == "__main__":
    main()
