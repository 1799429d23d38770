"""What the observation pages show: the list of a project's observations and one observation's
viewer (its deep-zoom source, tiles as work units, scale, the class colours)."""
from __future__ import annotations

from datetime import datetime

from flask import url_for
from sqlalchemy import select

from ..extensions import db
from ..models import Job, LabelClass, Observation, Project
from . import files, overlay, work
from .geo import pixel_to_latlon
from .tiling import JOB_KIND as TILING_JOB

# Class colours of the overlay, in class order (colour-blind safe: Okabe-Ito, then Tol's).
PALETTE = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7",
           "#882255", "#44AA99", "#999933", "#AA4499", "#DDCC77")


def list_page(project: Project) -> dict:
    """Return the project's observations: status, size, scale, tiling job, landmark counts."""
    groups = {group["id"]: group for group in overlay.landmark_counts(project.id)}
    observations = list(db.session.scalars(select(Observation).where(
        Observation.project_id == project.id).order_by(Observation.name)))
    jobs = {job.params.get("observation_id"): job for job in db.session.scalars(
        select(Job).where(Job.project_id == project.id, Job.kind == TILING_JOB)
        .order_by(Job.id))}
    rows = [{"id": observation.id, "name": observation.name, "width": observation.width,
             "height": observation.height, "status": observation.status,
             "error": observation.error, "meters_per_pixel": observation.meters_per_pixel,
             "label_kind": observation.label_kind,
             "job_id": jobs[observation.id].id if observation.id in jobs else None,
             "landmarks": groups[observation.id]["landmarks"],
             "by_class": groups[observation.id]["by_class"],
             "area_km2": groups[observation.id]["area_km2"]}
            for observation in observations]
    db.session.commit()
    return {"project": {"id": project.id, "name": project.name,
                        "labelers_per_tile": project.labelers_per_tile,
                        "landmark_min_votes": project.landmark_min_votes},
            "observations": rows}


def class_colours(project_id: int) -> dict[str, str]:
    """Return each class of the project with its overlay colour."""
    names = db.session.scalars(select(LabelClass.name).where(
        LabelClass.project_id == project_id).order_by(LabelClass.position, LabelClass.id))
    return {name: PALETTE[index % len(PALETTE)] for index, name in enumerate(names)}


def viewer_page(observation: Observation, user_id: int, now: datetime) -> dict:
    """Return what the observation page needs: sizes, scale, corners' lat/lon, tiles, URLs."""
    project_id = observation.project_id
    corners = None
    if observation.projection:
        corners = {name: pixel_to_latlon(observation.projection, x, y) for name, (x, y) in {
            "top_left": (0, 0), "bottom_right": (observation.width, observation.height),
            "centre": (observation.width / 2, observation.height / 2)}.items()}
    data = {
        "id": observation.id, "name": observation.name, "project_id": project_id,
        "width": observation.width, "height": observation.height, "status": observation.status,
        "error": observation.error, "meters_per_pixel": observation.meters_per_pixel,
        "label_kind": observation.label_kind, "corners": corners,
        "tile_size": observation.tile_size,
        "tiles": work.tile_states(observation, user_id, now),
        "colours": class_colours(project_id),
        "deepzoom": {"tile_size": files.DEEPZOOM_TILE, "overlap": files.DEEPZOOM_OVERLAP,
                     "format": files.DEEPZOOM_FORMAT},
        "urls": {
            "dzi": url_for("observations.deepzoom_descriptor", observation_id=observation.id),
            "tiles": url_for("observations.deepzoom_descriptor",
                             observation_id=observation.id).removesuffix(".dzi") + "_files/",
            "overlay": url_for("observations.overlay_api", observation_id=observation.id),
            "sfd": url_for("observations.sfd_api", observation_id=observation.id),
            "latlon": url_for("observations.latlon_api", observation_id=observation.id),
            "next": url_for("observations.next_tile", project_id=project_id,
                            observation_id=observation.id),
            "label_tile": f"/projects/{project_id}/observations/{observation.id}/tiles/",
            "thumbnail": "/api/images/",
        },
    }
    db.session.commit()
    return data


def descriptor_xml(observation: Observation) -> str:
    """Return the observation's Deep Zoom descriptor (.dzi), as OpenSeadragon reads it."""
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<Image xmlns="http://schemas.microsoft.com/deepzoom/2008" '
            f'Format="{files.DEEPZOOM_FORMAT}" Overlap="{files.DEEPZOOM_OVERLAP}" '
            f'TileSize="{files.DEEPZOOM_TILE}"><Size Width="{int(observation.width)}" '
            f'Height="{int(observation.height)}"/></Image>\n')
