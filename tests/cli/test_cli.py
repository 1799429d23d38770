"""The console group: which commands it offers, and choice lists taken from their owners."""
import click
from flask.cli import ScriptInfo

from supervising_ui import cli
from supervising_ui.boxes import exports as landmark_exports
from supervising_ui.cli import export as cli_export
from supervising_ui.learning import triggers
from supervising_ui.models import ROLES
from supervising_ui.projects import export
from supervising_ui.projects import service as projects


def choices(command: click.Command, name: str) -> list[str]:
    """The choices of one option of a command."""
    option = next(param for param in command.params if param.name == name)
    return list(option.type.choices)


def test_choice_lists_come_from_the_modules_that_own_them():
    assert choices(cli.create_user_command, "role") == list(ROLES)
    assert choices(cli.retrain_command, "kind") == list(triggers.TRAINING_MODES)
    assert choices(cli_export.export_command, "kind") == [*export.KINDS, "landmarks"]
    formats = choices(cli_export.export_command, "export_format")
    assert formats[:len(export.FORMATS)] == list(export.FORMATS)
    assert set(formats) == set(export.FORMATS) | set(landmark_exports.FORMATS)
    assert choices(cli.create_project_command, "preset") == sorted(projects.PRESETS)


def test_create_user_help_lists_the_roles(runner):
    result = runner.invoke(args=["create-user", "--help"])
    assert result.exit_code == 0 and f"[{'|'.join(ROLES)}]" in result.output


def test_console_offers_the_app_commands_shell_routes_and_db_but_not_run(app):
    runner = app.test_cli_runner()
    listed = runner.invoke(cli.console(), ["--help"], obj=ScriptInfo(create_app=lambda: app))
    assert listed.exit_code == 0, listed.output
    offered = {line.split()[0] for line in listed.output.split("Commands:")[1].splitlines()
               if line.strip()}
    assert offered == {command.name for command in cli.COMMANDS} | {"db", "routes", "shell"}


def test_routes_and_db_work_and_one_route_reports_a_job(app):
    runner = app.test_cli_runner()
    routes = runner.invoke(cli.console(), ["routes"], obj=ScriptInfo(create_app=lambda: app))
    assert routes.exit_code == 0, routes.output
    job_routes = [line for line in routes.output.splitlines() if "/jobs/" in line]
    assert len(job_routes) == 2 and "/api/jobs/<int:job_id>/cancel" in job_routes[0]
    assert "GET" in job_routes[1] and job_routes[1].split()[2] == "/api/jobs/<int:job_id>"
    migrate = runner.invoke(cli.console(), ["db", "current"],
                            obj=ScriptInfo(create_app=lambda: app))
    # Alembic prints the revision on the stdout it was imported with, not the runner's.
    assert migrate.exit_code == 0, migrate.output
