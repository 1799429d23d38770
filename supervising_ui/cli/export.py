"""The export console command (registered from cli.COMMANDS): a project's labels, consensus,
training manifest or unsure images as CSV or JSON (projects/export.py), or its landmarks as
CSV, GeoJSON, Pascal VOC or COCO (boxes/exports.py)."""
import click
from flask.cli import with_appcontext

from ..boxes import BoxError
from ..boxes import exports as landmark_exports
from ..echo import fail
from ..projects import export
from ..projects import service as projects

LANDMARKS = "landmarks"
KINDS = (*export.KINDS, LANDMARKS)
FORMATS = (*export.FORMATS, *(name for name in landmark_exports.FORMATS
                              if name not in export.FORMATS))


@click.command("export")
@click.argument("name")
@click.option("--kind", type=click.Choice(KINDS), default="labels", show_default=True)
@click.option("--format", "export_format", type=click.Choice(FORMATS), default="csv",
              show_default=True, help="csv or json; for landmarks csv, geojson, voc or coco.")
@click.option("--out", type=click.Path(dir_okay=False, writable=True), required=True,
              help="File to write ('-' for standard output).")
@click.option("--min-votes", type=click.IntRange(min=1), default=None,
              help="Landmarks: at least this many people marked each (default: the project's "
                   "minimum, with the reviewers' decisions).")
@click.option("--observation", "observation_name", default=None,
              help="Landmarks: only this observation's (a VOC file holds one).")
@with_appcontext
def export_command(name, kind, export_format, out, min_votes, observation_name):
    """Export project NAME's labels, consensus, training manifest or landmarks."""
    if kind != LANDMARKS and (min_votes is not None or observation_name is not None):
        fail("--min-votes and --observation are for --kind landmarks")
    try:
        project = projects.get_project_by_name(name)
        if kind == LANDMARKS:
            if export_format not in landmark_exports.FORMATS:
                fail(f"landmarks export as {', '.join(landmark_exports.FORMATS)}")
            text = landmark_exports.project_export(project, export_format, min_votes,
                                                   observation_name)
        else:
            text = export.export_text(project, kind, export_format)
    except (projects.ProjectError, export.ExportError) as error:
        fail(str(error))
    except BoxError as error:
        fail(error.message)
    with click.open_file(out, "w", encoding="utf-8") as handle:
        handle.write(text)
    if out != "-":
        click.echo(f"Wrote {kind} of {name!r} to {out}", err=True)
