"""API fuzzing: schemathesis generates requests from the API's OpenAPI document
(``/api/openapi.json``) and sends them to a live server, as an admin and as a labeler.

The server is the app on a threaded werkzeug server on 127.0.0.1 (as tests/browser.py's
live_server), over a fresh instance: SQLite in a temporary folder, or the PostgreSQL database
of --database-url (a scratch one: it is migrated and filled). It holds an admin and a labeler
with API tokens, a project with stored images, metadata, a group column, a serving model's
predictions and a few labels, a members-only project the labeler may not see, and a job.
Jobs are queued, never run (a retrain request must not train here).

For every operation, every token, and both of schemathesis's generation modes (positive:
requests the document allows; negative: requests it forbids), Hypothesis draws up to
--examples requests. Each response is checked for a server error (5xx) and against the
document: a status it does not list, a content type it does not list, or a body that breaks
its schema. It prints the number of requests sent, server errors and schema violations
(with the first few, reproducible as curl commands), and exits 1 unless both are 0.

Examples:
  .venv/bin/python benchmarks/api_fuzz.py                      # SQLite, 150 examples each
  .venv/bin/python benchmarks/api_fuzz.py --examples 10
  .venv/bin/python benchmarks/api_fuzz.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/fuzz

tests/web/test_api_fuzz.py runs the same with a few examples per operation in `make test`.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLASSES = ["crater", "dark_dune", "other"]
IMAGES = 24
# Violations printed in full (the rest are counted).
SHOWN = 5


@dataclass
class Tally:
    """What a fuzzing run sent and found."""

    requests: int = 0
    server_errors: int = 0
    violations: int = 0
    # (operation, role, mode) runs that could draw no request (nothing to make invalid).
    skipped: list[str] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, server_error: bool, failure: str | None) -> None:
        """Count one request, and what was wrong with its response."""
        with self.lock:
            self.requests += 1
            self.server_errors += server_error
            if failure is not None:
                self.violations += not server_error
                if len(self.examples) < SHOWN:
                    self.examples.append(failure)


def _jpeg(seed: int, size: int = 48) -> bytes:
    """Return a small grayscale JPEG whose pixels depend on seed."""
    import random

    from PIL import Image as PILImage
    rng = random.Random(seed)
    picture = PILImage.new("L", (size, size))
    picture.putdata([rng.randrange(256) for _ in range(size * size)])
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=80)
    return buffer.getvalue()


def seed_instance(app) -> dict[str, str]:
    """Fill app's database with what the API serves; return {"admin": token, "labeler": token}."""
    import numpy as np

    from supervising_ui import storage
    from supervising_ui.accounts.users import create_api_token, create_user
    from supervising_ui.extensions import db
    from supervising_ui.jobs import queue as jobs
    from supervising_ui.ml.uncertainty import scores
    from supervising_ui.models import Image, Label, ModelVersion, Prediction
    from supervising_ui.projects.service import create_project
    from supervising_ui.search import index

    # Jobs stay queued: a retrain request must not train a model inside the server.
    app.extensions["execute_job"] = lambda job_id: None
    with app.app_context():
        admin, _ = create_user("fuzz_admin", role="admin", password="fuzzing admin password")
        labeler, _ = create_user("fuzz_labeler", password="fuzzing labeler password")
        project = create_project("fuzz Ærø 火星", classes=CLASSES)
        project.group_column = "source_id"
        hidden = create_project("members only", classes=CLASSES)
        hidden.members_only = True
        db.session.commit()
        images = []
        for number in range(IMAGES):
            data = _jpeg(number)
            info = storage.validate_image(data, app.config["MAX_IMAGE_PIXELS"])
            storage.store_bytes(app.config["IMAGE_STORE"], info.storage_key, data)
            owner = hidden if number % 6 == 5 else project
            images.append(Image(project_id=owner.id, storage_key=info.storage_key,
                                original_name=f"ESP_{number:04d}_{CLASSES[number % 3]}.jpg",
                                content_hash=info.content_hash, width=info.width,
                                height=info.height,
                                meta={"source_id": f"ESP_{number % 4}", "sol": number * 7,
                                      "instrument": ("HiRISE", "CTX")[number % 2]}))
        db.session.add_all(images)
        db.session.commit()
        classes = {label_class.name: label_class for label_class in project.classes}
        model = ModelVersion(project_id=project.id, version=1, kind="quick", path="",
                             is_serving=True)
        db.session.add(model)
        db.session.flush()
        for image in images:
            if image.project_id != project.id:
                continue
            probabilities = np.array([[0.6, 0.3, 0.1] if image.id % 2 else [0.2, 0.3, 0.5]])
            stored = {name: float(values[0]) for name, values in scores(probabilities).items()}
            predicted = CLASSES[int(probabilities.argmax())]
            db.session.add(Prediction(
                model_version_id=model.id, image_id=image.id,
                label_class_id=classes[predicted].id, **stored,
                probabilities=dict(zip(CLASSES, probabilities[0].tolist(), strict=True))))
        for image in images[:4]:
            if image.project_id == project.id:
                db.session.add(Label(project_id=project.id, image_id=image.id, user_id=admin.id,
                                     label_class_id=classes["crater"].id,
                                     request_id=f"seed-{image.id}"))
        db.session.commit()
        for seeded in (project, hidden):
            index.rebuild_project(seeded.id)
        jobs.submit("retrain", project.id, {"kind": "quick"}, admin.id)
        return {"admin": create_api_token(admin, "fuzz"),
                "labeler": create_api_token(labeler, "fuzz")}


@contextlib.contextmanager
def live_server(app):
    """Serve app with a threaded werkzeug server on a free port of 127.0.0.1; yield its URL."""
    from werkzeug.serving import make_server
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


def fuzz(document: dict, base_url: str, tokens: dict[str, str], examples: int,
         seed: int = 0) -> Tally:
    """Send up to `examples` generated requests per operation, token and mode; return the tally."""
    import requests
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hypothesis_seed
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error
    from schemathesis.core.failures import FailureGroup
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    checks = [not_a_server_error, status_code_conformance, content_type_conformance,
              response_schema_conformance]
    schema = schemathesis.openapi.from_dict(document)
    tally = Tally()
    session = requests.Session()

    def run_one(operation, mode, role: str, token: str) -> None:
        """Draw up to `examples` requests of one operation in one mode, sent with one token."""
        headers = {"Authorization": f"Bearer {token}"}

        @hypothesis_seed(seed)
        @settings(max_examples=examples, deadline=None, database=None,
                  phases=[Phase.generate], suppress_health_check=list(HealthCheck),
                  print_blob=False)
        @given(case=operation.as_strategy(generation_mode=mode))
        def send(case):
            response = case.call(base_url=base_url, session=session, headers=headers, timeout=30)
            failure = None
            try:
                case.validate_response(response, checks=checks, headers=headers)
            except FailureGroup as group:
                failure = f"[{role}] {str(group).strip()}"
            tally.record(response.status_code >= 500, failure)

        try:
            send()
        except Unsatisfiable:
            tally.skipped.append(f"{operation.label} [{role}, {mode.value}]")

    for result in schema.get_all_operations():
        operation = result.ok()
        for role, token in sorted(tokens.items()):
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                run_one(operation, mode, role, token)
    return tally


def openapi_document(app, token: str) -> dict:
    """Return the document the server serves at /api/openapi.json."""
    response = app.test_client().get("/api/openapi.json",
                                     headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.status_code
    return response.get_json()


def run(database_url: str | None, examples: int, seed: int) -> Tally:
    """Build an instance on database_url (None: SQLite in a temporary folder) and fuzz it."""
    from supervising_ui import create_app
    from supervising_ui.database import create_or_migrate
    from supervising_ui.extensions import db

    with tempfile.TemporaryDirectory(prefix="api-fuzz-") as folder:
        os.environ["SUPERVISING_UI_INSTANCE"] = str(Path(folder) / "instance")
        config = {"SECRET_KEY": "fuzz", "JOB_QUEUE": "memory",
                  "DATABASE_URL": database_url or f"sqlite:///{Path(folder) / 'fuzz.sqlite3'}"}
        app = create_app(config)
        with app.app_context():
            create_or_migrate()
        tokens = seed_instance(app)
        document = openapi_document(app, tokens["admin"])
        try:
            with live_server(app) as base_url:
                return fuzz(document, base_url, tokens, examples, seed)
        finally:
            with app.app_context():
                db.session.remove()
                db.engine.dispose()


def main(argv=None) -> int:
    """Fuzz the API on one engine and print what was sent and found."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="a scratch PostgreSQL database (default: SQLite)")
    parser.add_argument("--examples", type=int, default=150,
                        help="most requests per operation, token and generation mode")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    engine = "PostgreSQL" if args.database_url else "SQLite"
    started = time.perf_counter()
    tally = run(args.database_url, args.examples, args.seed)
    for example in tally.examples:
        print(example, "\n")
    print(json.dumps({"engine": engine, "examples_per_operation": args.examples,
                      "requests": tally.requests, "server_errors": tally.server_errors,
                      "schema_violations": tally.violations,
                      "runs_without_requests": len(tally.skipped),
                      "seconds": round(time.perf_counter() - started, 1)}))
    return 0 if tally.server_errors == 0 and tally.violations == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
