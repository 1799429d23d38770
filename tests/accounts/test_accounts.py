"""The account service: password rules, timing-safe checks, session versions, API tokens."""
from datetime import timedelta

import pytest
from flask_migrate import upgrade
from sqlalchemy import event, select, text

from supervising_ui import create_app
from supervising_ui.accounts import users as accounts
from supervising_ui.accounts.users import AccountError
from supervising_ui.database import MIGRATIONS_DIR
from supervising_ui.extensions import db
from supervising_ui.models import ApiToken, User, utcnow

from ..conftest import PASSWORD


def user_named(name: str) -> User:
    """Return the user called name (inside an app context)."""
    return db.session.scalar(select(User).where(User.username == name))


@pytest.mark.parametrize("password, problem", [
    ("nine char", "at least 10"),
    (" " * 12, "blank"),
    ("\t \n" * 4, "blank"),
    ("", "blank"),
    ("Alexandria99", "the user name"),
    ("  alexandria99 ", "the user name"),
])
def test_weak_passwords_are_refused(app, password, problem):
    with app.app_context():
        with pytest.raises(AccountError, match=problem):
            accounts.create_user("alexandria99", password=password)
        assert user_named("alexandria99") is None


def test_password_rules_hold_for_changes_and_generated_passwords(app, users, monkeypatch):
    with app.app_context():
        lee = db.session.get(User, users["lee"])
        for weak in ("short", " " * 20, "LEE"):
            with pytest.raises(AccountError):
                accounts.change_password(lee, PASSWORD, weak)
        accounts.create_user("ten_chars_", password="x" * 9 + "q")  # ten "x" are a common password
        for _ in range(200):
            accounts.check_password_strength(accounts.generate_password("someone"), "someone")
        # A generated password that happens to be the user name is drawn again.
        draws = iter(["Random_Name_1", "another-random-1"])
        monkeypatch.setattr(accounts.secrets, "token_urlsafe", lambda size: next(draws))
        _, password = accounts.create_user("random_name_1")
        assert password == "another-random-1"


def test_unknown_and_deactivated_users_cost_a_hash_check(app, users, monkeypatch):
    checked = []
    real_check = accounts.check_password_hash
    monkeypatch.setattr(accounts, "check_password_hash",
                        lambda stored, password: checked.append(stored) or real_check(stored,
                                                                                      password))
    with app.app_context():
        assert accounts.authenticate("nobody", PASSWORD) is None
        assert len(checked) == 1 and checked[0].startswith(("scrypt:", "pbkdf2:"))
        lee = db.session.get(User, users["lee"])
        accounts.set_active(lee, False, db.session.get(User, users["ada"]))
        assert accounts.authenticate("lee", PASSWORD) is None
        assert accounts.authenticate("ada", PASSWORD).username == "ada"
        assert accounts.authenticate("ada\x00", PASSWORD) is None
        assert accounts.authenticate("ada", "\ud800") is None
    assert len(checked) == 5, "every path does one hash check"
    assert checked[0] == checked[3] and checked[0] != checked[2], "unknown: the dummy hash"


def test_events_that_end_sessions_raise_the_session_version(app, users):
    with app.app_context():
        ada, lee = db.session.get(User, users["ada"]), db.session.get(User, users["lee"])
        versions = [lee.session_version]
        assert lee.get_id() == f"{lee.id}:{versions[0]}"
        assert accounts.session_user(lee.get_id()) is lee
        for change in (lambda: accounts.end_sessions(lee),
                       lambda: accounts.change_password(lee, PASSWORD, "a new password"),
                       lambda: accounts.set_active(lee, False, ada),
                       lambda: accounts.set_active(lee, True, ada),
                       lambda: accounts.set_role(lee, "admin", ada)):
            old_id = lee.get_id()
            change()
            versions.append(lee.session_version)
            assert accounts.session_user(old_id) is None
        assert versions == sorted(set(versions)), versions
        accounts.set_role(lee, "admin", ada)  # no change: sessions stay
        accounts.set_active(lee, True, ada)
        assert lee.session_version == versions[-1]
        assert accounts.session_user(lee.get_id()) is lee
        for stale in (str(lee.id), f"{lee.id}:x", "", f"{2**70}:1", f"{lee.id}:1:2"):
            assert accounts.session_user(stale) is None


def test_tokens_expire_and_carry_a_label(app, users, monkeypatch):
    with app.app_context():
        lee = db.session.get(User, users["lee"])
        default = accounts.create_api_token(lee)
        short = accounts.create_api_token(lee, "  nightly import ", expires_days=1)
        stored = {t.label: t for t in db.session.scalars(select(ApiToken))}
        assert set(stored) == {"", "nightly import"}
        assert stored[""].expires_at - stored[""].created_at == timedelta(days=90)
        assert accounts.user_of_token(short) is lee and stored["nightly import"].state == "live"
        later = utcnow() + timedelta(days=1, seconds=1)
        monkeypatch.setattr(accounts, "utcnow", lambda: later)
        assert accounts.user_of_token(short) is None
        assert accounts.user_of_token(default) is lee
        for days in (0, -1, accounts.MAX_TOKEN_DAYS + 1):
            with pytest.raises(AccountError, match="from 1 to"):
                accounts.create_api_token(lee, expires_days=days)
        with pytest.raises(AccountError, match="at most 120"):
            accounts.create_api_token(lee, "x" * 121)


def test_token_term_comes_from_the_api_token_days_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("SUPERVISING_UI_INSTANCE", str(tmp_path))
    assert create_app({"SECRET_KEY": "x"}).config["API_TOKEN_DAYS"] == 90
    monkeypatch.setenv("SUPERVISING_UI_API_TOKEN_DAYS", "7")
    assert create_app({"SECRET_KEY": "x"}).config["API_TOKEN_DAYS"] == 7


def test_last_used_is_written_at_most_once_a_minute(app, users, monkeypatch):
    with app.app_context():
        token = accounts.create_api_token(db.session.get(User, users["lee"]))
        writes = []

        def count_writes(conn, cursor, statement, parameters, context, executemany):
            if statement.lstrip().upper().startswith("UPDATE API_TOKEN"):
                writes.append(statement)
        event.listen(db.engine, "before_cursor_execute", count_writes)
        try:
            for _ in range(5):
                assert accounts.user_of_token(token) is not None
            assert len(writes) == 1
            first_use = db.session.scalar(select(ApiToken.last_used_at))
            assert first_use is not None
            later = utcnow() + timedelta(seconds=61)
            monkeypatch.setattr(accounts, "utcnow", lambda: later)
            for _ in range(3):
                accounts.user_of_token(token)
            assert len(writes) == 2
            assert db.session.scalar(select(ApiToken.last_used_at)) == later
        finally:
            event.remove(db.engine, "before_cursor_execute", count_writes)


def test_users_revoke_their_own_tokens_and_admins_anyones(app, users):
    with app.app_context():
        ada, lee, liu = (db.session.get(User, users[name]) for name in ("ada", "lee", "liu"))
        lee_token = accounts.create_api_token(lee, "lee's")
        accounts.create_api_token(liu, "liu's")
        ids = {t.label: t.id for t in db.session.scalars(select(ApiToken))}
        assert [t.label for t in accounts.visible_tokens(lee)] == ["lee's"]
        assert {t.label for t in accounts.visible_tokens(ada)} == {"lee's", "liu's"}
        for refused in (ids["liu's"], 999, 0, -1, 2**63, 2**80):
            with pytest.raises(AccountError, match="no token with id"):
                accounts.revoke_token(refused, lee)
        assert accounts.revoke_token(ids["lee's"], lee).state == "revoked"
        assert accounts.user_of_token(lee_token) is None
        assert accounts.revoke_token(ids["liu's"], ada).state == "revoked"
        assert accounts.revoke_api_tokens(liu) == 0


def test_create_token_and_revoke_tokens_commands(app, runner, users):
    made = runner.invoke(args=["create-token", "lee", "--expires-days", "3",
                               "--label", "cron job"])
    assert made.exit_code == 0, made.output
    token = made.output.strip()
    assert "\n" not in token and len(token) > 30
    with app.app_context():
        stored = db.session.scalar(select(ApiToken))
        assert stored.label == "cron job"
        assert stored.expires_at - stored.created_at == timedelta(days=3)
        assert accounts.user_of_token(token).username == "lee"
    assert runner.invoke(args=["create-token", "lee", "--expires-days", "0"]).exit_code == 2
    assert runner.invoke(args=["create-token", "lee"]).exit_code == 0
    revoked = runner.invoke(args=["revoke-tokens", "lee"])
    assert revoked.exit_code == 0 and "Revoked 2 tokens of 'lee'." in revoked.output
    with app.app_context():
        assert accounts.user_of_token(token) is None
    assert "Revoked 0 tokens" in runner.invoke(args=["revoke-tokens", "lee"]).output
    missing = runner.invoke(args=["revoke-tokens", "nobody"])
    assert missing.exit_code == 1 and "no user called 'nobody'" in missing.output


def test_upgrade_gives_old_tokens_an_expiry_and_users_a_session_version(tmp_path, monkeypatch):
    monkeypatch.setenv("SUPERVISING_UI_INSTANCE", str(tmp_path))
    app = create_app({"SECRET_KEY": "x", "DATABASE_URL": f"sqlite:///{tmp_path / 'old.sqlite3'}"})
    with app.app_context():
        upgrade(directory=MIGRATIONS_DIR, revision="0001")
        now = utcnow()
        db.session.execute(text('INSERT INTO "user" (id, username, password_hash, role, active, '
                                "created_at) VALUES (1, 'old', 'x', 'admin', true, :now)"),
                           {"now": now})
        db.session.execute(text("INSERT INTO api_token (user_id, token_digest, created_at) "
                                "VALUES (1, :digest, :now)"),
                           {"digest": accounts.token_digest("old token"), "now": now})
        db.session.commit()
        upgrade(directory=MIGRATIONS_DIR)
        old = db.session.get(User, 1)
        assert old.session_version == 1 and old.get_id() == "1:1"
        token = db.session.scalar(select(ApiToken))
        assert token.label == "" and token.last_used_at is None
        assert timedelta(days=89) < token.expires_at - now < timedelta(days=91)
        assert accounts.user_of_token("old token") is old
        db.session.remove()
        db.engine.dispose()
