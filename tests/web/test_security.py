"""Request hardening: size limits, security headers, JSON errors, 503 on a full disk, no 500
from bad input (the URL-map sweep is in test_bad_input.py)."""
import errno
import io
import re
import sqlite3
import sys

import pytest
from flask import abort
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from supervising_ui import cli, create_app, storage
from supervising_ui.extensions import db
from supervising_ui.jobs import status as job_status
from supervising_ui.models import Image, Job, utcnow
from supervising_ui.projects import service as projects
from supervising_ui.web import errors
from supervising_ui.web.guards import MAX_ID, json_depth
from supervising_ui.web.headers import CONTENT_SECURITY_POLICY

from ..browser import CHROMIUM, log_in
from ..conftest import PASSWORD, csrf_token_from
from ..helpers import add_stored_images, image_bytes, make_project

MIB = 1024**2


class CountingStream(io.RawIOBase):
    """A request body of size bytes that counts how many of them the server reads."""

    def __init__(self, size: int):
        self.size, self.read_bytes = size, 0

    def readable(self):
        return True

    def readinto(self, buffer):
        count = min(len(buffer), self.size - self.read_bytes)
        buffer[:count] = b"x" * count
        self.read_bytes += count
        return count


def _raw_request(path: str, body, content_type: str, **environ) -> Request:
    """Return a POST whose body is read from body as the server would (no length if not given)."""
    built = EnvironBuilder(path=path, method="POST").get_environ()
    built.pop("CONTENT_LENGTH", None)
    built.update({"wsgi.input": body, "CONTENT_TYPE": content_type, **environ})
    return Request(built)


@pytest.fixture
def labeler(client, auth):
    """Log lee (labeler) in; return the login helper with its CSRF token."""
    auth.login("lee")
    return auth


@pytest.fixture
def admin(client, auth):
    """Log ada (admin) in; return the login helper with its CSRF token."""
    auth.login("ada")
    return auth


# Request sizes

def test_a_large_anonymous_post_is_refused_before_its_body_is_read(client):
    body = CountingStream(40 * MIB)
    response = client.open(_raw_request("/login", body, "multipart/form-data; boundary=x",
                                        CONTENT_LENGTH=str(40 * MIB)))
    assert response.status_code == 413 and body.read_bytes == 0


def test_a_chunked_body_is_cut_off_at_the_limit(app, client):
    body = CountingStream(5 * MIB)
    response = client.open(_raw_request("/api/projects", body, "application/json",
                                        **{"wsgi.input_terminated": True}))
    assert response.status_code == 413 and response.get_json()["error"]
    assert body.read_bytes <= app.config["MAX_REQUEST_BYTES"] + 64 * 1024


def test_a_chunked_form_is_cut_off_at_the_limit(client):
    body = CountingStream(5 * MIB)
    response = client.open(_raw_request("/login", body, "application/x-www-form-urlencoded",
                                        **{"wsgi.input_terminated": True}))
    assert response.status_code == 413 and body.read_bytes <= MIB + 64 * 1024


def test_only_the_upload_route_takes_large_bodies(app, client, admin):
    project_id = _project(app)
    big = image_bytes(1) + b"\0" * (2 * MIB)  # a JPEG with trailing bytes: still 2 MiB of body
    create = client.post("/admin/projects", data={
        "csrf_token": admin.csrf_token, "name": "x", "classes": "a,b",
        "files": (io.BytesIO(big), "a.jpg")}, content_type="multipart/form-data")
    assert create.status_code == 413
    upload = client.post(f"/admin/projects/{project_id}/import/upload", data={
        "csrf_token": admin.csrf_token, "files": (io.BytesIO(big), "a.jpg")},
        headers={"Accept": "application/json"}, content_type="multipart/form-data")
    assert upload.status_code == 202, upload.get_data(as_text=True)
    app.config["MAX_CONTENT_LENGTH"] = MIB
    refused = client.post(f"/admin/projects/{project_id}/import/upload", data={
        "csrf_token": admin.csrf_token, "files": (io.BytesIO(big), "a.jpg")},
        headers={"Accept": "application/json"}, content_type="multipart/form-data")
    assert refused.status_code == 413 and "bytes" in refused.get_json()["error"]


def test_deep_or_large_json_is_refused_before_parsing(app, client, labeler):
    image_id = _stored_image(app)
    url, headers = f"/api/images/{image_id}/labels", {"X-CSRFToken": labeler.csrf_token,
                                                      "Content-Type": "application/json"}
    for depth in (65, 100_000):
        deep = client.post(url, data="[" * depth + "]" * depth, headers=headers)
        assert deep.status_code == 400 and "nested deeper" in deep.get_json()["error"], depth
    large = client.post(url, data='{"label": "' + "a" * (2 * MIB) + '"}', headers=headers)
    assert large.status_code == 413 and large.is_json
    assert json_depth(b'{"a": [1, {"b": "[[[["}], "c\\"{": 2}') == 3


# Headers and cookies

def test_every_response_carries_the_security_headers(app, client, labeler):
    image_id = _stored_image(app)
    for url in ("/login", "/", "/static/style.css", f"/api/images/{image_id}/file",
                "/api/nothing", "/nothing"):
        headers = client.get(url).headers
        assert headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY, url
        assert (headers["X-Content-Type-Options"], headers["X-Frame-Options"],
                headers["Referrer-Policy"]) == ("nosniff", "DENY", "same-origin"), url
        assert "Strict-Transport-Security" not in headers
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY


def test_images_are_served_with_their_real_type(app, client, labeler):
    with app.app_context():
        project_id = make_project()
        [jpeg_id] = add_stored_images(app, project_id, 1)
        png = image_bytes(1, image_format="PNG")
        info = storage.validate_image(png, app.config["MAX_IMAGE_PIXELS"])
        storage.store_bytes(app.config["IMAGE_STORE"], info.storage_key, png)
        image = Image(project_id=project_id, storage_key=info.storage_key, width=info.width,
                      height=info.height, original_name="named.jpg", content_hash=info.content_hash)
        db.session.add(image)
        db.session.commit()
        png_id = image.id
    for image_id, mimetype, magic in ((jpeg_id, "image/jpeg", b"\xff\xd8"),
                                      (png_id, "image/png", b"\x89PNG")):
        response = client.get(f"/api/images/{image_id}/file")
        assert response.mimetype == mimetype and response.data.startswith(magic)
        assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_pages_hold_no_inline_script_or_style(app, client, admin):
    project_id = _project(app)
    for url in ("/", "/admin/", f"/admin/projects/{project_id}",
                f"/admin/projects/{project_id}/images", "/admin/users", "/account/password",
                f"/projects/{project_id}/label", f"/projects/{project_id}/models"):
        page = client.get(url).get_data(as_text=True)
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page), url
        assert not re.search(r"<style|\sstyle=|\son[a-z]+=", page), url


def test_secure_cookies_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("SUPERVISING_UI_INSTANCE", str(tmp_path))
    monkeypatch.setenv("SUPERVISING_UI_SECURE_COOKIES", "1")
    app = create_app({"TESTING": True, "SECRET_KEY": "test",
                      "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"})
    assert app.config["SECURE_COOKIES"] is True
    assert app.config["SESSION_COOKIE_SECURE"] and app.config["REMEMBER_COOKIE_SECURE"]
    response = app.test_client().get("/login")  # the CSRF token starts a session
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000"
    assert "; Secure" in response.headers["Set-Cookie"]
    monkeypatch.setenv("SUPERVISING_UI_SECURE_COOKIES", "0")
    assert create_app({"TESTING": True, "SECRET_KEY": "t"}).config["SECURE_COOKIES"] is False


# Bad input: no 500, short messages

def test_ids_no_table_can_hold_are_404(app, client, labeler):
    image_id = _stored_image(app)
    assert client.get(f"/api/images/{image_id}/file").status_code == 200
    for bad in (0, MAX_ID + 1, 2**63, 10**30):
        for url in (f"/api/images/{bad}/file", f"/api/projects/{bad}/next",
                    f"/projects/{bad}/label", f"/api/jobs/{bad}"):
            response = client.get(url)
            assert response.status_code == 404 and response.is_json == url.startswith("/api/")
    assert client.get(f"/api/images/{MAX_ID}/file").status_code == 404


def test_an_id_out_of_range_is_404_under_a_path_with_a_rule_per_method(app, client, labeler):
    # /api/boxes/<id> has one rule for PATCH and one for DELETE: werkzeug said 405 to both.
    for bad in (MAX_ID + 1, 10**30):
        for method in ("DELETE", "PATCH", "GET"):
            response = client.open(f"/api/boxes/{bad}", method=method,
                                   headers={"X-CSRFToken": labeler.csrf_token}, json={})
            assert response.status_code == 404 and response.is_json, (bad, method)
    # A method the path really lacks is still 405, with the methods it has.
    response = client.get("/api/boxes/1")
    assert response.status_code == 405 and {"DELETE", "PATCH"} <= set(response.allow)


def test_nul_and_lone_surrogates_are_400_without_echo(app, client, labeler):
    image_id = _stored_image(app)
    url, headers = f"/api/images/{image_id}/labels", {"X-CSRFToken": labeler.csrf_token}
    secret = "s" * 5000
    for body in ('{"label": "\\ud800", "request_id": "r1"}',
                 '{"label": "crater", "request_id": "a\\u0000' + secret + '"}',
                 '{"label": "crater", "request_id": "r2", "x": [{"y": "\\udfff"}]}'):
        response = client.post(url, data=body, headers=headers, content_type="application/json")
        assert response.status_code == 400, body
        assert "NUL" in response.get_json()["error"]
        assert secret not in response.get_data(as_text=True)
    assert client.get(f"/api/projects/1/next?after=%00{secret}").status_code == 400
    form = client.post("/account/password", data={"csrf_token": labeler.csrf_token,
                                                   "current_password": "a\0b"})
    assert form.status_code == 400 and b"NUL" in form.data
    assert client.get("/projects/1/models/1/a%00b").status_code in (400, 404)


def test_login_next_with_crlf_or_backslash_stays_on_the_site(client, users):
    for target in ("/%0d%0aSet-Cookie:%20x=1", "/%5Cevil.example", "/%09/evil.example"):
        token = csrf_token_from(client.get("/login").get_data(as_text=True))
        response = client.post(f"/login?next={target}", data={
            "username": "ada", "password": PASSWORD, "csrf_token": token})
        assert response.status_code == 302, target
        assert response.headers["Location"] == "/", target
        client.post("/logout", data={"csrf_token": csrf_token_from(
            client.get("/").get_data(as_text=True))})


def test_admin_image_page_with_a_huge_page_number(app, client, admin):
    project_id = _project(app)
    response = client.get(f"/admin/projects/{project_id}/images?page={10**23}")
    assert response.status_code == 200


def test_api_errors_are_json(app, client, labeler, monkeypatch):
    assert client.get("/api/nothing").get_json()["error"]
    not_allowed = client.delete("/api/projects", headers={"X-CSRFToken": labeler.csrf_token})
    assert not_allowed.status_code == 405 and not_allowed.get_json()["error"]
    assert "GET" in not_allowed.headers["Allow"]
    forbidden = client.post("/api/projects/1/retrain", json={},
                            headers={"X-CSRFToken": labeler.csrf_token})
    assert forbidden.status_code == 403 and forbidden.get_json()["error"]
    no_csrf = client.post("/api/projects/1/undo")
    assert no_csrf.status_code == 400 and no_csrf.get_json()["error"]
    assert client.get("/nothing").mimetype == "text/html"

    def crash(job_id, include_log=False):
        raise RuntimeError("/secret/path/in/a/traceback")
    monkeypatch.setattr(job_status, "status_report", crash)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    crashed = client.get("/api/jobs/1")
    assert crashed.status_code == 500 and crashed.get_json()["error"]
    assert b"/secret/path" not in crashed.data


def test_every_api_error_status_is_json(app):
    for status in (400, 401, 403, 404, 405, 409, 413, 429, 500, 503):
        with app.test_request_context("/api/anything"):
            with pytest.raises(HTTPException) as raised:
                abort(status)
            raised.value.retry_after = 30 if status in (429, 503) else None
            response = errors.http_error(raised.value)
        assert response.status_code == status and response.get_json()["error"], status
        assert response.headers.get("Retry-After") == ("30" if status in (429, 503) else None)
    with app.test_request_context("/admin/", headers={"Accept": "text/html"}):
        assert isinstance(errors.http_error(NotFound()), NotFound), "pages keep Flask's HTML"


@pytest.mark.parametrize("error, reason", [
    (OSError(errno.ENOSPC, "No space left on device"), "disk is full"),
    (OSError(errno.EROFS, "Read-only file system"), "read-only"),
    (OperationalError("INSERT", {}, sqlite3.OperationalError("database or disk is full")),
     "disk is full"),
    (OperationalError("INSERT", {}, sqlite3.OperationalError(
        "attempt to write a readonly database")), "read-only"),
])
def test_a_full_or_read_only_disk_answers_503(app, client, admin, monkeypatch, error, reason):
    def fail(*args, **kwargs):
        raise error
    monkeypatch.setattr(job_status, "status_report", fail)
    monkeypatch.setattr(projects, "list_projects", fail)
    api = client.get("/api/jobs/1")
    assert api.status_code == 503 and reason in api.get_json()["error"]
    assert api.headers["Retry-After"]
    page = client.get("/admin/")
    assert page.status_code == 503 and reason in page.get_data(as_text=True)


def test_other_os_errors_still_fail_loudly(app, client, admin, monkeypatch):
    def fail(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")
    monkeypatch.setattr(job_status, "status_report", fail)
    with pytest.raises(PermissionError):
        client.get("/api/jobs/1")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs /dev/full")
def test_console_prints_one_line_for_a_full_disk(app, monkeypatch, capsys):
    with app.app_context():
        projects.create_project("Full", preset="hirise")
    monkeypatch.setenv("SUPERVISING_UI_DATABASE_URL", app.config["DATABASE_URL"])
    monkeypatch.setenv("SUPERVISING_UI_JOB_QUEUE", "memory")
    monkeypatch.setattr(sys, "argv", ["supervising-ui", "export", "Full", "--out", "/dev/full"])
    with pytest.raises(SystemExit) as exit_status:
        cli.main()
    assert exit_status.value.code == 1
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("Error: the server's disk is full"), line


def _project(app) -> int:
    with app.app_context():
        return projects.create_project("HiRISE", preset="hirise").id


def _stored_image(app) -> int:
    with app.app_context():
        return add_stored_images(app, make_project(), 1)[0]


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed")
def test_pages_work_in_a_browser_under_the_policy(app, users, live_server, browser):  # noqa: F811
    with app.app_context():
        project_id = projects.create_project("HiRISE", preset="hirise").id
        db.session.add(Job(kind="retrain", project_id=project_id, state="running", progress=0.5,
                           heartbeat_at=utcnow(), params={"kind": "quick"}))
        db.session.commit()
    page = log_in(browser, live_server, "ada")
    violations = []
    page.on("console", lambda message: violations.append(message.text)
            if "Content Security Policy" in message.text else None)
    page.goto(f"{live_server}/projects/{project_id}/models")
    assert page.evaluate("() => [...document.styleSheets].some(sheet => sheet.href && "
                         "sheet.href.endsWith('/static/models.css'))")
    assert page.evaluate("() => document.querySelector('tr.job .progress > div').style.width") \
        == "50%"
    page.goto(f"{live_server}/admin/projects/{project_id}")
    assert page.evaluate("() => getComputedStyle(document.querySelector("
                         "'#import-status .progress > div')).width") == "0px"
    assert not violations, violations
