"""No body is read before the caller's role allows the route, and a 413 closes its connection
(the second hardening round; the first round's size checks are in test_security.py)."""
import io
import os
import socket
import subprocess
import sys
import time

import pytest
from sqlalchemy import func, select

from supervising_ui.accounts.guard import is_admin_route
from supervising_ui.accounts.users import create_api_token
from supervising_ui.extensions import db
from supervising_ui.models import Job, User

from ..processes import free_port, wait_until
from .test_security import MIB, CountingStream, _project, _raw_request

HUGE = 2147483647


@pytest.fixture
def labeler(client, auth):
    """Log lee (labeler) in; return the login helper with its CSRF token."""
    auth.login("lee")
    return auth


def upload_url(app) -> str:
    return f"/admin/projects/{_project(app)}/import/upload"


def cookie(client) -> dict:
    """Return the WSGI environ entry that sends client's session cookie with a raw request."""
    return {"HTTP_COOKIE": f"session={client.get_cookie('session').value}"}


def test_a_labelers_huge_upload_is_refused_before_its_body_is_read(app, client, labeler):
    """The audit's case: a labeler's cookie and Content-Length 2147483647 on the upload route."""
    url = upload_url(app)
    body = CountingStream(HUGE)
    response = client.open(_raw_request(url, body, "multipart/form-data; boundary=x",
                                        CONTENT_LENGTH=str(HUGE), **cookie(client)))
    assert response.status_code == 413 and body.read_bytes == 0
    assert response.headers["Connection"] == "close"


def test_a_labelers_small_upload_is_403_before_the_csrf_check_reads_it(app, client, labeler):
    url = upload_url(app)
    body = CountingStream(64 * 1024)
    response = client.open(_raw_request(url, body, "multipart/form-data; boundary=x",
                                        CONTENT_LENGTH=str(64 * 1024), **cookie(client)))
    assert response.status_code == 403, "the role, not the missing CSRF token (400)"
    assert body.read_bytes == 0


def test_a_labelers_token_gets_the_same_answers(app, client, users):
    url = upload_url(app)
    with app.app_context():
        token = create_api_token(db.session.get(User, users["lee"]))
    for size, status in ((HUGE, 413), (64 * 1024, 403)):
        body = CountingStream(size)
        response = client.open(_raw_request(url, body, "multipart/form-data; boundary=x",
                                            CONTENT_LENGTH=str(size),
                                            HTTP_AUTHORIZATION=f"Bearer {token}"))
        assert (response.status_code, body.read_bytes) == (status, 0)


def test_every_admin_route_refuses_a_labeler_before_reading_a_body(app, client, labeler):
    """Every state-changing admin route: a labeler's 512 KiB form is never read (no 400)."""
    with app.app_context():
        routes = [rule for rule in app.url_map.iter_rules()
                  if "POST" in rule.methods and is_admin_route(rule.endpoint)]
    assert len(routes) >= 10
    for rule in routes:
        url = rule.rule
        for argument in rule.arguments:
            url = url.replace(f"<int:{argument}>", "1").replace(f"<{argument}>", "x")
        body = CountingStream(MIB // 2)
        response = client.open(_raw_request(url, body, "application/x-www-form-urlencoded",
                                            CONTENT_LENGTH=str(MIB // 2), **cookie(client)))
        assert (response.status_code, body.read_bytes) == (403, 0), url
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Job)) == 0


def test_a_reviewer_route_refuses_a_labeler_before_reading_a_body(app, client, labeler):
    body = CountingStream(MIB // 2)
    response = client.open(_raw_request("/api/images/1/review", body, "application/json",
                                        CONTENT_LENGTH=str(MIB // 2), **cookie(client)))
    assert (response.status_code, body.read_bytes) == (403, 0)


def test_an_anonymous_form_is_not_read(app, client, users):
    body = CountingStream(MIB // 2)
    response = client.open(_raw_request("/account/tokens", body,
                                        "application/x-www-form-urlencoded",
                                        CONTENT_LENGTH=str(MIB // 2)))
    assert response.status_code == 302 and body.read_bytes == 0
    body = CountingStream(MIB // 2)
    response = client.open(_raw_request("/login", body, "application/x-www-form-urlencoded",
                                        CONTENT_LENGTH=str(MIB // 2)))
    assert body.read_bytes > 0, "the login form is public: read, and refused for its CSRF token"
    assert response.status_code == 400


def test_an_admin_may_still_send_a_large_upload(app, client, auth):
    auth.login("ada")
    url = upload_url(app)
    data = (b'--x\r\nContent-Disposition: form-data; name="files"; filename="a.jpg"\r\n'
            b"Content-Type: image/jpeg\r\n\r\n" + b"\xff" * (3 * MIB) + b"\r\n--x--\r\n")
    body = io.BytesIO(data)
    response = client.open(_raw_request(url, body, "multipart/form-data; boundary=x",
                                        CONTENT_LENGTH=str(len(data)), **cookie(client)))
    assert response.status_code == 400, "read whole, then refused for its missing CSRF token"
    assert body.tell() == len(data)


def _read_head(connection: socket.socket) -> bytes:
    """Read an HTTP response's status line and headers."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


@pytest.mark.slow
def test_gunicorn_closes_the_connection_a_413_says_it_closes(tmp_path):
    port = free_port()
    environment = dict(os.environ, SUPERVISING_UI_INSTANCE=str(tmp_path / "instance"),
                       SUPERVISING_UI_DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--workers", "1", "--worker-class", "gthread",
         "--threads", "2", "--bind", f"127.0.0.1:{port}", "--config",
         "python:supervising_ui.web.gunicorn_config", "supervising_ui:create_app()"],
        env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def connected():
            try:
                return socket.create_connection(("127.0.0.1", port), timeout=1)
            except OSError:
                return None
        connection = wait_until(connected, 60, "gunicorn to listen")
        connection.settimeout(60)  # the worker may still be loading the app
        # The headers alone: the body the client would send next is never wanted.
        connection.sendall(b"POST /login HTTP/1.1\r\nHost: localhost\r\n"
                           b"Content-Type: multipart/form-data; boundary=x\r\n"
                           b"Content-Length: %d\r\n\r\n" % HUGE)
        head = _read_head(connection).decode("latin-1").lower()
        assert head.startswith("http/1.1 413"), head
        assert "connection: close" in head and "keep-alive" not in head, head
        connection.settimeout(10)
        started = time.monotonic()
        try:
            while connection.recv(65536):  # the rest of the error page, then the end
                pass
        except ConnectionResetError:
            pass  # closed too
        assert time.monotonic() - started < 5, "closed at once, not after waiting for the body"
        connection.close()
    finally:
        server.terminate()
        server.wait(20)
