"""Configuration: the one place that says where each setting comes from.

Precedence, lowest first:
1. ``DEFAULTS`` below;
2. ``config.py`` in the instance folder (plain Python, UPPERCASE names);
3. environment variables ``SUPERVISING_UI_<NAME>`` (e.g. ``SUPERVISING_UI_DATABASE_URL``);
4. the mapping passed to ``create_app(test_config)``.

The instance folder itself comes from ``SUPERVISING_UI_INSTANCE`` (default ``instance/``
beside the package); it holds the SQLite database, the managed image store, trained
models, the job queue and the generated secret key.

The ``ml`` commands run without an app (and without Flask): their few settings,
``ML_DEFAULTS``, come from the defaults overridden by ``SUPERVISING_UI_<NAME>``; a command
line option (e.g. ``--cache-dir``) beats both. ``ml_settings()`` reads them.

Nothing else in the package reads ``os.environ`` (``serve`` only hands it to its children).
This module imports no Flask, so that the ``ml`` package can use it.
"""
import os
import secrets
from pathlib import Path
from typing import Any, Callable

ENV_PREFIX = "SUPERVISING_UI_"
PROJECT_ROOT = Path(__file__).resolve().parent.parent

DEFAULTS = {
    # Database: None means SQLite in the instance folder.
    "DATABASE_URL": None,
    # PostgreSQL's synchronous_commit for the app's connections: "off" commits without
    # waiting for the disk (as SQLite's WAL mode here); "on" waits (database.py says why not).
    "DATABASE_SYNCHRONOUS_COMMIT": "off",
    # Secret key: None means generate once and keep in the instance folder.
    "SECRET_KEY": None,
    # Folder on the server under which admins may import folders and manifests.
    "IMPORT_ROOT": None,
    # Largest upload accepted from the browser (the import upload only), in bytes.
    "MAX_CONTENT_LENGTH": 2 * 1024**3,
    # Largest request body accepted everywhere else, in bytes (413 above it).
    "MAX_REQUEST_BYTES": 1024**2,
    # Served over HTTPS: Secure session cookies and Strict-Transport-Security.
    "SECURE_COOKIES": False,
    # Reverse proxies in front of the app that may be trusted to set X-Forwarded-For and
    # X-Forwarded-Proto (Werkzeug's ProxyFix with this many hops); 0: none, the peer's
    # address is the client's. Set it only when every request comes through those proxies.
    "TRUSTED_PROXY_HOPS": 0,
    # Failed logins from one address (any account names) within 15 minutes that block the
    # address as a whole; one account is blocked from one address after 10.
    "LOGIN_FAILURES_PER_ADDRESS": 100,
    # Pillow's decompression-bomb limit: images over this many pixels are rejected.
    "MAX_IMAGE_PIXELS": 89_478_485,
    # How long a labeler holds an image before it goes back to the pool.
    "LEASE_SECONDS": 300,
    # Job queue: "sqlite" (file in the instance folder), "redis://..." or "memory" (tests).
    "JOB_QUEUE": "sqlite",
    # A running job writes a heartbeat this often; one silent for JOB_STALE_SECONDS is reaped
    # (its worker died: queued again once where its kind can run twice, else failed) so that
    # no job stays "running" forever.
    "JOB_HEARTBEAT_SECONDS": 5.0,
    "JOB_STALE_SECONDS": 30.0,
    # A worker stopped with SIGTERM waits this long for its job to stop at a progress report
    # (then queues it again); keep it under the 30 s after which `serve` kills the worker.
    "JOB_SHUTDOWN_GRACE_SECONDS": 10.0,
    # Managed image files that no image row names (an import killed midway) are deleted by
    # the worker once they are this old, in a sweep at most this often (importing/orphans.py).
    "ORPHAN_FILE_GRACE_SECONDS": 900.0,
    "ORPHAN_SWEEP_EVERY_SECONDS": 900.0,
    # The process umask while the app runs: what it creates (database, job queue, images,
    # thumbnails, models, caches) is readable by the service's user only. None: leave it.
    "FILE_UMASK": 0o077,
    # A retrain needs at least this many labeled images (by consensus).
    "RETRAIN_MIN_LABELS": 10,
    # The learning loop of a new project, on from the start: the images the serving model is
    # least sure of come first (random until a model serves), and a quick retrain is queued
    # after every NEW_PROJECT_RETRAIN_EVERY labels (0: only on request). Each project's
    # settings page changes both. 20 labels take a labeler about a minute or more, about
    # what a first quick retrain takes on a 2-core machine (docs/first-hour.md).
    "NEW_PROJECT_SERVING_ORDER": "least_confidence",
    "NEW_PROJECT_RETRAIN_EVERY": 20,
    # Backbone of retrained models: efficientnet_lite0 or alexnet.
    "RETRAIN_BACKBONE": "efficientnet_lite0",
    # Last backbone blocks the quick retrain trains along with its head, over cached
    # activations (0: the head alone over cached embeddings, seconds once they are cached;
    # None: 1 for efficientnet_lite0, 0 for alexnet: about a minute on 2 cores, 5.7 points
    # more on HiRISE val with all labels; docs/first-hour.md).
    "RETRAIN_TOP_BLOCKS": 0,
    # 1: an import queues an "embed" job that caches the quick model's features of the new
    # images (the first retrain then finds them cached); 0: the first retrain computes them.
    "EMBED_AT_IMPORT": 1,
    # Classification (the classify job, a retrain's predictions): a project's images are split
    # into chunks of this many, each a job that any worker takes (docs/classify-speed.md);
    # ONNX Runtime's threads per worker (0: one per core; with several workers on one host,
    # cores / workers); its precision, "fp32" or "int8" (needs model.int8.onnx in the version);
    # the test-time views it averages (0: ml/serving_choice.py's choice, 2; 1 doubles the speed).
    "CLASSIFY_CHUNK_IMAGES": 2000,
    "CLASSIFY_THREADS": 0,
    "CLASSIFY_PRECISION": "fp32",
    "CLASSIFY_VIEWS": 0,
    # Where the job worker trains: "auto" (a GPU when torch sees one, else the CPU), "cpu", "cuda".
    "RETRAIN_DEVICE": "auto",
    # The job worker fine-tunes a whole network for a project (and serves it if it does better
    # on the same held-out images) once nobody has labeled in it for this many minutes and it
    # has FINETUNE_MIN_NEW_LABELS labels since its last fine-tune. 0: never by itself.
    "FINETUNE_WHEN_IDLE_MINUTES": 30,
    "FINETUNE_MIN_NEW_LABELS": 200,
    # API tokens expire this many days after they are made, unless made with another term.
    "API_TOKEN_DAYS": 90,
    # Seconds a process remembers who a token or session cookie belongs to (0: ask the
    # database on every request); a revocation made elsewhere may take this long to count.
    "LOGIN_CACHE_SECONDS": 5.0,
    # Seconds a process remembers a project's labeling settings and serving model (0: read
    # them on every request); a change made by another process may take this long to count.
    "SETTINGS_CACHE_SECONDS": 2.0,
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    "WTF_CSRF_TIME_LIMIT": None,
}

# Settings that may come from the environment, and how to parse them.
_ENV_PARSERS = {
    "DATABASE_URL": str,
    "DATABASE_SYNCHRONOUS_COMMIT": str,
    "SECRET_KEY": str,
    "IMPORT_ROOT": str,
    "MAX_CONTENT_LENGTH": int,
    "MAX_REQUEST_BYTES": int,
    "SECURE_COOKIES": lambda value: value.strip().lower() in ("1", "true", "yes", "on"),
    "TRUSTED_PROXY_HOPS": int,
    "LOGIN_FAILURES_PER_ADDRESS": int,
    "MAX_IMAGE_PIXELS": int,
    "LEASE_SECONDS": int,
    "JOB_QUEUE": str,
    "JOB_HEARTBEAT_SECONDS": float,
    "JOB_STALE_SECONDS": float,
    "JOB_SHUTDOWN_GRACE_SECONDS": float,
    "ORPHAN_FILE_GRACE_SECONDS": float,
    "ORPHAN_SWEEP_EVERY_SECONDS": float,
    "FILE_UMASK": lambda value: int(value, 8),
    "RETRAIN_MIN_LABELS": int,
    "NEW_PROJECT_SERVING_ORDER": str,
    "NEW_PROJECT_RETRAIN_EVERY": int,
    "RETRAIN_BACKBONE": str,
    "RETRAIN_DEVICE": str,
    "CLASSIFY_CHUNK_IMAGES": int,
    "CLASSIFY_THREADS": int,
    "CLASSIFY_PRECISION": str,
    "CLASSIFY_VIEWS": int,
    "RETRAIN_TOP_BLOCKS": int,
    "EMBED_AT_IMPORT": int,
    "FINETUNE_WHEN_IDLE_MINUTES": float,
    "FINETUNE_MIN_NEW_LABELS": int,
    "API_TOKEN_DAYS": int,
    "LOGIN_CACHE_SECONDS": float,
    "SETTINGS_CACHE_SECONDS": float,
}


# Settings of the ``ml`` commands; None means the default named beside it.
ML_DEFAULTS = {
    # Backbone embeddings cached between runs; None: ~/.cache/supervising_ui/embeddings.
    "EMBEDDING_CACHE": None,
    # Threads torch may use; None: torch's own choice (the number of cores).
    "THREADS": None,
}
_ML_ENV_PARSERS = {"EMBEDDING_CACHE": str, "THREADS": int}


def env_setting(name: str, parse: Callable[[str], Any] = str, default: Any = None) -> Any:
    """Return $SUPERVISING_UI_<name> parsed by parse, or default when it is unset."""
    value = os.environ.get(ENV_PREFIX + name)
    return default if value is None else parse(value)


def ml_settings() -> dict:
    """Return the ``ml`` commands' settings: ML_DEFAULTS overridden by the environment."""
    settings = {name: env_setting(name, _ML_ENV_PARSERS[name], default)
                for name, default in ML_DEFAULTS.items()}
    if settings["EMBEDDING_CACHE"] is None:
        settings["EMBEDDING_CACHE"] = str(Path.home() / ".cache" / "supervising_ui" / "embeddings")
    return settings


def instance_path_from_env() -> str:
    """Return the instance folder: $SUPERVISING_UI_INSTANCE or ./instance beside the package."""
    configured = env_setting("INSTANCE")
    return str(Path(configured).resolve() if configured else PROJECT_ROOT / "instance")


def load_config(app, test_config=None) -> None:
    """Fill app.config following the precedence written at the top of this module."""
    app.config.from_mapping(DEFAULTS)
    app.config.from_pyfile("config.py", silent=True)
    for name, parse in _ENV_PARSERS.items():
        value = env_setting(name, parse)
        if value is not None:
            app.config[name] = value
    if test_config:
        app.config.from_mapping(test_config)
    _fill_derived(app)
    _keep_files_private(app)


def _fill_derived(app) -> None:
    """Resolve settings whose default depends on the instance folder."""
    instance = Path(app.instance_path)
    if not app.config.get("DATABASE_URL"):
        app.config["DATABASE_URL"] = f"sqlite:///{instance / 'supervising_ui.sqlite3'}"
    app.config["SQLALCHEMY_DATABASE_URI"] = app.config["DATABASE_URL"]
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = _persistent_secret_key(instance / "secret_key")
    app.config.setdefault("IMAGE_STORE", str(instance / "images"))
    app.config.setdefault("MODEL_STORE", str(instance / "models"))
    app.config.setdefault("CACHE_DIR", str(instance / "cache"))


def _keep_files_private(app) -> None:
    """Set the process umask to FILE_UMASK and take from the instance folder what it forbids."""
    umask = app.config["FILE_UMASK"]
    if umask is None:
        return
    os.umask(umask)
    instance = Path(app.instance_path)
    try:  # the folder was made before the umask applied; only ever remove permission bits
        instance.chmod(instance.stat().st_mode & 0o7777 & ~umask)
    except OSError:  # not ours to change: the files inside are still created private
        pass


def _persistent_secret_key(path: Path) -> str:
    """Read the secret key from path, generating it (mode 0600) on first use."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another worker process wrote it first
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    return key
