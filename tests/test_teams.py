"""Teams: two `supervising-ui serve` processes on one PostgreSQL database and one Redis job
queue, sharing the instance folder (images, models, the secret key).

Labelers spread over both servers: every acknowledged label is stored once and no image is
held by two labelers at once; a session cookie made by one server works on the other; a
retrain started through one server is run once, by one of the two job workers, and its
suggestions show on both.

Needs PostgreSQL (SUPERVISING_UI_TEST_DATABASE_URL) and Redis (SUPERVISING_UI_TEST_REDIS_URL,
default redis://127.0.0.1:6379/0; the test empties the job queue's keys there). Without them
the test is skipped, saying which is missing; where SUPERVISING_UI_TEST_REQUIRE_SERVICES is set
(CI's PostgreSQL run), a missing Redis fails it instead.
"""
import http.cookiejar
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select

from supervising_ui import create_app
from supervising_ui.accounts.users import create_api_token, create_user
from supervising_ui.extensions import db
from supervising_ui.models import Image, Job, Label, ModelVersion, Project, User

from .conftest import PASSWORD, TEST_DATABASE_URL, _reset_postgres
from .helpers import LOOP_CLASSES, make_stored_project
from .processes import answers, children_of, command_line, free_port, wait_until

pytestmark = pytest.mark.slow
REDIS_URL = os.environ.get("SUPERVISING_UI_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REQUIRE_SERVICES = bool(os.environ.get("SUPERVISING_UI_TEST_REQUIRE_SERVICES"))
IMAGES, LABELED, LABELERS = 32, 24, 4
DEADLINE_SECONDS = 240  # a quick retrain from a cold embedding cache on 2 busy cores


def redis_problem() -> str | None:
    """Why the Redis server at REDIS_URL cannot be used, or None when it answers."""
    try:
        import redis
    except ImportError:
        return "the redis package is not installed (pip install '.[redis]')"
    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2).ping()
    except redis.RedisError as error:
        return f"no Redis answers at {REDIS_URL} ({error})"
    return None


class Serve:
    """`supervising-ui serve` (1 gunicorn worker x 4 threads and a job worker) on a port."""

    def __init__(self, env: dict, log_path: Path):
        self.port = free_port()
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "supervising_ui.cli", "serve", "--port", str(self.port),
                 "--workers", "1", "--threads", "4", "--access-log", "none"],
                env=env, stdout=log, stderr=subprocess.STDOUT)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def job_worker(self) -> int | None:
        found = [pid for pid in children_of(self.process.pid)
                 if command_line(pid).endswith("supervising_ui.cli worker ")]
        return found[0] if found else None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(40)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def call(url: str, token: str, method: str = "GET", body: dict | None = None):
    """One JSON API request with a bearer token; return (status, parsed body or None)."""
    request = urllib.request.Request(url, method=method, headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        data=json.dumps(body).encode() if body is not None else None)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            data = response.read()
            return response.status, json.loads(data) if data else None
    except urllib.error.HTTPError as error:
        return error.code, None


@pytest.fixture
def team(tmp_path, monkeypatch):
    """Two serve processes on the test PostgreSQL database and the Redis queue, one instance."""
    if not TEST_DATABASE_URL:
        pytest.skip("needs PostgreSQL: set SUPERVISING_UI_TEST_DATABASE_URL (a team shares one "
                    "PostgreSQL database; SQLite is for one machine)")
    problem = redis_problem()
    if problem:
        if REQUIRE_SERVICES:
            pytest.fail(f"{problem}; SUPERVISING_UI_TEST_REQUIRE_SERVICES is set")
        pytest.skip(f"needs Redis: {problem} (set SUPERVISING_UI_TEST_REDIS_URL)")
    from huey import RedisHuey
    RedisHuey("supervising_ui", url=REDIS_URL).flush()  # no job message left from another run
    instance = tmp_path / "instance"
    for name in list(os.environ):
        if name.startswith("SUPERVISING_UI_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("SUPERVISING_UI_INSTANCE", str(instance))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPERVISING_UI_")}
    env.update(SUPERVISING_UI_INSTANCE=str(instance), SUPERVISING_UI_DATABASE_URL=TEST_DATABASE_URL,
               SUPERVISING_UI_JOB_QUEUE=REDIS_URL)
    app = create_app({"DATABASE_URL": TEST_DATABASE_URL, "JOB_QUEUE": "memory"})
    with app.app_context():
        _reset_postgres()
        create_user("ada", role="admin", password=PASSWORD)
        tokens = {"admin": create_api_token(db.session.scalar(select(User)))}
        tokens["labelers"] = [create_api_token(create_user(f"lee{index}", password=PASSWORD)[0])
                              for index in range(LABELERS)]
        project_id = make_stored_project(app, count=IMAGES)
        db.session.get(Project, project_id).hide_suggestion_share = 0.0
        db.session.commit()
        db.session.remove()
    servers = [Serve(env, tmp_path / f"serve{index}.log") for index in range(2)]
    try:
        for server in servers:
            wait_until(lambda server=server: answers(server.url("/login")), 90,
                       f"serve on port {server.port}")
        yield app, project_id, tokens, servers
    finally:
        for server in servers:
            server.stop()
        with app.app_context():
            db.engine.dispose()


def label_through(server: Serve, token: str, project_id: int, wanted: int, record: dict):
    """Label up to `wanted` images through one server with their true class (the generated
    images' names carry their index); record what the server answered."""
    while len(record["labels"]) < wanted:
        status, given = call(server.url(f"/api/projects/{project_id}/next"), token)
        if status == 204:
            return
        assert status == 200
        truth = LOOP_CLASSES[int(given["filename"][3:6]) % 2]  # "img007.png" -> index 7
        status, label = call(server.url(f"/api/images/{given['image_id']}/labels"), token,
                             "POST", {"label": truth, "request_id": str(uuid.uuid4())})
        record["statuses"].append(status)
        if status == 201:
            record["labels"].append(label["id"])
            record["images"].append(given["image_id"])


def test_two_servers_share_the_database_the_queue_and_the_instance(team):
    app, project_id, tokens, servers = team

    # Labelers spread over both servers (labeler i on server i % 2), all at once.
    records = [{"labels": [], "statuses": [], "images": []} for _ in range(LABELERS)]
    threads = [threading.Thread(target=label_through, args=(
        servers[index % 2], tokens["labelers"][index], project_id, LABELED // LABELERS,
        records[index])) for index in range(LABELERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    acknowledged = [label_id for record in records for label_id in record["labels"]]
    assert all(status == 201 for record in records for status in record["statuses"])
    assert len(acknowledged) == LABELED
    images = [image_id for record in records for image_id in record["images"]]
    assert len(set(images)) == len(images), "an image was labeled twice (one label per image)"
    with app.app_context():
        stored = db.session.scalars(select(Label.id).where(Label.project_id == project_id)).all()
        counted = db.session.scalar(select(func.sum(Image.label_count)).where(
            Image.project_id == project_id))
        db.session.remove()
    assert sorted(stored) == sorted(acknowledged) and counted == LABELED

    # A session cookie made by one server works on the other: they share the secret key.
    browser = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    page = browser.open(servers[0].url("/login")).read().decode()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    browser.open(servers[0].url("/login"), data=urllib.parse.urlencode(
        {"username": "ada", "password": PASSWORD, "csrf_token": csrf}).encode())
    home = browser.open(servers[1].url("/"))
    assert home.status == 200 and home.geturl() == servers[1].url("/"), "not sent to the login"

    # A retrain started through the first server runs once, by one of the two job workers...
    workers = [wait_until(server.job_worker, 30, "a job worker") for server in servers]
    status, job = call(servers[0].url(f"/api/projects/{project_id}/retrain"), tokens["admin"],
                       "POST", {"kind": "quick"})
    assert status == 202
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        status, report = call(servers[1].url(f"/api/jobs/{job['job_id']}"), tokens["admin"])
        assert status == 200 and report["state"] != "failed", report
        if report["state"] == "done":
            break
        time.sleep(1)
    else:
        pytest.fail(f"the retrain did not finish; logs:\n{servers[0].log()[-2000:]}\n"
                    f"{servers[1].log()[-2000:]}")
    with app.app_context():
        ran = db.session.get(Job, job["job_id"])
        versions = db.session.scalar(select(func.count(ModelVersion.id)).where(
            ModelVersion.project_id == project_id))
        assert ran.worker_pid in workers and ran.interruptions == 0
        assert ran.log.count("quick retrain of") == 1, ran.log
        db.session.remove()
    assert versions == 1 and report["model_version"] == 1

    # ...and its suggestions show on both servers.
    for index, server in enumerate(servers):
        status, given = call(server.url(f"/api/projects/{project_id}/next"),
                             tokens["labelers"][index])
        assert status == 200 and given["suggestion"]["model_version"] == 1
