"""The console command that says and sets who may label a project (registered from cli.COMMANDS).

It calls the same service as the project's admin page (membership.py) and prints the
resulting state in the page's words.
"""
import click
from flask.cli import with_appcontext

from ..accounts import membership
from ..echo import fail
from ..projects import service as projects


@click.command("project-members")
@click.argument("project_name")
@click.option("--add", "add_names", multiple=True, metavar="USER",
              help="Make labeler USER a member (repeat the option for more).")
@click.option("--remove", "remove_names", multiple=True, metavar="USER",
              help="Take labeler USER off the members (repeat the option for more).")
@click.option("--everyone", is_flag=True,
              help="Every labeler may label the project (the default; members are kept).")
@click.option("--members-only", is_flag=True,
              help="Only the project's members (and admins) may see and label it.")
@with_appcontext
def project_members_command(project_name, add_names, remove_names, everyone, members_only):
    """Show or change who may label a project: everyone, or only its members (and admins)."""
    if everyone and members_only:
        fail("give at most one of --everyone and --members-only")
    try:
        project = projects.get_project_by_name(project_name)
        access = membership.change_members(project, add_names, remove_names,
                                           True if members_only else False if everyone else None)
    except (projects.ProjectError, membership.MembershipError) as error:
        fail(str(error))
    click.echo(membership.describe(project, access))
