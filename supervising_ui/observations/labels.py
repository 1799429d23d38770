"""PDS labels -> the projection of an observation's image (no Flask, no database).

Three kinds of label are read:

- PDS3 ``.LBL`` with ``pvl``: the ``IMAGE_MAP_PROJECTION`` object (MAP_SCALE, the
  projection offsets, CENTER_LATITUDE/LONGITUDE, the radius, the bounds) and the product's
  ``IMAGE`` object (LINES, LINE_SAMPLES);
- PDS4 ``.xml`` with ``pds4_tools``: only the label is read (``Label.from_file``), never its
  data file, which is usually absent beside a browse image: the ``cart:`` class (map
  projection, pixel resolution, upper-left corner, the geodetic model's radius, bounding
  coordinates) and the ``Array_2D_Image`` axes;
- the PDS Image Atlas' JSON record of a product (what ``../shared/data/observations/hirise/
  ESP_072719_1970_RED.xml`` holds, despite its name: the PDS3 keywords as JSON), read with
  ``json``; its radius is MAP_RESOLUTION x MAP_SCALE x 180 / pi, which it states.

The label describes the full-resolution product; the stored image may be that product
reduced (a browse image): the factors product_per_pixel_x/y (product size / image size) map
one onto the other, as the shared data's README says.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from .geo import EQUIRECTANGULAR, POLAR_STEREOGRAPHIC, meters_per_pixel, pixel_to_latlon

# A label larger than this is not a label.
MAX_LABEL_BYTES = 4 * 1024 * 1024


class LabelRejected(ValueError):
    """A label this tool cannot use, with the reason in words."""


@dataclass(frozen=True)
class LabelInfo:
    """What a label says about the stored image: its kind, projection and ground scale."""

    kind: str  # "pds3", "pds4" or "atlas"
    projection: dict
    meters_per_pixel: float


def read_label(path: str | Path, image_width: int, image_height: int) -> LabelInfo:
    """Read a PDS3, PDS4 or PDS Image Atlas label; raise LabelRejected saying why it won't do."""
    path = Path(path)
    try:
        head = path.read_bytes()[:MAX_LABEL_BYTES + 1]
    except OSError as error:
        raise LabelRejected(f"cannot read the label ({error.strerror or error})") from error
    if len(head) > MAX_LABEL_BYTES:
        raise LabelRejected("the label is over 4 MiB: not a PDS label")
    start = head.lstrip()[:64]
    try:
        if start.startswith(b"{"):
            kind, fields = "atlas", _atlas_fields(head)
        elif start.startswith(b"<"):
            kind, fields = "pds4", _pds4_fields(path)
        else:
            kind, fields = "pds3", _pds3_fields(head)
    except LabelRejected:
        raise
    except (KeyError, TypeError, ValueError) as error:
        raise LabelRejected(f"the label lacks a map projection keyword ({error})") from error
    projection = _projection(fields, image_width, image_height)
    return LabelInfo(kind, projection, meters_per_pixel(projection))


def _pds3_fields(data: bytes) -> dict:
    """The projection keywords of a PDS3 label (pvl)."""
    import pvl
    try:
        label = pvl.loads(data.decode("latin-1"))
    except Exception as error:  # pvl raises its own errors, and ValueErrors, on bad syntax
        raise LabelRejected(f"not a PDS3 label: {str(error).splitlines()[0][:200]}") from error
    projection = _find_object(label, "IMAGE_MAP_PROJECTION")
    if projection is None:
        raise LabelRejected("the PDS3 label has no IMAGE_MAP_PROJECTION object")
    image = _find_object(label, "IMAGE") or {}
    value = _pvl_number
    return {
        "type": str(projection["MAP_PROJECTION_TYPE"]),
        "map_scale": value(projection["MAP_SCALE"]),
        "line_offset": value(projection["LINE_PROJECTION_OFFSET"]),
        "sample_offset": value(projection["SAMPLE_PROJECTION_OFFSET"]),
        "center_latitude": value(projection["CENTER_LATITUDE"]),
        "center_longitude": value(projection["CENTER_LONGITUDE"]),
        "radius_m": value(projection["A_AXIS_RADIUS"]) * 1000.0,  # PDS3 states kilometres
        "lines": value(image["LINES"]) if "LINES" in image else None,
        "samples": value(image["LINE_SAMPLES"]) if "LINE_SAMPLES" in image else None,
        "bounds": _bounds(projection, value),
    }


def _find_object(label, name: str):
    """Return the first PVL object or group called name, at any depth (None: none)."""
    for key, item in label.items():
        if key == name and hasattr(item, "items"):
            return item
        if hasattr(item, "items"):
            found = _find_object(item, name)
            if found is not None:
                return found
    return None


def _pvl_number(item) -> float:
    """A PVL value as a float, units dropped."""
    return float(getattr(item, "value", item))


def _bounds(fields, value) -> dict | None:
    """The label's latitude and longitude bounds (None where it states none)."""
    names = ("MINIMUM_LATITUDE", "MAXIMUM_LATITUDE", "WESTERNMOST_LONGITUDE",
             "EASTERNMOST_LONGITUDE")
    if not all(name in fields for name in names):
        names = names[:2] + ("MINIMUM_LONGITUDE", "MAXIMUM_LONGITUDE")
        if not all(name in fields for name in names):
            return None
    south, north, west, east = (value(fields[name]) for name in names)
    return {"south": south, "north": north, "west": west, "east": east}


def _atlas_fields(data: bytes) -> dict:
    """The projection keywords of a PDS Image Atlas JSON record (PDS3 names, no radius)."""
    try:
        record = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise LabelRejected(f"not a JSON label ({error})") from error
    if not isinstance(record, dict):
        raise LabelRejected("not a PDS Image Atlas record (a JSON object)")
    scale = float(record["MAP_SCALE"])
    return {
        "type": str(record["MAP_PROJECTION_TYPE"]),
        "map_scale": scale,
        "line_offset": float(record["LINE_PROJECTION_OFFSET"]),
        "sample_offset": float(record["SAMPLE_PROJECTION_OFFSET"]),
        "center_latitude": float(record["PROJECTION_CENTER_LATITUDE"]),
        "center_longitude": float(record["PROJECTION_CENTER_LONGITUDE"]),
        "radius_m": float(record["MAP_RESOLUTION"]) * scale * 180.0 / math.pi,
        "lines": float(record["LINES"]) if "LINES" in record else None,
        "samples": float(record["SAMPLES"]) if "SAMPLES" in record else None,
        "bounds": _bounds(record, float),
    }


def _pds4_fields(path: Path) -> dict:
    """The projection of a PDS4 label's cart: class (pds4_tools reads the label only)."""
    from pds4_tools.reader.label_objects import Label
    try:
        label = Label.from_file(str(path))
    except Exception as error:  # pds4_tools raises plain Exceptions on bad XML
        raise LabelRejected(f"not a PDS4 label: {str(error)[:200]}") from error

    def text(name: str) -> str:
        found = label.find(f".//cart:{name}")
        if found is None or found.text is None:
            raise LabelRejected(f"the PDS4 label has no cart:{name}")
        return found.text.strip()

    def number(name: str, meters: bool = False) -> float:
        found = label.find(f".//cart:{name}")
        value = float(text(name))
        unit = (found.get("unit") or "").lower() if found is not None else ""
        return value * 1000.0 if meters and unit == "km" else value

    projection_name = text("map_projection_name")
    parameters = "Equirectangular" if "equirect" in projection_name.lower() \
        else "Polar_Stereographic"
    centre = label.find(f".//cart:{parameters}")
    if centre is None:
        raise LabelRejected(f"the PDS4 label has no cart:{parameters} parameters")
    scale = number("pixel_resolution_x")
    fields = {
        "type": projection_name,
        "map_scale": scale,
        "line_offset": number("upperleft_corner_y") / scale,
        "sample_offset": -number("upperleft_corner_x") / scale,
        "center_latitude": float(centre.findtext("cart:standard_parallel_1")
                                 or centre.findtext("cart:latitude_of_projection_origin")),
        "center_longitude": float(centre.findtext("cart:longitude_of_central_meridian")),
        "radius_m": number("a_axis_radius", meters=True),
        "bounds": None,
    }
    fields.update(_pds4_axes(label))
    try:
        fields["bounds"] = {"south": number("south_bounding_coordinate"),
                            "north": number("north_bounding_coordinate"),
                            "west": number("west_bounding_coordinate"),
                            "east": number("east_bounding_coordinate")}
    except LabelRejected:
        pass
    return fields


def _pds4_axes(label) -> dict:
    """The product's lines and samples from its Array_2D_Image axes (None where absent)."""
    sizes = {}
    for axis in label.findall(".//Axis_Array"):
        name = (axis.findtext("axis_name") or "").strip().lower()
        if name in ("line", "sample") and axis.findtext("elements"):
            sizes[name + "s"] = float(axis.findtext("elements"))
    return {"lines": sizes.get("lines"), "samples": sizes.get("samples")}


def _projection(fields: dict, image_width: int, image_height: int) -> dict:
    """The stored projection dict (geo.py) from a label's fields and the image's size."""
    kind = fields["type"].strip().lower().replace(" ", "_").replace("-", "_")
    if kind not in (EQUIRECTANGULAR, POLAR_STEREOGRAPHIC):
        raise LabelRejected(f"map projection {fields['type']!r} is not supported (equirectangular "
                            "and polar stereographic are)")
    if not fields["map_scale"] > 0 or not fields["radius_m"] > 0:
        raise LabelRejected("the label's map scale and radius must be positive")
    samples = fields.get("samples") or image_width
    lines = fields.get("lines") or image_height
    projection = {
        "type": kind, "map_scale": fields["map_scale"], "radius_m": fields["radius_m"],
        "line_offset": fields["line_offset"], "sample_offset": fields["sample_offset"],
        "center_latitude": fields["center_latitude"],
        "center_longitude": fields["center_longitude"],
        "product_samples": samples, "product_lines": lines,
        "product_per_pixel_x": samples / image_width, "product_per_pixel_y": lines / image_height,
        "bounds": fields.get("bounds"),
    }
    _check_against_bounds(projection, image_width, image_height)
    return projection


def _check_against_bounds(projection: dict, width: int, height: int) -> None:
    """Refuse a label whose corners land far outside its own stated bounds (another product's)."""
    bounds = projection["bounds"]
    if not bounds or projection["type"] != EQUIRECTANGULAR:
        return
    north, west = pixel_to_latlon(projection, 0, 0)
    south, east = pixel_to_latlon(projection, width, height)
    span = max(bounds["north"] - bounds["south"], abs(bounds["east"] - bounds["west"]), 1e-6)
    error = max(abs(north - bounds["north"]), abs(south - bounds["south"]),
                abs(west - bounds["west"]), abs(east - bounds["east"]))
    if error > 0.05 * span:
        raise LabelRejected("the label's projection puts the image's corners outside its own "
                            "latitude and longitude bounds: is it this image's label?")
