"""The second hardening round on accounts: the client address behind trusted proxies, the
password form counted like logins, the CSRF token rotated at login, tokens only from a
session, and the common-password list."""
import pytest
from sqlalchemy import func, select

from supervising_ui import create_app
from supervising_ui.accounts import users as accounts
from supervising_ui.accounts.users import AccountError, create_api_token, create_user
from supervising_ui.extensions import db
from supervising_ui.models import ApiToken, LoginAttempt, User

from ..conftest import PASSWORD, csrf_token_from
from .test_auth import post_login


def change_password(client, current, new="a fresh passphrase 7", address="127.0.0.1"):
    """Post the password form (from address); return the response."""
    token = csrf_token_from(client.get("/account/password").get_data(as_text=True))
    return client.post("/account/password", data={
        "csrf_token": token, "current_password": current, "new_password": new,
        "confirm_password": new}, environ_base={"REMOTE_ADDR": address})


# --- Trusted proxies -----------------------------------------------------------------------

def proxy_app(app, hops: int):
    """Return a second app on app's database with TRUSTED_PROXY_HOPS = hops."""
    return create_app({key: app.config[key] for key in
                       ("TESTING", "SECRET_KEY", "JOB_QUEUE", "DATABASE_URL")}
                      | {"TRUSTED_PROXY_HOPS": hops})


def attempt_addresses(app) -> list[str]:
    """Return the client addresses of the stored login failures."""
    with app.app_context():
        return sorted(db.session.scalars(select(LoginAttempt.client_address)))


def test_behind_a_trusted_proxy_the_forwarded_address_counts(app, users):
    behind = proxy_app(app, 1)
    client = behind.test_client()
    for forwarded in ("203.0.113.5", "198.51.100.9, 203.0.113.6"):
        token = csrf_token_from(client.get("/login").get_data(as_text=True))
        client.post("/login", data={"username": "ada", "password": "wrong", "csrf_token": token},
                    headers={"X-Forwarded-For": forwarded},
                    environ_base={"REMOTE_ADDR": "10.0.0.2"})
    assert attempt_addresses(app) == ["203.0.113.5", "203.0.113.6"], \
        "one hop: the address the proxy saw (the last entry), never one the client wrote"
    with behind.app_context():
        db.session.remove()
        db.engine.dispose()


def test_without_trusted_proxies_x_forwarded_for_is_ignored(app, client, users):
    assert app.config["TRUSTED_PROXY_HOPS"] == 0
    token = csrf_token_from(client.get("/login").get_data(as_text=True))
    client.post("/login", data={"username": "ada", "password": "wrong", "csrf_token": token},
                headers={"X-Forwarded-For": "203.0.113.5"},
                environ_base={"REMOTE_ADDR": "10.0.0.2"})
    assert attempt_addresses(app) == ["10.0.0.2"]


def test_the_proxy_setting_comes_from_the_environment(app, monkeypatch):
    monkeypatch.setenv("SUPERVISING_UI_TRUSTED_PROXY_HOPS", "2")
    behind = create_app({"TESTING": True, "SECRET_KEY": "test", "JOB_QUEUE": "memory",
                         "DATABASE_URL": app.config["DATABASE_URL"]})
    assert behind.config["TRUSTED_PROXY_HOPS"] == 2
    assert behind.wsgi_app.x_for == 2 and behind.wsgi_app.x_proto == 2
    with behind.app_context():
        db.session.remove()
        db.engine.dispose()


# --- The password form ---------------------------------------------------------------------

def test_wrong_current_passwords_count_like_failed_logins(app, client, auth):
    auth.login("lee")
    for attempt in range(10):
        response = change_password(client, f"guess {attempt}")
        assert response.status_code == 200
        assert b"current password is wrong" in response.data
    blocked = change_password(client, PASSWORD)
    assert blocked.status_code == 429 and 890 <= int(blocked.headers["Retry-After"]) <= 900
    assert b"try again in 15 minutes" in blocked.data
    auth.logout()
    assert post_login(client, "lee", PASSWORD).status_code == 429, "the same count as logins"
    assert post_login(client, "lee", PASSWORD, "10.9.9.9").status_code == 302


def test_a_weak_new_password_costs_no_attempt(app, client, auth):
    auth.login("lee")
    for _ in range(12):
        assert b"at least 10" in change_password(client, "wrong", new="short").data
    assert change_password(client, PASSWORD).status_code == 302
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(LoginAttempt)) == 0


def test_an_api_token_cannot_change_the_password(app, client, users):
    with app.app_context():
        token = create_api_token(db.session.get(User, users["lee"]))
    response = client.post("/account/password", headers={"Authorization": f"Bearer {token}"},
                           data={"current_password": PASSWORD, "new_password": "x" * 12,
                                 "confirm_password": "x" * 12})
    assert response.status_code == 403


# --- CSRF rotation -------------------------------------------------------------------------

def test_the_csrf_token_is_rotated_at_login(client, users):
    before = csrf_token_from(client.get("/login").get_data(as_text=True))
    client.post("/login", data={"username": "lee", "password": PASSWORD, "csrf_token": before})
    after = csrf_token_from(client.get("/").get_data(as_text=True))
    assert after != before
    assert client.post("/logout", data={"csrf_token": before}).status_code == 400, \
        "a token seen before the login is refused after it"
    assert client.post("/logout", data={"csrf_token": after}).status_code == 302


# --- Tokens --------------------------------------------------------------------------------

def token_count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(ApiToken))


def test_a_bearer_token_cannot_make_tokens(app, client, users):
    """The audit's case: a 1-day token asked for a 10-year child."""
    with app.app_context():
        token = create_api_token(db.session.get(User, users["lee"]), expires_days=1)
    response = client.post("/account/tokens", data={"label": "child", "expires_days": "3650"},
                           headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403
    assert token_count(app) == 1


def test_a_session_still_makes_tokens(app, client, auth):
    auth.login("lee")
    response = client.post("/account/tokens", data={"csrf_token": auth.csrf_token,
                                                    "label": "script", "expires_days": "7"})
    assert response.status_code == 200 and token_count(app) == 1


# --- Common passwords ----------------------------------------------------------------------

@pytest.mark.parametrize("password", ["password123", "qwertyuiop", "1q2w3e4r5t", "Basketball",
                                      " 1234567890 "])
def test_common_passwords_are_refused(app, password):
    with app.app_context(), pytest.raises(AccountError, match="common passwords"):
        create_user("mia", password=password)


def test_the_list_ships_with_the_package_and_the_form_uses_it(app, client, auth):
    listed = accounts.common_passwords()
    assert len(listed) > 1000 and "password123" in listed
    assert all(len(password) >= accounts.MIN_PASSWORD_LENGTH for password in listed)
    auth.login("lee")
    response = change_password(client, PASSWORD, new="liverpool1")
    assert b"common passwords" in response.data
    assert post_login(client, "lee", PASSWORD).status_code == 302, "unchanged"
