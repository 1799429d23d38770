"""Login, logout, roles, CSRF, API tokens, password changes, throttling and cut-off sessions."""
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from supervising_ui import create_app
from supervising_ui.accounts import throttling as login_attempts
from supervising_ui.accounts import users as accounts
from supervising_ui.accounts.users import (
    AccountError,
    create_api_token,
    create_user,
    revoke_api_tokens,
)
from supervising_ui.extensions import db
from supervising_ui.models import ApiToken, LoginAttempt, User, utcnow

from ..conftest import PASSWORD, AuthActions, csrf_token_from


def all_routes(app):
    """Yield (rule, method) for every route but static and login, with placeholder ids."""
    for rule in app.url_map.iter_rules():
        if rule.endpoint in ("static", "accounts.login"):
            continue
        url = rule.rule
        for argument in rule.arguments:
            url = url.replace(f"<int:{argument}>", "1").replace(f"<{argument}>", "1")
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            yield url, method


def test_every_route_refuses_anonymous_users(app, client):
    routes = list(all_routes(app))
    assert len(routes) > 3
    for url, method in routes:
        response = client.open(url, method=method)
        assert response.status_code in (302, 401), (url, method, response.status_code)
        if response.status_code == 302:
            assert "/login" in response.headers["Location"]


def test_admin_routes_refuse_labelers(app, client, auth):
    auth.login("lee")
    admin_routes = [(url, method) for url, method in all_routes(app)
                    if url.startswith("/admin") or "retrain" in url]
    assert admin_routes
    for url, method in admin_routes:
        data = {"csrf_token": auth.csrf_token} if method == "POST" else None
        response = client.open(url, method=method, data=data,
                               headers={"X-CSRFToken": auth.csrf_token})
        assert response.status_code == 403, (url, method, response.status_code)


def test_login_and_logout(client, auth):
    assert client.get("/").status_code == 302
    assert auth.login("ada", "wrong password").status_code == 200
    assert client.get("/").status_code == 302
    response = auth.login()
    assert response.status_code == 302
    assert client.get("/").status_code == 200
    assert client.get("/admin/").status_code == 200
    auth.logout()
    assert client.get("/").status_code == 302


def test_login_refuses_deactivated_user_and_ends_their_session(app, client, auth):
    auth.login("lee")
    with app.app_context():
        db.session.get(User, 2).active = False
        db.session.commit()
    assert client.get("/").status_code == 302
    assert auth.login("lee").status_code == 200


def test_open_redirect_is_refused(client, users):
    page = client.get("/login")
    token = csrf_token_from(page.get_data(as_text=True))
    response = client.post("/login?next=//evil.example/x",
                           data={"username": "ada", "password": PASSWORD, "csrf_token": token})
    assert response.headers["Location"] == "/"


def test_csrf_refusal(app, client, users):
    app.config["WTF_CSRF_ENABLED"] = True
    response = client.post("/login", data={"username": "ada", "password": PASSWORD})
    assert response.status_code == 400
    assert client.get("/").status_code == 302, "not logged in without a CSRF token"


def test_csrf_refused_on_logged_in_post(client, auth):
    auth.login()
    assert client.post("/logout").status_code == 400
    assert client.get("/").status_code == 200, "still logged in"


def test_passwords_are_hashed_and_generated(app):
    with app.app_context():
        user, password = create_user("new")
        assert len(password) >= 12
        stored = db.session.scalar(select(User).where(User.username == "new")).password_hash
        assert password not in stored and stored.startswith(("scrypt:", "pbkdf2:"))
        with pytest.raises(AccountError, match="at least 10"):
            create_user("short", password="abc")
        with pytest.raises(AccountError, match="already exists"):
            create_user("new")
        with pytest.raises(AccountError, match="unknown role"):
            create_user("x", role="root")


def test_change_own_password(client, auth):
    auth.login("lee")
    response = client.post("/account/password", data={
        "csrf_token": auth.csrf_token, "current_password": "nope", "new_password": "newpassword1",
        "confirm_password": "newpassword1"})
    assert b"current password is wrong" in response.data
    client.post("/account/password", data={
        "csrf_token": auth.csrf_token, "current_password": PASSWORD,
        "new_password": "newpassword1", "confirm_password": "newpassword1"})
    auth.logout()
    assert auth.login("lee").status_code == 200
    assert auth.login("lee", "newpassword1").status_code == 302


def test_api_token_authenticates_without_csrf_and_revocation(app, client, users):
    with app.app_context():
        token = create_api_token(db.session.get(User, users["lee"]))
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/", headers=headers).status_code == 200
    assert client.get("/", headers={"Authorization": "Bearer wrong"}).status_code == 401
    with app.app_context():
        assert revoke_api_tokens(db.session.get(User, users["lee"])) == 1
    assert client.get("/", headers=headers).status_code == 401


# --- Login throttling -------------------------------------------------------------------

def post_login(client, username, password, address="127.0.0.1"):
    """Post the login form from a client address; return the response."""
    token = csrf_token_from(client.get("/login").get_data(as_text=True))
    return client.post("/login", data={"username": username, "password": password,
                                       "csrf_token": token},
                       environ_base={"REMOTE_ADDR": address})


def test_ten_failures_block_the_account_from_that_address_only(client, users):
    for attempt in range(10):
        assert post_login(client, "ada", f"wrong {attempt}", "10.0.0.1").status_code == 200
    blocked = post_login(client, "ada", PASSWORD, "10.0.0.1")
    assert blocked.status_code == 429
    assert 890 <= int(blocked.headers["Retry-After"]) <= 900
    assert "try again in 15 minutes" in blocked.get_data(as_text=True)
    assert client.get("/").status_code == 302, "not logged in"
    assert post_login(client, "lee", PASSWORD, "10.0.0.1").status_code == 302, \
        "others behind the same address may"
    client.post("/logout", data={"csrf_token": csrf_token_from(client.get("/").get_data(
        as_text=True))})
    assert post_login(client, "ada", PASSWORD, "10.0.1.1").status_code == 302, \
        "a stranger's guesses elsewhere do not lock ada out"


def test_a_team_behind_one_address_is_not_locked_out_by_ten_failures(client, users):
    """The audit's case: ten failures as unknown names, then admin with the right password."""
    for attempt in range(10):
        name = ("nobody", "x" * 500, "ad", "lee ")[attempt % 4]
        assert post_login(client, name, "wrong password", "192.0.2.7").status_code == 200
    assert post_login(client, "ada", PASSWORD, "192.0.2.7").status_code == 302


def test_an_address_past_the_ceiling_is_blocked_for_every_account(app, client, users):
    app.config["LOGIN_FAILURES_PER_ADDRESS"] = 12
    for attempt in range(12):
        name = ("ada", "lee", "nobody", "x" * 500)[attempt % 4]
        assert post_login(client, name, "wrong password", "192.0.2.7").status_code == 200
    assert post_login(client, "liu", PASSWORD, "192.0.2.7").status_code == 429
    assert post_login(client, "liu", PASSWORD, "192.0.2.8").status_code == 302


def test_the_block_ends_after_the_window_and_refusals_do_not_prolong_it(app, client, users,
                                                                        monkeypatch):
    start = utcnow()
    for minute in range(10):  # one failure a minute: the oldest leaves the window first
        monkeypatch.setattr(login_attempts, "utcnow", lambda m=minute: start + timedelta(minutes=m))
        post_login(client, "ada", "wrong password")
    monkeypatch.setattr(login_attempts, "utcnow", lambda: start + timedelta(minutes=12))
    for _ in range(3):
        response = post_login(client, "ada", PASSWORD)
        assert response.status_code == 429 and response.headers["Retry-After"] == "180"
    monkeypatch.setattr(login_attempts, "utcnow", lambda: start + timedelta(minutes=15, seconds=1))
    assert post_login(client, "ada", PASSWORD).status_code == 302
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(LoginAttempt)) == 0, \
            "a success clears that account's failures from that address"
        db.session.add_all(LoginAttempt(username="old", client_address="198.51.100.1",
                                        attempted_at=start - timedelta(hours=h))
                           for h in range(1, 4))
        db.session.commit()
    post_login(client, "lee", "wrong password")
    with app.app_context():
        assert db.session.scalars(select(LoginAttempt.username)).all() == ["lee"], \
            "failures older than the window are pruned"


def test_the_count_is_shared_by_every_process_on_the_database(app, users):
    """Two apps on one database stand for two gunicorn workers (or two hosts)."""
    other = create_app({key: app.config[key] for key in
                        ("TESTING", "SECRET_KEY", "JOB_QUEUE", "DATABASE_URL")})
    first, second = app.test_client(), other.test_client()
    for attempt in range(10):
        post_login((first, second)[attempt % 2], "ada", "wrong password")
    assert post_login(first, "ada", PASSWORD).status_code == 429
    assert post_login(second, "ada", PASSWORD).status_code == 429
    with other.app_context():
        db.session.remove()
        db.engine.dispose()


# --- Sessions that can be cut off ---------------------------------------------------------

def copied_session(app, client):
    """Return a second client holding a copy of client's session cookie."""
    copy = app.test_client()
    copy.set_cookie("session", client.get_cookie("session").value)
    assert copy.get("/").status_code == 200, "the copy works until the session ends"
    return copy


def test_logout_ends_every_copy_of_the_session(app, client, auth):
    auth.login("lee")
    copy = copied_session(app, client)
    auth.logout()
    assert copy.get("/").status_code == 302
    assert copy.get("/api/projects").status_code == 401


def test_password_change_ends_other_copies_but_keeps_this_browser(app, client, auth):
    auth.login("lee")
    copy = copied_session(app, client)
    response = client.post("/account/password", data={
        "csrf_token": auth.csrf_token, "current_password": PASSWORD,
        "new_password": "a new password", "confirm_password": "a new password"})
    assert response.status_code == 302
    assert copy.get("/").status_code == 302
    assert client.get("/").status_code == 200


def test_deactivation_and_reactivation_end_sessions(app, client, users):
    lee_browser, admin_browser = AuthActions(app.test_client()), AuthActions(client)
    lee_browser.login("lee")
    copy = copied_session(app, lee_browser._client)
    admin_browser.login("ada")
    for active in ("0", "1"):
        client.post(f"/admin/users/{users['lee']}/active",
                    data={"active": active, "csrf_token": admin_browser.csrf_token})
    assert copy.get("/").status_code == 302
    assert lee_browser._client.get("/").status_code == 302


def test_role_change_ends_sessions(app, client, users):
    lee_browser, admin_browser = AuthActions(app.test_client()), AuthActions(client)
    lee_browser.login("lee")
    copy = copied_session(app, lee_browser._client)
    admin_browser.login("ada")
    client.post(f"/admin/users/{users['lee']}/role",
                data={"role": "admin", "csrf_token": admin_browser.csrf_token})
    assert copy.get("/admin/").status_code == 302, "to the login page, not into the admin pages"
    assert lee_browser.login("lee").status_code == 302
    assert lee_browser._client.get("/admin/").status_code == 200


def test_a_session_without_a_version_is_refused(app, client, users):
    with client.session_transaction() as session:
        session["_user_id"] = str(users["ada"])  # what a cookie from before versions holds
    assert client.get("/").status_code == 302


# --- Authorization header beside a cookie ---------------------------------------------------

def test_the_authorization_header_alone_says_who_asks(app, client, auth):
    auth.login("ada")
    with app.app_context():
        lee_token = create_api_token(db.session.get(User, 2))
    as_lee = client.get("/admin/", headers={"Authorization": f"Bearer {lee_token}"})
    assert as_lee.status_code == 403, "the token's labeler, not the cookie's admin"
    assert "lee" in client.get("/account/tokens",
                               headers={"Authorization": f"Bearer {lee_token}"}).get_data(
        as_text=True).split("<main>")[0]
    for header in ("Bearer wrong", "Bearer", "Basic YWRhOnB3", ""):
        response = client.get("/", headers={"Authorization": header})
        assert response.status_code == 401, header
    assert client.get("/admin/").status_code == 200, "the cookie alone still works"
    # A cookie request keeps CSRF; a token request needs none.
    assert client.post("/logout").status_code == 400
    assert client.post("/logout", headers={"Authorization": f"Bearer {lee_token}"}) \
        .status_code == 302


def test_expired_tokens_are_refused(app, client, users, monkeypatch):
    with app.app_context():
        token = create_api_token(db.session.get(User, users["lee"]), expires_days=2)
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/projects", headers=headers).status_code == 200
    later = utcnow() + timedelta(days=2, seconds=1)
    monkeypatch.setattr(accounts, "utcnow", lambda: later)
    response = client.get("/api/projects", headers=headers)
    assert response.status_code == 401 and "error" in response.get_json()


# --- The token page -----------------------------------------------------------------------

def test_token_page_makes_a_token_shown_once_and_never_cached(app, client, auth):
    auth.login("lee")
    page = client.get("/account/tokens")
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    made = client.post("/account/tokens", data={"csrf_token": auth.csrf_token,
                                                "label": "my script", "expires_days": "30"})
    assert made.status_code == 200 and made.headers["Cache-Control"] == "no-store"
    token = re.search(r"New token <code>([^<]+)</code>", made.get_data(as_text=True)).group(1)
    listing = client.get("/account/tokens").get_data(as_text=True)
    assert "my script" in listing and token not in listing and "never" in listing
    assert client.get("/api/projects", headers={"Authorization": f"Bearer {token}"}) \
        .status_code == 200
    listing = client.get("/account/tokens").get_data(as_text=True)
    assert "never" not in listing, "the last use is shown"
    with app.app_context():
        stored = db.session.scalar(select(ApiToken))
        assert stored.expires_at - stored.created_at == timedelta(days=30)
    refused = client.post("/account/tokens", data={"csrf_token": auth.csrf_token,
                                                   "expires_days": "0"}, follow_redirects=True)
    assert "Token not made: a token lasts from 1 to 3650 days" in refused.get_data(as_text=True)
    assert client.post("/account/tokens", data={"label": "no csrf"}).status_code == 400


def test_users_revoke_their_own_tokens_on_the_page_and_admins_anyones(app, client, auth, users):
    with app.app_context():
        ada_token = create_api_token(db.session.get(User, users["ada"]), "ada script")
        lee_token = create_api_token(db.session.get(User, users["lee"]), "lee script")
        ids = {t.label: t.id for t in db.session.scalars(select(ApiToken))}
    auth.login("lee")
    listing = client.get("/account/tokens").get_data(as_text=True)
    assert "lee script" in listing and "ada script" not in listing
    refused = client.post(f"/account/tokens/{ids['ada script']}/revoke",
                          data={"csrf_token": auth.csrf_token}, follow_redirects=True)
    assert "Not revoked: no token with id" in refused.get_data(as_text=True)
    assert client.get("/", headers={"Authorization": f"Bearer {ada_token}"}).status_code == 200
    for huge in ("99999999999999999999999", str(2**63)):
        assert client.post(f"/account/tokens/{huge}/revoke",
                           data={"csrf_token": auth.csrf_token}).status_code in (302, 404)
    auth.logout()
    auth.login("ada")
    listing = client.get("/account/tokens").get_data(as_text=True)
    assert "lee script" in listing and "ada script" in listing
    client.post(f"/account/tokens/{ids['lee script']}/revoke",
                data={"csrf_token": auth.csrf_token})
    assert client.get("/", headers={"Authorization": f"Bearer {lee_token}"}).status_code == 401
    assert "revoked" in client.get("/account/tokens").get_data(as_text=True)


def test_the_page_that_shows_a_new_password_is_never_cached(client, auth):
    auth.login("ada")
    response = client.post("/admin/users", data={"csrf_token": auth.csrf_token,
                                                 "username": "mia", "role": "labeler"})
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
