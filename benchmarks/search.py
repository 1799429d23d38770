"""Search benchmark: latency of the Atlas search and groups API on projects of 10 thousand and
1 million images with metadata and predictions.

For each size it builds a project (HiRISE classes, group column source_id) by bulk inserts
(SQLAlchemy Core executemany, straight into the tables, the search index tables included):
images with metadata instrument (4 values), sol (0-2999) and source_id (50 images each), a
serving model with a prediction per image (skewed classes, confidences mostly high) and a
human label on 2% of the images. Then, through the JSON API (Flask test client, bearer
token), it times:
  - a search with 0 filters, 1 filter (the slider) and 3 filters (class, slider, instrument),
    each with all facet counts and the first page of 50 items;
  - the same 3-filter search right after a label was submitted (the process catches up);
  - the groups view (class, threshold, minimum count 5);
and prints p50/p95 of each (values rotate between requests), after one untimed cold search
that loads the project into the process.

Examples:
  .venv/bin/python benchmarks/search.py                         # SQLite in a temporary folder
  .venv/bin/python benchmarks/search.py --sizes 10000 --repeats 50
  .venv/bin/python benchmarks/search.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench
  .venv/bin/python benchmarks/search.py --instance /tmp/search-bench --keep   # build once, rerun
A PostgreSQL database should be a scratch one: the benchmark migrates it and adds projects.
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLASSES = ["crater", "dark_dune", "bright_dune", "streak", "other", "edge"]
CLASS_WEIGHTS = [0.15, 0.10, 0.08, 0.07, 0.55, 0.05]
INSTRUMENTS = ["HiRISE", "CTX", "MAHLI", "Mastcam"]
IMAGES_PER_SOURCE = 50
LABELED_SHARE = 0.02
BATCH = 20000
THRESHOLDS = ["0.8", "0.85", "0.9", "0.95"]


def parse_args(argv=None):
    """Return the command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=None,
                        help="SQLAlchemy URL (default: SQLite in the instance folder)")
    parser.add_argument("--sizes", default="10000,1000000", help="comma-separated image counts")
    parser.add_argument("--repeats", type=int, default=40, help="timed requests per case")
    parser.add_argument("--instance", default=None,
                        help="instance folder (default: a new temporary one); projects built "
                             "there before are reused")
    parser.add_argument("--keep", action="store_true", help="keep the instance folder")
    return parser.parse_args(argv)


# --- building a project ----------------------------------------------------------------------

def build_project(size: int, user_id: int) -> int:
    """Create a project of size images with metadata, predictions, labels and search rows."""
    from sqlalchemy import select

    from supervising_ui.extensions import db
    from supervising_ui.models import (
        Image,
        Label,
        ModelVersion,
        Prediction,
        SearchColumn,
        SearchImage,
        SearchMeta,
        SearchState,
        SearchValue,
        utcnow,
    )
    from supervising_ui.projects.service import create_project
    from supervising_ui.search.index import search_fields

    project = create_project(f"search-bench-{size}", preset="hirise")
    project_id, class_ids = project.id, [c.id for c in project.classes]
    rng = random.Random(size)
    now = utcnow()
    images = [{"instrument": rng.choice(INSTRUMENTS), "sol": rng.randrange(3000),
               "source_id": f"ESP_{i // IMAGES_PER_SOURCE:06d}_1950"} for i in range(size)]
    _insert(Image, ({"project_id": project_id, "storage_key": f"00/00/{i:064x}.jpg",
                     "original_name": f"{meta['source_id']}_RED-{i % IMAGES_PER_SOURCE:04d}.jpg",
                     "content_hash": f"{i:064x}", "width": 227, "height": 227, "meta": meta,
                     "random_key": rng.random(), "label_count": 0, "created_at": now}
                    for i, meta in enumerate(images)))
    image_ids = list(db.session.scalars(select(Image.id).where(Image.project_id == project_id)
                                        .order_by(Image.id)))
    model = ModelVersion(project_id=project_id, version=1, kind="bench", path="", is_serving=True)
    db.session.add(model)
    db.session.commit()
    predicted = rng.choices(class_ids, CLASS_WEIGHTS, k=size)
    confidence = [min(0.999, rng.betavariate(5, 1.2)) for _ in range(size)]
    _insert(Prediction, ({"model_version_id": model.id, "image_id": image_id,
                          "label_class_id": predicted[i], "confidence": confidence[i],
                          "margin": confidence[i] / 2, "entropy": 1 - confidence[i],
                          "probabilities": {}} for i, image_id in enumerate(image_ids)))
    labeled = {i: rng.choices(class_ids, CLASS_WEIGHTS)[0]
               for i in rng.sample(range(size), int(size * LABELED_SHARE))}
    _insert(Label, ({"project_id": project_id, "image_id": image_ids[i], "user_id": user_id,
                     "label_class_id": class_id, "created_at": now, "suggestion_shown": False}
                    for i, class_id in labeled.items()))
    db.session.add(SearchState(project_id=project_id, generation=1))
    _insert(SearchImage, ({"image_id": image_id, "project_id": project_id, "generation": 1,
                           "filename": f"{images[i]['source_id']}_RED-"
                                       f"{i % IMAGES_PER_SOURCE:04d}.jpg",
                           "label_class_id": labeled.get(i), "predicted_class_id": predicted[i],
                           "confidence": confidence[i], "model_version_id": model.id,
                           **search_fields(labeled.get(i), predicted[i], confidence[i])}
                          for i, image_id in enumerate(image_ids)))
    columns = {}
    for key in ("instrument", "sol", "source_id"):
        column = SearchColumn(project_id=project_id, key=key)
        db.session.add(column)
        db.session.flush()
        columns[key] = column.id
        texts = sorted({str(meta[key]) for meta in images})
        _insert(SearchValue, ({"column_id": column.id, "text": text,
                               "number": float(text) if key == "sol" else None} for text in texts))
    value_ids = {(column_id, text): value_id for value_id, column_id, text in db.session.execute(
        select(SearchValue.id, SearchValue.column_id, SearchValue.text)
        .where(SearchValue.column_id.in_(list(columns.values()))))}
    _insert(SearchMeta, ({"image_id": image_id, "column_id": columns[key], "project_id": project_id,
                          "value_id": value_ids[(columns[key], str(images[i][key]))]}
                         for i, image_id in enumerate(image_ids) for key in columns))
    _analyze()
    return project_id


def _insert(model, rows) -> None:
    """Insert rows in batches of BATCH, a transaction each (Core executemany)."""
    from sqlalchemy import insert

    from supervising_ui.extensions import db
    batch = []
    for row in rows:
        batch.append(row)
        if len(batch) == BATCH:
            db.session.execute(insert(model), batch)
            db.session.commit()
            batch = []
    if batch:
        db.session.execute(insert(model), batch)
        db.session.commit()


def _analyze() -> None:
    """Refresh the planner's statistics after the bulk load."""
    from sqlalchemy import text

    from supervising_ui.extensions import db
    db.session.execute(text("ANALYZE"))
    db.session.commit()


def find_or_build(size: int, user_id: int) -> tuple[int, float | None]:
    """Return (project id, build seconds or None when a complete earlier build was reused)."""
    from sqlalchemy import func, select

    from supervising_ui.extensions import db
    from supervising_ui.models import Project, SearchImage
    project_id = db.session.scalar(select(Project.id).where(
        Project.name == f"search-bench-{size}"))
    if project_id is not None and db.session.scalar(select(func.count()).select_from(
            SearchImage).where(SearchImage.project_id == project_id)) == size:
        return project_id, None
    if project_id is not None:
        raise SystemExit(f"project search-bench-{size} is incomplete: use a fresh --instance")
    started = time.perf_counter()
    project_id = build_project(size, user_id)
    return project_id, time.perf_counter() - started


# --- timing ----------------------------------------------------------------------------------

def cases(size: int) -> dict:
    """Return the timed cases: name -> (path, function of the request number -> query)."""
    def class_of(n):
        return CLASSES[n % len(CLASSES)]
    return {
        "search, 0 filters": ("search", lambda n: f"sort={'confidence_desc' if n % 2 else 'random'}"),
        "search, 1 filter (slider)": ("search", lambda n: f"min_confidence={THRESHOLDS[n % 4]}"),
        "search, 3 filters": ("search", lambda n: (
            f"class={class_of(n)}&min_confidence={THRESHOLDS[n % 4]}"
            f"&meta.instrument={INSTRUMENTS[n % len(INSTRUMENTS)]}")),
        "search, 3 filters after a label": ("search+label", lambda n: (
            f"class={class_of(n)}&min_confidence={THRESHOLDS[n % 4]}"
            f"&meta.instrument={INSTRUMENTS[n % len(INSTRUMENTS)]}")),
        "groups (class, threshold, min 5)": ("groups", lambda n: (
            f"class={class_of(n)}&min_confidence={THRESHOLDS[n % 4]}&min_count=5")),
    }


def submit_label(app, project_id: int, labeler_id: int, rng: random.Random) -> None:
    """Store a label on a random image as the labeling code does (label row, then the index)."""
    from sqlalchemy import func, insert, select

    from supervising_ui.extensions import db
    from supervising_ui.models import Label, LabelClass, SearchImage, utcnow
    from supervising_ui.search import index
    with app.app_context():
        low, high = db.session.execute(select(func.min(SearchImage.image_id),
                                              func.max(SearchImage.image_id))
                                       .where(SearchImage.project_id == project_id)).one()
        class_id = db.session.scalar(select(LabelClass.id).where(
            LabelClass.project_id == project_id).limit(1))
        image_id = rng.randint(low, high)
        while db.session.scalar(select(Label.id).where(Label.image_id == image_id,
                                                       Label.user_id == labeler_id)):
            image_id = rng.randint(low, high)
        db.session.execute(insert(Label).values(project_id=project_id, image_id=image_id,
                                                user_id=labeler_id, label_class_id=class_id,
                                                created_at=utcnow(), suggestion_shown=False))
        index.refresh_images([image_id])
        db.session.commit()


def time_case(app, client, token, project_id, labeler_id, kind, query_of, repeats) -> list[float]:
    """Return the seconds of each timed request of one case."""
    rng = random.Random(7)
    headers = {"Authorization": f"Bearer {token}"}
    path = "groups" if kind == "groups" else "search"
    seconds = []
    for n in range(repeats):
        if kind == "search+label":
            submit_label(app, project_id, labeler_id, rng)
        started = time.perf_counter()
        response = client.get(f"/api/projects/{project_id}/{path}?{query_of(n)}", headers=headers)
        seconds.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise SystemExit(f"{path}?{query_of(n)} answered {response.status_code}: "
                             f"{response.get_data(as_text=True)[:300]}")
    return seconds


def percentile_ms(values: list[float], percent: int) -> float:
    """Return a percentile of seconds, in milliseconds."""
    return statistics.quantiles(values, n=100, method="inclusive")[percent - 1] * 1000


def main(argv=None) -> None:
    """Build the projects and print the latencies."""
    args = parse_args(argv)
    instance = Path(args.instance or tempfile.mkdtemp(prefix="supervising_ui_search_"))
    instance.mkdir(parents=True, exist_ok=True)
    for name in list(os.environ):
        if name.startswith("SUPERVISING_UI_"):
            del os.environ[name]
    os.environ.update(SUPERVISING_UI_INSTANCE=str(instance), SUPERVISING_UI_SECRET_KEY="benchmark",
                      SUPERVISING_UI_JOB_QUEUE="memory")
    if args.database_url:
        os.environ["SUPERVISING_UI_DATABASE_URL"] = args.database_url
    sys.path.insert(0, str(ROOT))
    from sqlalchemy import select

    from supervising_ui import create_app
    from supervising_ui.accounts.users import create_api_token, create_user
    from supervising_ui.database import create_or_migrate
    from supervising_ui.extensions import db
    from supervising_ui.models import User
    app = create_app()
    try:
        with app.app_context():
            create_or_migrate()
            backend = db.engine.dialect.name
            user, labeler = (db.session.scalar(select(User).where(User.username == name)) or
                             create_user(name, password="benchmark password")[0]
                             for name in ("search-bench", "search-bench-labeler"))
            user_id, labeler_id, token = user.id, labeler.id, create_api_token(user)
        print(f"backend {backend}; {os.cpu_count()} CPUs; {args.repeats} requests per case; "
              f"instance {instance}", flush=True)
        client = app.test_client()
        for size in [int(n) for n in args.sizes.split(",") if n]:
            with app.app_context():
                project_id, built = find_or_build(size, user_id)
            how = f"built in {built:.0f} s" if built is not None else "reused"
            started = time.perf_counter()
            client.get(f"/api/projects/{project_id}/search",
                       headers={"Authorization": f"Bearer {token}"})
            print(f"\n{size} images ({how}); first search, loading the project into the "
                  f"process: {time.perf_counter() - started:.2f} s", flush=True)
            for name, (kind, query_of) in cases(size).items():
                seconds = time_case(app, client, token, project_id, labeler_id, kind,
                                    query_of, args.repeats)
                print(f"  {name:<36} p50 {percentile_ms(seconds, 50):7.1f} ms   "
                      f"p95 {percentile_ms(seconds, 95):7.1f} ms", flush=True)
    finally:
        if not args.keep and not args.instance:
            shutil.rmtree(instance, ignore_errors=True)


if __name__ == "__main__":
    main()
