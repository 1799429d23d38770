"""Every route in the URL map, fed malformed input by anonymous users and admins, answers < 500.

Parameter names come from the package's source (every literal handed to ``.get(...)`` and
similar calls), so a new route or field is swept without editing this test.
"""
import dataclasses
import hashlib
import json
import re
from pathlib import Path
from urllib.parse import quote

import pytest

import supervising_ui
from supervising_ui.accounts import users as accounts
from supervising_ui.extensions import db
from supervising_ui.models import Job, User
from supervising_ui.projects import demo
from supervising_ui.projects import service as projects

from ..helpers import add_serving_model, add_stored_images

BAD_IDS = ("0", "-1", str(2**63), str(10**30), "1.5", "%CE%95")
# Text values for query parameters and form fields; the raw ones are sent percent-encoded.
TEXT_VALUES = ("0", "-1", str(2**63), str(10**30), "1e309", "nan", "\r\nX-Injected: 1",
               "Ελληνικά ☃", "", "x" * 1000)
RAW_VALUES = ("%00", "%ED%A0%80", "%FF")  # NUL, a lone surrogate in UTF-8 form, a stray byte
JSON_VALUES = (0, -1, 2**63, 10**30, 1e308, None, [], {}, "\r\n", "Ελληνικά", "\x00", "\ud800",
               "x" * 1000)
GARBAGE_BODIES = ((b"\xff\xfe\x00{[", "application/json"), (b'{"a": ', "application/json"),
                  (b"[1, 2]", "application/json"),
                  (b"a=%00%ZZ&&==", "application/x-www-form-urlencoded"),
                  (b"--x\r\nbroken", "multipart/form-data; boundary=x"), (b"", None))
PATH_TEXT = ("plot.png", "%0D%0A", "%00", "%CE%95.png", "..%2F..%2Fsecret_key")
_ARGUMENT = re.compile(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>")
_FIELD_LITERAL = re.compile(r"""(?:\.get(?:list)?\(|\(\w+,)\s*["']([a-z][a-z0-9_]{0,40})["']""")


def field_names() -> list[str]:
    """Return every name the package reads from args, forms or JSON (a generous superset)."""
    package = Path(supervising_ui.__file__).parent
    names = {"next", "page", "csrf_token"}
    for source in package.rglob("*.py"):
        if not {"ml", "migrations"} & set(source.relative_to(package).parts):
            names.update(_FIELD_LITERAL.findall(source.read_text()))
    return sorted(names)


def fill(rule, values: dict, default_id: str, text: str = "plot.png") -> str:
    """Return rule's URL with each id from values (default_id if absent) and text elsewhere."""
    def part(match):
        converter, name = match.group(1), match.group(2)
        return values.get(name, default_id) if converter == "int" else text
    return _ARGUMENT.sub(part, rule.rule)


@pytest.fixture
def sweep_data(app, users):
    """A project with a stored image, a class, a model version and a job; their ids by name."""
    with app.app_context():
        project = projects.create_project("Sweep", preset="hirise")
        [image_id] = add_stored_images(app, project.id, 1)
        classes = len(project.classes)
        version_id = add_serving_model(project.id, {image_id: [1.0] + [0.0] * (classes - 1)})
        job = Job(kind="import", project_id=project.id, params={}, created_by_id=users["ada"])
        db.session.add(job)
        db.session.commit()
        token = accounts.create_api_token(db.session.get(User, users["ada"]))
        return {"project_id": str(project.id), "image_id": str(image_id),
                "class_id": str(project.classes[0].id), "user_id": str(users["lee"]),
                "job_id": str(job.id), "version_id": str(version_id)}, token


def requests_for(method: str, url: str, names: list[str], full: bool):
    """Yield (url, keyword arguments) for the malformed requests sent to one route and method."""
    def query(value, raw=False):
        return "&".join(f"{quote(name)}={value if raw else quote(value)}" for name in names)
    values = TEXT_VALUES if full else TEXT_VALUES[:3]
    for value in values:
        form = {name: value for name in names} if method != "GET" else None
        yield f"{url}?{query(value)}", {"data": form}
    for raw in RAW_VALUES:
        body = "&".join(f"{name}={raw}" for name in names)
        yield f"{url}?{query(raw, raw=True)}", {
            "data": body if method != "GET" else None,
            "content_type": "application/x-www-form-urlencoded"}
    if method == "GET" or not full:
        return
    for value in JSON_VALUES:
        yield url, {"data": json.dumps({name: value for name in names}),
                    "content_type": "application/json"}
    for body, content_type in GARBAGE_BODIES:
        yield url, {"data": body, "content_type": content_type}


@pytest.mark.slow
def test_no_route_answers_500_to_malformed_input(app, client, auth, sweep_data, monkeypatch):
    ids, token = sweep_data
    names = field_names()
    auth.login("ada")
    # Wrong passwords are checked with a cheap scrypt: the sweep tests input, not hash cost.
    scrypt = hashlib.scrypt
    monkeypatch.setattr(hashlib, "scrypt", lambda password, **params: scrypt(
        password, **dict(params, n=2, r=1, p=1)))
    # Jobs the sweep starts (imports, retrains, the demo's model) are queued, not run: the
    # sweep tests how each route parses its input; the jobs have their own tests.
    app.extensions["huey"].immediate = False
    # The demo's 60 images are drawn once: the sweep loads the demo some 30 times.
    candidates = demo.demo_candidates()
    monkeypatch.setattr(demo, "demo_candidates", lambda: [
        dataclasses.replace(candidate, metadata=dict(candidate.metadata))
        for candidate in candidates])
    session_headers = {"X-CSRFToken": auth.csrf_token}
    identities = (("anonymous", app.test_client(), {}, False),
                  ("admin token", app.test_client(), {"Authorization": f"Bearer {token}"}, True),
                  ("admin session", client, session_headers, True))
    bad_ids = {"anonymous": BAD_IDS[2:4], "admin token": BAD_IDS[2:4], "admin session": BAD_IDS}
    rules = sorted((rule for rule in app.url_map.iter_rules() if rule.endpoint != "static"),
                   key=lambda rule: (rule.endpoint == "accounts.logout", rule.rule))
    failures, sent = [], 0

    def send(who, requester, headers, method, url, arguments):
        nonlocal sent
        sent += 1
        if isinstance(arguments.get("data"), dict):
            arguments["data"] = dict(arguments["data"], csrf_token=auth.csrf_token)
        try:
            status = requester.open(url, method=method, headers=headers, **arguments).status_code
        except Exception as error:  # TESTING propagates what would have been a 500
            failures.append(f"{who} {method} {url[:120]}: {type(error).__name__}: {error}"[:300])
            return
        if status >= 500:
            failures.append(f"{who} {method} {url[:120]} {arguments.get('content_type')}: {status}")

    for who, requester, headers, full in identities:
        for rule in rules:
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                for bad_id in bad_ids[who]:
                    send(who, requester, headers, method, fill(rule, {}, bad_id), {})
                for text in PATH_TEXT if "<name>" in rule.rule else ():
                    send(who, requester, headers, method, fill(rule, ids, "1", text), {})
                url = fill(rule, ids, "1")
                for request_url, arguments in requests_for(method, url, names, full):
                    send(who, requester, headers, method, request_url, arguments)
            if who == "admin session" and rule.endpoint != "accounts.logout":
                with requester.session_transaction() as session:
                    session.pop("_flashes", None)  # a browser shows and drops them
    assert not failures, f"{len(failures)} of {sent} requests failed:\n" + "\n".join(failures[:30])
    assert sent > 1000
