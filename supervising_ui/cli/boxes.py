"""The import-boxes console command (registered from cli.COMMANDS): an annotator's boxes onto
an observation, as the admin's import form does (boxes/imports.py)."""
from pathlib import Path

import click
from flask.cli import with_appcontext
from sqlalchemy import select

from ..boxes import BoxError, imports
from ..echo import fail
from ..extensions import db
from ..models import Observation
from ..projects import service as projects


@click.command("import-boxes")
@click.argument("name")
@click.option("--observation", "observation_name", required=True,
              help="The observation's name in project NAME.")
@click.option("--annotator", required=True,
              help="Whose boxes these are; created as a labeler when missing.")
@click.option("--voc", type=click.Path(exists=True, dir_okay=False), help="Pascal VOC XML file.")
@click.option("--coco", type=click.Path(exists=True, dir_okay=False), help="COCO JSON file.")
@click.option("--csv", "csv_file", type=click.Path(exists=True, dir_okay=False),
              help="CSV file: x_min,y_min,x_max,y_max,label.")
@click.option("--image-name", default=None,
              help="COCO: the image whose boxes to take (default: the observation's name, or "
                   "the file's only image).")
@click.option("--show-password", is_flag=True,
              help="Print the random password of an annotator created now.")
@with_appcontext
def import_boxes_command(name, observation_name, annotator, voc, coco, csv_file, image_name,
                         show_password):
    """Import an annotator's boxes (VOC, COCO or CSV) onto an observation of project NAME."""
    given = [(kind, path) for kind, path in (("voc", voc), ("coco", coco), ("csv", csv_file))
             if path]
    if len(given) != 1:
        fail("give exactly one of --voc, --coco and --csv")
    kind, path = given[0]
    try:
        project = projects.get_project_by_name(name)
        observation = db.session.scalar(select(Observation).where(
            Observation.project_id == project.id, Observation.name == observation_name))
        if observation is None:
            fail(f"project {name!r} has no observation {observation_name!r}")
        if kind == "coco" and image_name is None:
            image_name = observation.name
        result = imports.import_boxes(observation, annotator, kind, Path(path).read_bytes(),
                                      image_name)
    except projects.ProjectError as error:
        fail(str(error))
    except BoxError as error:
        fail(error.message)
    click.echo(f"Imported {result.imported} boxes of {result.username!r} onto "
               f"{observation_name!r}" + (f" ({result.skipped} outside it, skipped)"
                                          if result.skipped else "") + ".")
    if result.user_created:
        click.echo(f"Created the labeler {result.username!r}"
                   + (f" with the password {result.password}" if show_password else
                      " with a random password (not shown; --show-password prints it)") + ".")
