"""Who a token or a cookie belongs to is remembered for LOGIN_CACHE_SECONDS per process: no
query per request, changes made here count at once, changes made elsewhere within the window."""
import pytest
from sqlalchemy import event, select, update

from supervising_ui import timed_cache
from supervising_ui.accounts.users import create_api_token
from supervising_ui.extensions import db
from supervising_ui.models import ApiToken, User, utcnow

from ..conftest import PASSWORD


@pytest.fixture
def statements(app):
    """The SQL statements the app runs from now on (their first words)."""
    seen = []
    with app.app_context():
        engine = db.engine

    def note(connection, cursor, statement, parameters, context, executemany):
        seen.append(" ".join(statement.split()[:4]))
    event.listen(engine, "before_cursor_execute", note)
    yield seen
    event.remove(engine, "before_cursor_execute", note)


@pytest.fixture
def clock(monkeypatch):
    """The cache's clock, moved by hand."""
    now = [1000.0]
    monkeypatch.setattr(timed_cache.time, "monotonic", lambda: now[0])
    return now


def token_for(app, user_id):
    with app.app_context():
        return create_api_token(db.session.get(User, user_id))


def test_a_token_is_looked_up_once_then_remembered(app, client, users, statements):
    headers = {"Authorization": f"Bearer {token_for(app, users['lee'])}"}
    assert client.get("/api/projects", headers=headers).status_code == 200
    first = [s for s in statements if "api_token" in s or '"user"' in s]
    assert first, "the first request looks the token up"
    statements.clear()
    for _ in range(3):
        assert client.get("/api/projects", headers=headers).status_code == 200
    assert not [s for s in statements if "api_token" in s or '"user"' in s], statements


def test_a_session_cookie_is_remembered_too(app, client, auth, statements):
    auth.login("lee")
    client.get("/")
    statements.clear()
    assert client.get("/").status_code == 200
    assert not [s for s in statements if '"user"' in s], statements


def test_changes_made_here_count_at_once(app, client, users):
    headers = {"Authorization": f"Bearer {token_for(app, users['lee'])}"}
    assert client.get("/api/projects", headers=headers).status_code == 200
    with app.app_context():  # through the ORM, as the admin pages and accounts.py do
        db.session.get(User, users["lee"]).active = False
        db.session.commit()
    assert client.get("/api/projects", headers=headers).status_code == 401
    with app.app_context():
        db.session.get(User, users["lee"]).active = True
        db.session.scalar(select(ApiToken)).revoked_at = utcnow()
        db.session.commit()
    assert client.get("/api/projects", headers=headers).status_code == 401


def test_changes_made_elsewhere_count_within_the_window(app, client, users, clock):
    headers = {"Authorization": f"Bearer {token_for(app, users['lee'])}"}
    assert client.get("/api/projects", headers=headers).status_code == 200
    with app.app_context():  # another process revokes it: nothing tells this one
        db.session.execute(update(ApiToken).values(revoked_at=utcnow()))
        db.session.commit()
    clock[0] += app.config["LOGIN_CACHE_SECONDS"] - 1
    assert client.get("/api/projects", headers=headers).status_code == 200, "still remembered"
    clock[0] += 2
    assert client.get("/api/projects", headers=headers).status_code == 401


def test_the_last_use_is_written_at_most_once_a_minute(app, client, users, statements,
                                                         monkeypatch):
    from supervising_ui.accounts import users as accounts
    headers = {"Authorization": f"Bearer {token_for(app, users['lee'])}"}
    for _ in range(3):
        client.get("/api/projects", headers=headers)
    writes = [s for s in statements if s.startswith("UPDATE api_token")]
    assert len(writes) == 1
    later = utcnow() + accounts.LAST_USED_RESOLUTION
    monkeypatch.setattr(accounts, "utcnow", lambda: later)
    for _ in range(2):
        client.get("/api/projects", headers=headers)
    assert len([s for s in statements if s.startswith("UPDATE api_token")]) == 2
    with app.app_context():
        assert db.session.scalar(select(ApiToken.last_used_at)) == later


def test_the_remembered_user_can_be_changed_like_any_other(app, client, users):
    token = token_for(app, users["lee"])
    headers = {"Authorization": f"Bearer {token}"}
    client.get("/api/projects", headers=headers)
    with app.app_context():
        before = db.session.get(User, users["lee"]).session_version
    assert client.post("/logout", headers=headers).status_code == 302  # ends lee's sessions
    with app.app_context():
        assert db.session.get(User, users["lee"]).session_version == before + 1


def test_zero_seconds_turns_it_off(tmp_path, monkeypatch):
    from supervising_ui import create_app
    from supervising_ui.accounts.users import create_user
    from supervising_ui.database import create_or_migrate
    monkeypatch.setenv("SUPERVISING_UI_INSTANCE", str(tmp_path / "instance"))
    app = create_app({"SECRET_KEY": "x", "JOB_QUEUE": "memory", "LOGIN_CACHE_SECONDS": 0,
                      "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"})
    with app.app_context():
        create_or_migrate()
        token = create_api_token(create_user("lee", password=PASSWORD)[0])
    client, headers = app.test_client(), {"Authorization": f"Bearer {token}"}
    client.get("/api/projects", headers=headers)
    with app.app_context():
        db.session.execute(update(ApiToken).values(revoked_at=utcnow()))
        db.session.commit()
    assert client.get("/api/projects", headers=headers).status_code == 401
    with app.app_context():
        db.engine.dispose()
