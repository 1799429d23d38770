"""Load benchmark of labeling: simulated labelers against the app's servers on 127.0.0.1.

For each N in --labelers it creates a fresh project (lpi 1) over a pool of distinct 227x227
grayscale JPEGs (the HiRISE crops when ../shared/data/hirise is present, topped up with
generated ones), starts N labeler threads that each loop over the JSON API with a keep-alive
connection and an API token: GET next, GET the image, a pause (--think-ms), then POST a label
(or, with probability --later-share, POST later), for --seconds. It prints labels/s, p50/p95/p99
latency of next and submit, failed requests, duplicate concurrent assignments (two labelers
holding the same image at once on the client's timeline: from next's response to the
submit/later request), lost labels (accepted submits missing from the admin CSV export), the
client's and the servers' CPU and, on PostgreSQL, the CPU of the database's backends.

Several --database-url values run side by side: each round runs on every database back to back
(same machine, same minute; every other round in the reverse order), one row each, then the
ratios to the first. "sqlite" is a SQLite file in the temporary instance (the default).

--servers K (K > 1) starts K `supervising-ui serve` processes per database (gunicorn and a job
worker each, on their own ports, sharing the instance folder) and spreads the labelers over
them round-robin; PostgreSQL's servers share the job queue --job-queue (Redis), SQLite's the
SQLite queue file of the instance. Afterwards a retrain is started through the first server
and followed through the second: it must run once, by one job worker, and its suggestions must
show on every server.

Then (one server) it times GET next over HTTP on projects of --big-sizes images (rows inserted
in bulk, no files: the API never reads the file for next), each followed by an untimed submit,
and prints the ratio of the medians.

Examples:
  .venv/bin/python benchmarks/load.py                       # SQLite in a temporary instance
  .venv/bin/python benchmarks/load.py --labelers 32 --think-ms 150 --big-sizes "" \\
      --database-url sqlite --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench
  .venv/bin/python benchmarks/load.py --servers 2 --job-queue redis://127.0.0.1:6379/2 \\
      --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench --big-sizes ""
Only traffic to 127.0.0.1. A PostgreSQL database should be a scratch one: the benchmark
migrates it and deletes what it created at the end.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
# The labelers and servers live beside this script; reliability.py imports them from here.
from load_client import (  # noqa: E402
    CLASSES,
    Client,
    LabelerRecord,
    duplicate_assignments,
    exported_label_ids,
    labeler_loop,
    percentile_ms,
)
from load_servers import ROOT, database_cpu_seconds, free_port, gunicorn, serve  # noqa: E402

HIRISE = ROOT.parent / "shared" / "data" / "hirise"
# --quality: the projects' consensus is Dawid-Skene with adaptive redundancy (set by main).
QUALITY = False
__all__ = ["CLASSES", "Client", "ROOT", "create_accounts", "create_project", "delete_created",
           "free_port", "insert_bulk_rows", "synthetic_jpeg"]


def parse_args(argv=None):
    """Return the command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", action="append", default=None,
                        help="SQLAlchemy URL, or 'sqlite' for a file in the temporary instance; "
                             "repeat it to run databases side by side (default: sqlite)")
    parser.add_argument("--labelers", default="1,8,32,64", help="comma-separated N values")
    parser.add_argument("--seconds", type=float, default=20.0, help="duration of each round")
    parser.add_argument("--images", type=int, default=8000, help="distinct images per project")
    parser.add_argument("--later-share", type=float, default=0.05)
    parser.add_argument("--think-ms", type=float, default=0.0,
                        help="mean time a labeler looks at an image before deciding "
                             "(uniform 0..2x mean; 0: no pause, a saturation test)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers per server")
    parser.add_argument("--threads", type=int, default=8, help="gunicorn threads per worker")
    parser.add_argument("--servers", type=int, default=1,
                        help="servers per database (more than 1: `serve` processes)")
    parser.add_argument("--job-queue", default=None,
                        help="job queue of PostgreSQL's servers, e.g. redis://127.0.0.1:6379/2 "
                             "(needed with --servers above 1)")
    parser.add_argument("--retrain-check", action=argparse.BooleanOptionalAction, default=True,
                        help="with several servers, check a retrain started through one")
    parser.add_argument("--big-sizes", default="10000,1000000",
                        help="project sizes for the next-latency test ('' to skip)")
    parser.add_argument("--big-requests", type=int, default=300)
    parser.add_argument("--quality", action=argparse.BooleanOptionalAction, default=False,
                        help="projects with Dawid-Skene consensus and adaptive redundancy "
                             "(labels 1..3, target posterior 0.95), each server with its job "
                             "worker (the consensus job runs there, never in a request); "
                             "PostgreSQL needs --job-queue")
    parser.add_argument("--keep", action="store_true", help="keep the temporary instance")
    parser.add_argument("--access-log", default=None,
                        help="one server: write gunicorn's access log with server-side request "
                             "times here")
    args = parser.parse_args(argv)
    args.database_url = args.database_url or ["sqlite"]
    if args.servers > 1 and not (args.job_queue or "").startswith("redis://") and \
            any(url != "sqlite" for url in args.database_url):
        parser.error("--servers above 1 on PostgreSQL needs --job-queue redis://...")
    return args


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
    from supervising_ui.extensions import db
    from supervising_ui.projects.service import create_project as create
    project = create(name, classes=CLASSES)
    # Random order and no automatic retrain (new projects have the learning loop on): the
    # benchmark measures labeling alone; its retrain check starts one on purpose.
    project.serving_order, project.retrain_every = "random", 0
    if QUALITY:  # --quality: Dawid-Skene and adaptive redundancy on
        project.consensus_method, project.labels_max, project.target_posterior = \
            "dawid-skene", 3, 0.95
    db.session.commit()
    return project.id


def insert_images(project_id: int, rows: list[dict]) -> None:
    """Insert image rows for project_id in bulk."""
    from sqlalchemy import insert

    from supervising_ui.database import refresh_planner_statistics
    from supervising_ui.extensions import db
    from supervising_ui.models import Image
    rng = random.Random(project_id)
    for start in range(0, len(rows), 20000):
        chunk = [dict(row, project_id=project_id, random_key=rng.random(), label_count=0)
                 for row in rows[start:start + 20000]]
        db.session.execute(insert(Image), chunk)
        db.session.commit()
    refresh_planner_statistics("image")  # as the import runner does after an import


def project_of_pool(name: str, rows: list[dict]) -> int:
    """Create a project over these image rows of the pool, indexed for search as an import
    would have done; return its id."""
    from supervising_ui.search import index
    project_id = create_project(name)
    insert_images(project_id, rows)
    index.index_missing(project_id)
    return project_id


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
    from supervising_ui.accounts.users import create_api_token, create_user
    tokens = [create_api_token(create_user(f"bench{run_id}_{i}", password="benchmark password")[0])
              for i in range(count)]
    admin = create_user(f"bench{run_id}_admin", role="admin", password="benchmark password")[0]
    return tokens, create_api_token(admin)


# --- one database under test ------------------------------------------------------------------

@dataclass
class Engine:
    """A database under test: its app (in this process), accounts, projects and servers."""

    name: str
    url: str
    app: object
    env: dict
    tokens: list = field(default_factory=list)
    admin_token: str = ""
    projects: list = field(default_factory=list)  # one per round
    created: list = field(default_factory=list)
    servers: list = field(default_factory=list)

    @property
    def database_name(self) -> str | None:
        """PostgreSQL's database name (its backends' process titles carry it), else None."""
        return None if self.name == "sqlite" else self.url.rsplit("/", 1)[1].split("?")[0]

    def ports(self) -> list[int]:
        """The ports of this database's servers."""
        return [server.port for server in self.servers]


def set_up_engine(url: str, instance: Path, base_env: dict, args, run_id: str, sizes: list[int],
                  pool_holder: list) -> Engine:
    """Migrate the database, store the image pool (once), create accounts and projects."""
    from supervising_ui import create_app
    from supervising_ui.database import create_or_migrate
    resolved = f"sqlite:///{instance / 'supervising_ui.sqlite3'}" if url == "sqlite" else url
    env = dict(base_env, SUPERVISING_UI_DATABASE_URL=resolved)
    if args.servers > 1 or args.quality:
        env["SUPERVISING_UI_JOB_QUEUE"] = "sqlite" if url == "sqlite" else args.job_queue
    app = create_app({"DATABASE_URL": resolved})
    engine = Engine(resolved.split(":", 1)[0], resolved, app, env)
    with app.app_context():
        create_or_migrate()
        if not pool_holder:
            started = time.perf_counter()
            pool_holder.append(image_pool(app, args.images))
            print(f"stored {len(pool_holder[0])} distinct images in "
                  f"{time.perf_counter() - started:.1f} s "
                  f"({'HiRISE crops first' if HIRISE.exists() else 'generated'})", flush=True)
        engine.tokens, engine.admin_token = create_accounts(run_id, max(sizes + [2]))
        for index, n in enumerate(sizes):
            engine.projects.append(project_of_pool(f"load-{run_id}-{index}-{n}", pool_holder[0]))
            engine.created.append(engine.projects[-1])
        from supervising_ui.extensions import db
        db.session.remove()
        db.engine.dispose()  # this process holds no connection while the servers run
    return engine


def start_servers(engine: Engine, instance: Path, args) -> None:
    """Start this database's server(s): gunicorn alone, or --servers `serve` processes."""
    for index in range(args.servers):
        port = free_port()
        if args.servers == 1 and not args.quality:
            server = gunicorn(engine.env, port, args.workers, args.threads, args.access_log)
        else:
            server = serve(engine.env, port, args.workers, args.threads,
                           instance / f"serve-{engine.name.split('+')[0]}-{index}.log")
        engine.servers.append(server)
        server.start()


# --- a round ---------------------------------------------------------------------------------

def run_round(engine: Engine, index: int, n: int, args) -> dict:
    """Run round index (n labelers, --seconds) against engine's servers; return the figures."""
    records = [LabelerRecord() for _ in range(n)]
    ports = engine.ports()
    deadline = time.perf_counter() + args.seconds
    threads = [threading.Thread(target=labeler_loop, daemon=True,
                                args=(ports[i % len(ports)], engine.tokens[i],
                                      engine.projects[index], deadline, args.later_share,
                                      args.think_ms / 1000, records[i], i))
               for i in range(n)]
    load_before = os.getloadavg()[0]
    cpu_before = time.process_time()
    server_before = sum(server.cpu_seconds() for server in engine.servers)
    database_before = database_cpu_seconds(engine.database_name)
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    client_cpu = time.process_time() - cpu_before
    server_cpu = sum(server.cpu_seconds() for server in engine.servers) - server_before
    database_cpu = database_cpu_seconds(engine.database_name) - database_before
    accepted = [label_id for record in records for label_id in record.accepted]
    exported = exported_label_ids(ports[0], engine.admin_token, engine.projects[index])
    return {
        "labels": len(accepted), "labels_per_s": len(accepted) / elapsed,
        "next": [latency for record in records for latency in record.next_latencies],
        "submit": [latency for record in records for latency in record.submit_latencies],
        "failed": sum(record.failures for record in records),
        "failure_examples": [e for record in records for e in record.failure_examples][:5],
        "duplicates": duplicate_assignments(records),
        "lost": len(set(accepted) - exported), "exported": len(exported),
        "exhausted": any(record.exhausted for record in records),
        "client_cpu": client_cpu / elapsed, "server_cpu": server_cpu / elapsed,
        "database_cpu": database_cpu / elapsed, "load": (load_before, os.getloadavg()[0]),
    }


HEADER = (f"{'N':>3} {'database':<11} {'labels/s':>8} {'labels':>6} {'next p50/p95/p99 ms':>21} "
          f"{'submit p50/p95/p99 ms':>22} {'failed':>6} {'dup':>3} {'lost':>4} "
          f"{'client':>6} {'server':>6} {'db':>5} {'load':>9}")


def _latencies(values: list[float]) -> str:
    """Return 'p50/p95/p99' in milliseconds."""
    return "/".join(f"{percentile_ms(values, q):.1f}" for q in (50, 95, 99))


def print_row(n: int, engine: Engine, result: dict) -> None:
    """Print one round's figures (CPU in cores x 100 %, load average before/after)."""
    print(f"{n:>3} {engine.name.split('+')[0]:<11} {result['labels_per_s']:>8.1f} "
          f"{result['labels']:>6} {_latencies(result['next']):>21} "
          f"{_latencies(result['submit']):>22} {result['failed']:>6} {result['duplicates']:>3} "
          f"{result['lost']:>4} {result['client_cpu']:>6.0%} {result['server_cpu']:>6.0%} "
          f"{result['database_cpu']:>5.0%} {result['load'][0]:>4.1f}/{result['load'][1]:<4.1f}"
          + ("  (ran out of images)" if result["exhausted"] else ""), flush=True)
    for example in result["failure_examples"]:
        print(f"    failure: {example}")


def print_ratios(n: int, engines: list[Engine], results: list[dict]) -> None:
    """Print each database's labels/s and p99 of next relative to the first database's."""
    first = results[0]
    for engine, result in zip(engines[1:], results[1:], strict=True):
        print(f"{'':>3} {engine.name.split('+')[0]} / {engines[0].name.split('+')[0]}: "
              f"labels/s {result['labels_per_s'] / first['labels_per_s']:.0%}, p99 next "
              f"{percentile_ms(result['next'], 99):.1f} vs "
              f"{percentile_ms(first['next'], 99):.1f} ms", flush=True)


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


def big_projects(engine: Engine, big_sizes: list[int], pool: list, run_id: str, args) -> None:
    """Print the latency of next by project size, and the ratio of the medians."""
    print(f"\n{engine.name}: GET next over HTTP (one labeler, each followed by a submit), "
          f"by project size:")
    medians = {}
    for size in big_sizes:
        with engine.app.app_context():
            project_id = create_project(f"big-{run_id}-{size}")
            engine.created.append(project_id)
            started = time.perf_counter()
            insert_bulk_rows(project_id, size, pool[0])
            inserted = time.perf_counter() - started
        latencies = big_project_latency(engine.ports()[0], engine.tokens[0], project_id,
                                        args.big_requests)
        medians[size] = statistics.median(latencies)
        print(f"{size:>9} images (inserted in {inserted:.1f} s): next p50 "
              f"{percentile_ms(latencies, 50):.2f} ms, p95 {percentile_ms(latencies, 95):.2f}"
              f" ms, p99 {percentile_ms(latencies, 99):.2f} ms", flush=True)
    if len(medians) > 1:
        smallest, largest = min(medians), max(medians)
        print(f"median next at {largest} / at {smallest} images: "
              f"{medians[largest] / medians[smallest]:.2f}x")


# --- main ------------------------------------------------------------------------------------

def main(argv=None) -> int:
    """Set up every database, run every round on each back to back, print the figures."""
    args = parse_args(argv)
    global QUALITY
    QUALITY = args.quality
    if args.quality and any(url != "sqlite" for url in args.database_url or ["sqlite"]) \
            and not args.job_queue:
        raise SystemExit("--quality on PostgreSQL needs --job-queue (e.g. redis://127.0.0.1:6379/3)")
    sizes = [int(n) for n in args.labelers.split(",") if n]
    big_sizes = [int(n) for n in args.big_sizes.split(",") if n] if args.servers == 1 else []
    instance = Path(tempfile.mkdtemp(prefix="supervising_ui_load_"))
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("SUPERVISING_UI_")}
    base_env.update(SUPERVISING_UI_INSTANCE=str(instance), SUPERVISING_UI_SECRET_KEY="benchmark",
                    SUPERVISING_UI_JOB_QUEUE="memory",
                    SUPERVISING_UI_EMBEDDING_CACHE=str(instance / "embeddings"))
    os.environ.update(base_env)
    sys.path.insert(0, str(ROOT))
    run_id, pool, engines = uuid.uuid4().hex[:6], [], []
    kind = "gunicorn gthread" if args.servers == 1 and not args.quality else \
        f"{args.servers} x serve (gunicorn gthread"
    print(f"{kind} {args.workers} workers x {args.threads} threads"
          f"{')' if args.servers > 1 else ''} per database; {os.cpu_count()} CPUs; "
          f"{args.seconds:.0f} s per round; Later share {args.later_share}; think time "
          f"{args.think_ms:.0f} ms mean; load average {os.getloadavg()[0]:.1f}"
          f"{'; Dawid-Skene and adaptive redundancy on (--quality)' if args.quality else ''}",
          flush=True)
    try:
        for url in args.database_url:
            engines.append(set_up_engine(url, instance, base_env, args, run_id, sizes, pool))
        for engine in engines:
            start_servers(engine, instance, args)
        if sizes:
            print("\nCPU in cores x 100 % (client: this process; server: the app's processes; "
                  "db: PostgreSQL's backends); load average before/after\n" + HEADER, flush=True)
        for index, n in enumerate(sizes):
            # Every other round in the reverse order: the machine's load drifts within a round
            # pair, and neither database should always run second.
            order = engines if index % 2 == 0 else engines[::-1]
            measured = {id(engine): run_round(engine, index, n, args) for engine in order}
            results = [measured[id(engine)] for engine in engines]
            for engine, result in zip(engines, results, strict=True):
                print_row(n, engine, result)
            if len(engines) > 1:
                print_ratios(n, engines, results)
        for engine in engines:
            if big_sizes:
                big_projects(engine, big_sizes, pool[0], run_id, args)
        status = 0
        if args.servers > 1 and args.retrain_check:
            from load_retrain import retrain_check
            for engine in engines:
                status |= retrain_check(engine, lambda count: project_of_pool(
                    f"teams-{run_id}", pool[0][:count]))
    finally:
        for engine in engines:
            for server in engine.servers:
                server.stop()
            if engine.name != "sqlite":
                with engine.app.app_context():
                    delete_created(engine.created, run_id)
        if not args.keep:
            shutil.rmtree(instance, ignore_errors=True)
    return status


def delete_created(project_ids: list[int], run_id: str) -> None:
    """Delete what the benchmark created in a persistent database."""
    from sqlalchemy import delete, select

    from supervising_ui.extensions import db
    from supervising_ui.models import (
        ApiToken,
        ConsensusRun,
        Image,
        ImageConsensus,
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
                # --quality: the consensus job's rows (Dawid-Skene and adaptive redundancy).
                delete(ImageConsensus).where(ImageConsensus.project_id == project_id),
                delete(ConsensusRun).where(ConsensusRun.project_id == project_id),
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
    sys.exit(main())
