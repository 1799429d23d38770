"""The app factory and the configuration precedence."""
import re
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from supervising_ui import create_app
from supervising_ui.config import ml_settings
from supervising_ui.extensions import db


def test_testing_flag(app):
    assert app.testing
    assert not create_app({"SECRET_KEY": "x"}).testing


def test_defaults_put_sqlite_in_instance_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("SUPERVISING_UI_INSTANCE", str(tmp_path))
    monkeypatch.delenv("SUPERVISING_UI_DATABASE_URL", raising=False)
    monkeypatch.delenv("SUPERVISING_UI_SECRET_KEY", raising=False)
    app = create_app()
    assert app.instance_path == str(tmp_path)
    assert app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path / 'supervising_ui.sqlite3'}"
    key = app.config["SECRET_KEY"]
    assert len(key) >= 32 and (tmp_path / "secret_key").read_text() == key
    assert create_app().config["SECRET_KEY"] == key, "the generated key is kept"


def test_precedence_defaults_file_env_mapping(tmp_path, monkeypatch):
    monkeypatch.setenv("SUPERVISING_UI_INSTANCE", str(tmp_path))
    (tmp_path / "config.py").write_text("LEASE_SECONDS = 11\nIMPORT_ROOT = '/from/file'\n"
                                        "JOB_QUEUE = 'from-file'\n")
    monkeypatch.setenv("SUPERVISING_UI_LEASE_SECONDS", "22")
    monkeypatch.setenv("SUPERVISING_UI_JOB_QUEUE", "from-env")
    monkeypatch.setenv("SUPERVISING_UI_DATABASE_URL", "sqlite:///from-env.sqlite3")
    app = create_app({"JOB_QUEUE": "from-mapping"})
    assert app.config["IMPORT_ROOT"] == "/from/file"          # file beats default
    assert app.config["LEASE_SECONDS"] == 22                  # env beats file, parsed as int
    assert app.config["JOB_QUEUE"] == "from-mapping"          # mapping beats env
    assert app.config["SQLALCHEMY_DATABASE_URI"] == "sqlite:///from-env.sqlite3"
    assert app.config["MAX_IMAGE_PIXELS"] == 89_478_485       # untouched default


def test_sqlite_runs_in_wal_mode(app):
    if not app.config["DATABASE_URL"].startswith("sqlite"):
        pytest.skip("WAL is a SQLite journal mode")
    with app.app_context():
        assert db.session.execute(text("PRAGMA journal_mode")).scalar() == "wal"


def test_migrations_match_models(app):
    """The Alembic migrations create exactly the schema the models describe."""
    with app.app_context(), db.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), db.metadata)
    assert diff == []


@pytest.mark.slow
def test_ml_commands_hang_off_the_app_cli_without_loading_torch_into_web_processes(tmp_path):
    env = {"SUPERVISING_UI_INSTANCE": str(tmp_path), "PATH": "/usr/bin:/bin"}
    probe = ("import sys; from supervising_ui import create_app; create_app(); "
             "print('torch' in sys.modules)")
    web = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True)
    assert web.stdout.strip() == "False", web.stderr
    listed = subprocess.run([sys.executable, "-m", "supervising_ui.cli", "ml", "--help"], env=env,
                            capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr
    assert all(name in listed.stdout for name in ("train", "predict", "evaluate"))


def test_job_and_retrain_settings_come_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SUPERVISING_UI_INSTANCE", str(tmp_path))
    monkeypatch.setenv("SUPERVISING_UI_JOB_STALE_SECONDS", "12.5")
    monkeypatch.setenv("SUPERVISING_UI_RETRAIN_MIN_LABELS", "40")
    app = create_app()
    assert app.config["JOB_STALE_SECONDS"] == 12.5 and app.config["RETRAIN_MIN_LABELS"] == 40
    assert app.config["JOB_HEARTBEAT_SECONDS"] == 5.0


def test_ml_settings_come_from_defaults_then_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("SUPERVISING_UI_EMBEDDING_CACHE", raising=False)
    monkeypatch.delenv("SUPERVISING_UI_THREADS", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert ml_settings() == {"EMBEDDING_CACHE": str(tmp_path / ".cache" / "supervising_ui" /
                                                    "embeddings"), "THREADS": None}
    monkeypatch.setenv("SUPERVISING_UI_EMBEDDING_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SUPERVISING_UI_THREADS", "3")
    assert ml_settings() == {"EMBEDDING_CACHE": str(tmp_path / "cache"), "THREADS": 3}
    from supervising_ui.ml.cli import default_cache_dir  # here: it imports torch
    assert default_cache_dir() == str(tmp_path / "cache")  # the ml commands read them there


def test_only_config_reads_the_environment():
    package = Path(__file__).resolve().parents[2] / "supervising_ui"
    reads = re.compile(r"os\.environ\.get|os\.environ\[|os\.getenv|environ\.get\(")
    readers = [str(path.relative_to(package)) for path in package.rglob("*.py")
               if path != package / "config.py" and reads.search(path.read_text())]
    assert readers == []
