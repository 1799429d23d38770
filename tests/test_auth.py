"""Login, logout, roles, CSRF, API tokens and password changes."""
import pytest
from sqlalchemy import select

from supervising_ui.accounts import (
    AccountError,
    create_api_token,
    create_user,
    revoke_api_tokens,
)
from supervising_ui.extensions import db
from supervising_ui.models import User

from .conftest import PASSWORD, csrf_token_from


def all_routes(app):
    """Yield (rule, method) for every route but static and login, with placeholder ids."""
    for rule in app.url_map.iter_rules():
        if rule.endpoint in ("static", "auth.login"):
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
        with pytest.raises(AccountError, match="at least 8"):
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
