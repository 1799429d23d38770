"""The console commands: ``supervising-ui COMMAND`` (also ``flask --app supervising_ui COMMAND``)."""
import os
import subprocess
import sys

import click
from flask import Flask
from flask.cli import FlaskGroup

from . import auth, database, jobs, projects


def main() -> None:
    """Run the ``supervising-ui`` console command."""
    from . import create_app
    FlaskGroup(create_app=create_app, add_default_commands=True,
               help="Supervising UI: label Mars images and train classifiers from the labels.")()


def init_app(app: Flask) -> None:
    """Register the console commands on app.cli."""
    for command in (init_command, create_user_command, create_project_command, serve_command,
                    worker_command):
        app.cli.add_command(command)


def fail(message: str) -> None:
    """Stop the command with a message for the user and exit status 1."""
    raise click.ClickException(message)


@click.command("init")
@click.option("--admin", "admin_name", default=None,
              help="Also create this admin account (if absent) and print its generated password.")
def init_command(admin_name):
    """Create the database or migrate it to the newest schema."""
    database.create_or_migrate()
    click.echo("Database is at the newest schema.")
    if admin_name:
        from sqlalchemy import select
        from .extensions import db
        from .models import User
        if db.session.scalar(select(User).where(User.username == admin_name)) is None:
            _, password = auth.create_user(admin_name, role="admin")
            click.echo(f"Created admin {admin_name!r} with password: {password}")
            click.echo("Write it down: it is shown only this once.")


@click.command("create-user")
@click.argument("name")
@click.option("--role", type=click.Choice(["admin", "labeler"]), default="labeler")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def create_user_command(name, role, password_stdin):
    """Create a user; prints a generated password once unless one comes on stdin."""
    password = sys.stdin.readline().rstrip("\n") if password_stdin else None
    try:
        _, password_used = auth.create_user(name, role=role, password=password)
    except auth.AccountError as error:
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
def serve_command(host, port, workers, threads):
    """Serve the app with gunicorn (threads per worker for many concurrent labelers)."""
    command = [sys.executable, "-m", "gunicorn", "--workers", str(workers),
               "--worker-class", "gthread", "--threads", str(threads),
               "--bind", f"{host}:{port}", "--access-logfile", "-",
               "supervising_ui:create_app()"]
    click.echo(f"Serving on http://{host}:{port}/ with a job worker beside it")
    worker = subprocess.Popen([sys.executable, "-m", "supervising_ui.cli", "worker"],
                              env=os.environ.copy())
    server = subprocess.Popen(command, env=os.environ.copy())
    try:
        status = server.wait()
    except KeyboardInterrupt:
        status = 0
    finally:
        for process in (server, worker):
            process.terminate()
            process.wait()
    sys.exit(status)


@click.command("worker")
def worker_command():
    """Run the background job worker (retraining, imports) until interrupted."""
    jobs.run_worker()


if __name__ == "__main__":
    main()
