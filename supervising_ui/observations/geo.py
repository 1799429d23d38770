"""Pixel -> latitude/longitude for a map-projected observation (no Flask, no database).

A projection is the plain dict that labels.py reads from a PDS label and the observation row
stores (``Observation.projection``). Coordinates follow the PDS map-projection convention,
with x and y continuous pixel positions in the stored image (0 at the left and top edges of
the first pixel, so pixel (i, j) spans i..i+1 and its centre is i + 0.5):

- product pixel: ``(x * product_per_pixel_x, y * product_per_pixel_y)`` (a browse image is the
  product reduced; the full product has both factors 1);
- projected metres: ``X = (sample - sample_offset) * map_scale``,
  ``Y = (line_offset - line) * map_scale``;
- equirectangular (spherical, true at the centre latitude):
  ``lat = Y / R``, ``lon = centre_lon + X / (R cos(centre_lat))``;
- polar stereographic (spherical, the pole at the centre latitude +-90):
  ``rho = hypot(X, Y)``, ``lat = +-(90 - 2 atan(rho / 2R))``,
  ``lon = centre_lon + atan2(X, -Y)`` (north) or ``atan2(X, Y)`` (south).

Latitudes are planetocentric and longitudes positive east in 0..360, as HiRISE and CTX
products state them.
"""
from __future__ import annotations

import math

EQUIRECTANGULAR = "equirectangular"
POLAR_STEREOGRAPHIC = "polar_stereographic"
PROJECTION_TYPES = (EQUIRECTANGULAR, POLAR_STEREOGRAPHIC)


def meters_per_pixel(projection: dict) -> float:
    """Return the ground size of one stored pixel (the mean of its two sides), in metres."""
    scale = projection["map_scale"]
    return scale * (projection["product_per_pixel_x"] + projection["product_per_pixel_y"]) / 2


def projected_meters(projection: dict, x: float, y: float) -> tuple[float, float]:
    """Return the map-projected (X, Y) in metres of the stored image's pixel position (x, y)."""
    sample = x * projection["product_per_pixel_x"]
    line = y * projection["product_per_pixel_y"]
    scale = projection["map_scale"]
    return ((sample - projection["sample_offset"]) * scale,
            (projection["line_offset"] - line) * scale)


def pixel_to_latlon(projection: dict, x: float, y: float) -> tuple[float, float]:
    """Return (latitude, longitude) in degrees of the stored image's pixel position (x, y)."""
    east, north = projected_meters(projection, x, y)
    radius = projection["radius_m"]
    centre_lat = math.radians(projection["center_latitude"])
    if projection["type"] == EQUIRECTANGULAR:
        latitude = math.degrees(north / radius)
        longitude = projection["center_longitude"] + math.degrees(
            east / (radius * math.cos(centre_lat)))
    elif projection["type"] == POLAR_STEREOGRAPHIC:
        rho = math.hypot(east, north)
        colatitude = math.degrees(2 * math.atan(rho / (2 * radius)))
        if centre_lat > 0:
            latitude = 90 - colatitude
            longitude = projection["center_longitude"] + math.degrees(math.atan2(east, -north))
        else:
            latitude = colatitude - 90
            longitude = projection["center_longitude"] + math.degrees(math.atan2(east, north))
    else:
        raise ValueError(f"unknown projection type {projection['type']!r}")
    return latitude, longitude % 360.0


def box_latlon(projection: dict | None, x_min: float, y_min: float, x_max: float,
               y_max: float) -> tuple[float, float] | None:
    """Return (latitude, longitude) of a box's centre, or None without a projection."""
    if not projection:
        return None
    return pixel_to_latlon(projection, (x_min + x_max) / 2, (y_min + y_max) / 2)
