"""The console command that imports a whole observation (registered from cli.COMMANDS).

It calls the same service as the admin's observation form (observations/service.py).
"""
from pathlib import Path

import click
from flask.cli import with_appcontext

from ..accounts import users as accounts
from ..echo import fail
from ..jobs.status import follow_job
from ..observations.service import ObservationRefused, import_observation
from ..projects import service as projects


@click.command("import-observation")
@click.argument("project_name")
@click.option("--image", "image_path", required=True,
              type=click.Path(exists=True, dir_okay=False),
              help="The observation's image: PNG, JPEG, TIFF or JPEG 2000.")
@click.option("--label", "label_path", type=click.Path(exists=True, dir_okay=False),
              default=None, help="Its PDS3 .LBL or PDS4 .xml label (scale, latitude, longitude).")
@click.option("--name", "name", default=None,
              help="The observation's name in the project (default: the image's file stem).")
@click.option("--user", "user_name", default=None,
              help="Admin recorded as the importer (default: the first admin).")
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="Wait for the deep-zoom tiles (the tiling job) before returning.")
@with_appcontext
def import_observation_command(project_name, image_path, label_path, name, user_name, wait):
    """Import a big image as an observation of a project, then make its deep-zoom tiles."""
    try:
        project = projects.get_project_by_name(project_name)
        user = accounts.label_owner(user_name)
        observation, job = import_observation(project, name or Path(image_path).stem,
                                              image_path, label_path,
                                              user.id if user else None)
    except (projects.ProjectError, accounts.AccountError, ObservationRefused) as error:
        fail(str(error))
    scale = f", {observation.meters_per_pixel:.3f} m/pixel" if observation.meters_per_pixel \
        else ", no label"
    click.echo(f"Observation {observation.id} {observation.name!r} of {project.name!r}: "
               f"{observation.width} x {observation.height} pixels{scale}; tiling job {job.id}.")
    if wait:
        status = follow_job(job.id, click.echo)
        if status["state"] == "failed":
            fail(f"job {job.id} failed: {status['error']}")
        click.echo(f"Observation {observation.id} is ready.")
