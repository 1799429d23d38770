"""Export of landmarks: CSV, GeoJSON, Pascal VOC and COCO, per observation (the API) or per
project (``supervising-ui export NAME --kind landmarks``).

Rows come from listing.landmark_rows (consensus landmarks, or those with at least
``min_votes`` human votes), with the latitude and longitude of each box's centre where the
observation's PDS label gave a projection (observations/geo.py). CSV goes through
downloads.frame_csv (the one CSV writer, with its formula guard); GeoJSON, VOC and COCO
through landmarks.formats. A VOC file describes one image: a project export in VOC needs
the observation named.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import select

from ..downloads import attachment, frame_csv
from ..extensions import db
from ..landmarks.geometry import Box as GeometryBox
from ..models import Observation, Project
from ..observations import geo
from . import BoxError, access
from .listing import landmark_rows

FORMATS = ("csv", "geojson", "voc", "coco")
MIMETYPES = {"csv": "text/csv", "geojson": "application/geo+json", "voc": "application/xml",
             "coco": "application/json"}
SUFFIXES = {"csv": ".csv", "geojson": ".geojson", "voc": ".xml", "coco": ".json"}
CSV_COLUMNS = ("id", "observation", "x_min", "y_min", "x_max", "y_max", "class",
               "predicted_class", "confidence", "votes", "human_votes", "status", "latitude",
               "longitude", "image_id")


@dataclass(frozen=True)
class Download:
    """An export as the browser gets it."""

    text: str
    mimetype: str
    disposition: str


def with_latlon(observation: Observation, rows: list[dict]) -> list[dict]:
    """Add each row's centre latitude and longitude (None without a projection)."""
    for row in rows:
        row["latitude"] = row["longitude"] = None
        if observation.projection:
            lat, lon = geo.pixel_to_latlon(observation.projection,
                                           (row["x_min"] + row["x_max"]) / 2,
                                           (row["y_min"] + row["y_max"]) / 2)
            row["latitude"], row["longitude"] = round(lat, 7), round(lon, 7)
    return rows


def rows_for(user, observation_id: int, min_votes: int | None = None) -> list[dict]:
    """The landmark rows of an observation user may see (404 otherwise), with lat/lon."""
    observation = access.observation_of(user, observation_id)
    return with_latlon(observation, landmark_rows(observation, min_votes))


def _boxes(rows: list[dict]) -> list[GeometryBox]:
    return [GeometryBox(row["x_min"], row["y_min"], row["x_max"], row["y_max"],
                        label=row["class"] or row["predicted_class"] or "",
                        annotator=str(row["human_votes"]), score=row["confidence"])
            for row in rows]


def write(export_format: str, observations: list[tuple[Observation, list[dict]]]) -> str:
    """The text of an export of these observations' rows."""
    from ..landmarks import formats
    if export_format not in FORMATS:
        raise BoxError(f"format must be one of {', '.join(FORMATS)}")
    if export_format == "csv":
        import pandas as pd
        rows = [row for _, part in observations for row in part]
        return frame_csv(pd.DataFrame(rows, columns=list(CSV_COLUMNS)))
    if export_format == "geojson":
        features = []
        for observation, rows in observations:
            lonlat = None
            if observation.projection:
                def lonlat(x, y, projection=observation.projection):
                    lat, lon = geo.pixel_to_latlon(projection, x, y)
                    return lon, lat
            features += formats.to_geojson(rows, lonlat=lonlat)["features"]
        return json.dumps({"type": "FeatureCollection", "features": features}, indent=1)
    if export_format == "voc":
        if len(observations) != 1:
            raise BoxError("a Pascal VOC file describes one image: name the observation")
        observation, rows = observations[0]
        return formats.write_voc(_boxes(rows), filename=observation.name,
                                 width=observation.width, height=observation.height)
    return json.dumps(formats.write_coco([(observation.name, observation.width, observation.height,
                                           _boxes(rows)) for observation, rows in observations]))


def observation_download(user, observation_id: int, export_format: str,
                         min_votes: int | None = None) -> Download:
    """An observation's landmarks as a download."""
    if export_format not in FORMATS:
        raise BoxError(f"format must be one of {', '.join(FORMATS)}", 404)
    observation = access.observation_of(user, observation_id)
    text = write(export_format, [(observation, with_latlon(observation, landmark_rows(
        observation, min_votes)))])
    return Download(text, MIMETYPES[export_format],
                    attachment(observation.name, f"-landmarks{SUFFIXES[export_format]}",
                               f"observation-{observation.id}"))


def project_export(project: Project, export_format: str, min_votes: int | None = None,
                   observation_name: str | None = None) -> str:
    """A project's landmarks (every observation, or the one named) as export text."""
    query = select(Observation).where(Observation.project_id == project.id)
    if observation_name is not None:
        query = query.where(Observation.name == observation_name)
    observations = db.session.scalars(query.order_by(Observation.name)).all()
    if observation_name is not None and not observations:
        raise BoxError(f"project {project.name!r} has no observation {observation_name!r}", 404)
    return write(export_format, [(observation, with_latlon(observation, landmark_rows(
        observation, min_votes))) for observation in observations])
