"""The console commands: ``supervising-ui COMMAND`` (also ``flask --app supervising_ui COMMAND``).

One style throughout: every command is a ``@click.command`` registered from ``COMMANDS`` in
``init_app`` (project-members lives in members.py, export in export.py, import-observation
in observations.py, import-boxes in boxes.py), and every one that uses the app
carries ``@with_appcontext``, so it behaves the same under ``supervising-ui``, ``flask`` and
the test runner; ``echo.fail`` is the one-line error. Choice lists come from the
module that owns them. ``supervising-ui`` adds Flask's ``shell`` and ``routes`` but not
``run`` (the development server): ``serve`` is the way to serve.
"""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import click
from flask import Flask
from flask.cli import FlaskGroup, routes_command, shell_command, with_appcontext

from .. import database
from ..accounts import users as accounts
from ..echo import fail
from ..extensions import db
from ..importing import ImportRefused, runner, sources
from ..jobs import queue as jobs
from ..jobs.status import follow_job
from ..learning import classify, embedding, triggers
from ..models import ROLES
from ..projects import demo
from ..projects import service as projects
from ..search import service as search_service
from ..web import errors
from . import boxes as cli_boxes
from . import export as cli_export
from . import members as cli_members
from . import observations as cli_observations


def console() -> FlaskGroup:
    """Return the ``supervising-ui`` group: the app's commands, Flask's shell and routes."""
    from .. import create_app
    group = FlaskGroup(create_app=create_app, add_default_commands=False,
                       help="Supervising UI: label Mars images and train classifiers from the labels.")
    for command in (shell_command, routes_command):
        group.add_command(command)
    return group


def main() -> None:
    """Run the ``supervising-ui`` console command; a disk or file error is one line, status 1."""
    try:
        console()()
    except Exception as error:
        reason = errors.disk_trouble(error)
        if reason is None and not isinstance(error, OSError):
            raise
        where = getattr(error, "filename", None)
        click.echo(f"Error: {reason or error.strerror or error}"
                   + (f" ({where})" if where else ""), err=True)
        sys.exit(1)


class _LazyGroup(click.Group):
    """A group whose subcommands come from supervising_ui.ml.cli when first asked for.

    Keeps torch out of the web processes: create_app() registers this group, and only running
    (or listing) an ml command imports the classifier package.
    """

    @staticmethod
    def _real() -> click.Group:
        from ..ml.cli import ml
        return ml

    def list_commands(self, ctx):
        return self._real().list_commands(ctx)

    def get_command(self, ctx, name):
        return self._real().get_command(ctx, name)


@click.group("ml", cls=_LazyGroup)
def ml_command():
    """Train, apply and evaluate image classifiers: ml train | predict | evaluate."""
    _LazyGroup._real().callback()


@click.command("init")
@click.option("--admin", "admin_name", default=None,
              help="Also create this admin account (if absent) and print its generated password.")
@with_appcontext
def init_command(admin_name):
    """Create the database or migrate it to the newest schema."""
    database.create_or_migrate()
    click.echo("Database is at the newest schema.")
    if admin_name and accounts.find_user(admin_name) is None:
        _, password = accounts.create_user(admin_name, role="admin")
        click.echo(f"Created admin {admin_name!r} with password: {password}")
        click.echo("Write it down: it is shown only this once.")


@click.command("create-user")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), default="labeler", show_default=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@with_appcontext
def create_user_command(name, role, password_stdin):
    """Create a user; prints a generated password once unless one comes on stdin."""
    password = sys.stdin.readline().rstrip("\n") if password_stdin else None
    try:
        _, password_used = accounts.create_user(name, role=role, password=password)
    except accounts.AccountError as error:
        fail(str(error))
    click.echo(f"Created {role} {name!r}.")
    if not password_stdin:
        click.echo(f"Password (shown only this once): {password_used}")


@click.command("create-project")
@click.argument("name")
@click.option("--preset", type=click.Choice(sorted(projects.PRESETS)), default=None)
@click.option("--classes", default=None, help="Comma-separated class names.")
@click.option("--labels-per-image", type=int, default=1, show_default=True)
@click.option("--description", default="")
@with_appcontext
def create_project_command(name, preset, classes, labels_per_image, description):
    """Create a labeling project from a preset or a class list."""
    if (preset is None) == (classes is None):
        fail("give exactly one of --preset or --classes")
    try:
        class_list = projects.parse_class_list(classes) if classes else None
        project = projects.create_project(name, classes=class_list, preset=preset,
                                          description=description,
                                          labels_per_image=labels_per_image)
    except projects.ProjectError as error:
        fail(str(error))
    click.echo(f"Created project {project.name!r} (id {project.id}) with classes: "
               f"{', '.join(project.class_names)}")


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8000, show_default=True)
@click.option("--workers", type=int, default=2, show_default=True)
@click.option("--threads", type=int, default=8, show_default=True)
@click.option("--access-log", default="-", show_default=True,
              help="File for gunicorn's access log ('-': standard output, 'none': no log).")
@with_appcontext
def serve_command(host, port, workers, threads, access_log):
    """Serve the app with gunicorn (threads per worker for many concurrent labelers)."""
    log = [] if access_log == "none" else ["--access-logfile", access_log]
    command = [sys.executable, "-m", "gunicorn", "--workers", str(workers), "--worker-class",
               "gthread", "--threads", str(threads), "--bind", f"{host}:{port}", *log,
               "--config", "python:supervising_ui.web.gunicorn_config", "supervising_ui:create_app()"]
    click.echo(f"Serving on http://{host}:{port}/ with a job worker beside it")
    signal.signal(signal.SIGTERM, _interrupt)  # a service manager's stop ends both children
    worker = _start_worker()
    server = subprocess.Popen(command, env=os.environ.copy())
    try:
        while (status := server.poll()) is None:
            if worker.poll() is not None:
                click.echo(f"The job worker exited with status {worker.returncode}; restarting it.",
                           err=True)
                _reap_jobs_of_dead_worker()
                worker = _start_worker()
            time.sleep(1)
    except KeyboardInterrupt:
        status = 0
    finally:
        for process in (server, worker):
            process.terminate()
        for process in (server, worker):
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
    sys.exit(status)


def _start_worker() -> subprocess.Popen:
    """Start the job worker as a child process with this process's environment."""
    return subprocess.Popen([sys.executable, "-m", "supervising_ui.cli", "worker"],
                            env=os.environ.copy())


def _reap_jobs_of_dead_worker() -> None:
    """Reap the dead worker's job at once (queued again, or failed): no retrain waits on it."""
    try:
        jobs.reap_stale_jobs()
    except Exception as error:  # the database may be down too: the new worker reaps at start
        click.echo(f"Could not check the dead worker's jobs: {error}", err=True)
    finally:
        db.session.remove()  # serve holds no transaction while it watches its children


def _interrupt(signum, frame):
    """Turn SIGTERM into KeyboardInterrupt, so that serve's clean-up runs."""
    raise KeyboardInterrupt


@click.command("worker")
@with_appcontext
def worker_command():
    """Run the background job worker (retraining, imports) until stopped.

    SIGTERM stops the running job at its next progress report and queues it again (once);
    Ctrl-C lets it finish first.
    """
    jobs.run_worker()


@click.command("retrain")
@click.argument("project_name")
@click.option("--kind", type=click.Choice(list(triggers.TRAINING_MODES)), default="quick",
              show_default=True,
              help="quick: a head over cached embeddings (seconds); finetune: the whole network.")
@click.option("--epochs", type=int, default=None, help="Override the training epochs.")
@click.option("--wait", is_flag=True, help="Poll the job until it ends, printing its progress.")
@with_appcontext
def retrain_command(project_name, kind, epochs, wait):
    """Queue a retrain of a project (a worker runs it); with --wait, follow it to the end."""
    try:
        project = projects.get_project_by_name(project_name)
        job = triggers.request_retrain(project, kind, epochs=epochs)
    except (projects.ProjectError, triggers.RetrainError) as error:
        fail(str(error))
    except jobs.JobBusy as busy:
        fail(f"{busy}: wait for job {busy.job.id} (supervising-ui retrain waits with --wait)")
    click.echo(f"Queued {kind} retrain job {job.id} of {project.name!r}.")
    if wait:
        status = _follow(job)
        click.echo(f"Job {job.id} done: model version {status['model_version']}.")


def _follow(job) -> dict:
    """Follow a job to its end, printing its progress; fail the command if the job failed."""
    status = follow_job(job.id, click.echo)
    if status["state"] == "failed":
        fail(f"job {job.id} failed: {status['error']}")
    return status


@click.command("import")
@click.argument("project_name")
@click.option("--manifest", type=click.Path(exists=True, dir_okay=False), default=None,
              help="CSV with a 'filename' column, optional 'label' and metadata columns.")
@click.option("--image-root", type=click.Path(exists=True, file_okay=False), default=None,
              help="Folder the manifest's file names are relative to (default: its folder).")
@click.option("--dir", "folder", type=click.Path(exists=True, file_okay=False), default=None,
              help="Import every image below this folder.")
@click.option("--user", "user_name", default=None,
              help="Admin to whom manifest labels are attributed (default: the first admin).")
@with_appcontext
def import_command(project_name, manifest, image_root, folder, user_name):
    """Import images into a project from a manifest CSV or a folder, then print the report."""
    if (manifest is None) == (folder is None):
        fail("give exactly one of --manifest M.csv (with --image-root DIR) or --dir DIR")
    try:
        project = projects.get_project_by_name(project_name)
        user = accounts.label_owner(user_name)
        plan = sources.plan_manifest(Path(manifest), Path(image_root or Path(manifest).parent)) \
            if manifest else sources.plan_folder(Path(folder))
    except (projects.ProjectError, accounts.AccountError, ImportRefused) as error:
        fail(str(error))
    if user is None and any(candidate.label for candidate in plan.candidates):
        fail("the manifest has labels but there is no admin to attribute them to: create one "
             "(supervising-ui init --admin NAME) or pass --user NAME")
    with click.progressbar(length=len(plan.candidates), label="Importing", show_pos=True) as bar:
        report = runner.run_import(project, plan, user_id=user.id if user else None,
                                   progress=lambda done, total: bar.update(1),
                                   source=f"manifest {Path(manifest).name}" if manifest
                                   else f"folder {Path(folder).name}")
    click.echo(f"Import into {project.name!r}: {report.summary()}.")
    user_id = user.id if user else None
    _echo_classify_job(classify.classify_new_images(project.id, report.added, user_id))
    embedding.embed_new_images(project.id, report.added, user_id)  # features for the first retrain
    for line in report.detail_lines():
        click.echo(line)
    if report.stopped:
        fail(f"the import stopped: {report.stopped}")


def _echo_classify_job(job) -> None:
    """Say what became of the classify job an import queued (None: no model serves)."""
    if job is None:
        return
    if job.state in ("queued", "running"):
        click.echo(f"Queued classify job {job.id}: the serving model predicts the new images "
                   "when a worker runs it (supervising-ui worker, or serve).")
    else:
        click.echo(f"Classify job {job.id} {job.state}: "
                   f"{(job.result or {}).get('summary') or job.error or ''}")


@click.command("classify")
@click.argument("project_name")
@click.option("--wait", is_flag=True, help="Poll the job until it ends, printing its progress.")
@with_appcontext
def classify_command(project_name, wait):
    """Queue a job in which the serving model predicts the images lacking its predictions."""
    try:
        project = projects.get_project_by_name(project_name)
        job = classify.request_classify(project)
    except (projects.ProjectError, classify.ClassifyError) as error:
        fail(str(error))
    if job is None:
        click.echo(f"Every image of {project.name!r} has a prediction of the serving model: "
                   "nothing to classify.")
        return
    click.echo(f"Queued classify job {job.id} of {project.name!r}: model v{job.params['version']} "
               f"predicts {job.params['lacking']} images lacking its predictions.")
    if wait:
        status = _follow(job)
        click.echo(f"Job {job.id} done: {status['result'].get('summary', '')}.")


@click.command("demo")
@with_appcontext
def demo_command():
    """Create a demo project with generated images, and an admin if there is none."""
    database.create_or_migrate()
    messages, _ = demo.create_demo()
    for message in messages:
        click.echo(message)
    click.echo("Start the server with `supervising-ui serve` and log in.")


@click.command("create-token")
@click.argument("name")
@click.option("--expires-days", type=click.IntRange(1, accounts.MAX_TOKEN_DAYS), default=None,
              help="Days until the token stops working (default: the API_TOKEN_DAYS setting).")
@click.option("--label", default="", help="What the token is for, shown on the token page.")
@with_appcontext
def create_token_command(name, expires_days, label):
    """Print a new API token for user NAME (send it as 'Authorization: Bearer TOKEN')."""
    user = accounts.find_user(name)
    if user is None or not user.active:
        fail(f"no active user called {name!r}")
    try:
        token = accounts.create_api_token(user, label, expires_days)
    except accounts.AccountError as error:
        fail(str(error))
    click.echo(token)  # alone on standard output, for TOKEN=$(supervising-ui create-token NAME)


@click.command("revoke-tokens")
@click.argument("name")
@with_appcontext
def revoke_tokens_command(name):
    """Revoke every live API token of user NAME."""
    user = accounts.find_user(name)
    if user is None:
        fail(f"no user called {name!r}")
    count = accounts.revoke_api_tokens(user)
    click.echo(f"Revoked {count} token{'s' if count != 1 else ''} of {user.username!r}.")


@click.command("search-rebuild")
@click.argument("project_name")
@with_appcontext
def search_rebuild_command(project_name):
    """Rebuild a project's search index from its images, labels and predictions."""
    try:
        count = search_service.rebuild(project_name)
    except LookupError as error:
        fail(str(error))
    click.echo(f"Indexed {count} images of {project_name!r}.")


# Every console command of the app (`--help` lists them sorted by name).
COMMANDS = (init_command, create_user_command, create_project_command, import_command,
            demo_command, retrain_command, classify_command, cli_export.export_command,
            create_token_command,
            revoke_tokens_command, search_rebuild_command, serve_command, worker_command,
            ml_command, cli_members.project_members_command,
            cli_observations.import_observation_command, cli_boxes.import_boxes_command)


def init_app(app: Flask) -> None:
    """Register the console commands on app.cli."""
    for command in COMMANDS:
        app.cli.add_command(command)
