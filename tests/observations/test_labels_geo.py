"""PDS labels -> projection, and pixel -> latitude/longitude, checked against the labels' own
bounds: the browse image's corners and centre land where the label says the product lies."""
import math

import pytest

from supervising_ui.observations.geo import pixel_to_latlon
from supervising_ui.observations.labels import LabelRejected, read_label

from .helpers import (
    ATLAS_LABEL,
    BROWSE_SIZE,
    PDS3_LABEL,
    PDS4_TEMPLATE,
    require_hirise_observation,
)

# One product pixel (0.25 m) is about 4.2e-6 degrees of latitude; the bounds are stated to
# ~1e-9 deg, the pixel-edge convention agrees with them to about a third of a product pixel.
TOLERANCE_DEG = 1e-5


def corners(projection, width, height):
    """Latitude and longitude of the image's four edges and of its centre."""
    north, west = pixel_to_latlon(projection, 0, 0)
    south, east = pixel_to_latlon(projection, width, height)
    centre = pixel_to_latlon(projection, width / 2, height / 2)
    return {"north": north, "south": south, "west": west, "east": east}, centre


def check_against_bounds(info, width, height, tolerance=TOLERANCE_DEG):
    """The image's edges equal the label's bounds; its centre is their midpoint."""
    bounds = info.projection["bounds"]
    edges, (centre_lat, centre_lon) = corners(info.projection, width, height)
    for side in ("north", "south", "west", "east"):
        assert edges[side] == pytest.approx(bounds[side], abs=tolerance), side
    assert centre_lat == pytest.approx((bounds["north"] + bounds["south"]) / 2, abs=tolerance)
    assert centre_lon == pytest.approx((bounds["west"] + bounds["east"]) / 2, abs=tolerance)


def test_pds3_label_of_the_browse_image():
    require_hirise_observation()
    info = read_label(PDS3_LABEL, *BROWSE_SIZE)
    assert info.kind == "pds3"
    # 0.25 m/pixel in the product, reduced by 23846/2048 and 34927/2999 in the browse.
    assert info.meters_per_pixel == pytest.approx(0.25 * (23846 / 2048 + 34927 / 2999) / 2)
    assert info.projection["product_per_pixel_x"] == pytest.approx(23846 / 2048)
    check_against_bounds(info, *BROWSE_SIZE)


def test_the_same_label_read_for_the_full_product_agrees():
    require_hirise_observation()
    info = read_label(PDS3_LABEL, 23846, 34927)
    assert info.meters_per_pixel == pytest.approx(0.25)
    check_against_bounds(info, 23846, 34927)
    # The browse pixel (x, y) is the product pixel (x * 23846/2048, y * 34927/2999).
    browse = read_label(PDS3_LABEL, *BROWSE_SIZE)
    assert pixel_to_latlon(browse.projection, 1000, 2000) == pytest.approx(
        pixel_to_latlon(info.projection, 1000 * 23846 / 2048, 2000 * 34927 / 2999))


def test_atlas_json_record_gives_the_same_places():
    require_hirise_observation()
    info = read_label(ATLAS_LABEL, *BROWSE_SIZE)
    assert info.kind == "atlas"
    # The record rounds its bounds (longitudes to 1e-3 degrees) and its sample offset.
    check_against_bounds(info, *BROWSE_SIZE, tolerance=1e-3)
    pds3 = read_label(PDS3_LABEL, *BROWSE_SIZE)
    assert pixel_to_latlon(info.projection, 700, 900) == pytest.approx(
        pixel_to_latlon(pds3.projection, 700, 900), abs=1e-5)


def test_pds4_label_read_with_pds4_tools_without_its_data_file(tmp_path):
    label = tmp_path / "ESP_072719_1970_RED.xml"
    label.write_text(PDS4_TEMPLATE)
    info = read_label(label, *BROWSE_SIZE)
    assert info.kind == "pds4"
    assert info.projection["product_samples"] == 23846
    assert info.projection["radius_m"] == pytest.approx(3394839.8133163)
    check_against_bounds(info, *BROWSE_SIZE)


def test_polar_stereographic_pole_and_scale():
    projection = {"type": "polar_stereographic", "map_scale": 1.0, "radius_m": 3396190.0,
                  "line_offset": 500.0, "sample_offset": 500.0, "center_latitude": 90.0,
                  "center_longitude": 0.0, "product_per_pixel_x": 1.0,
                  "product_per_pixel_y": 1.0}
    assert pixel_to_latlon(projection, 500, 500)[0] == pytest.approx(90.0)
    latitude, longitude = pixel_to_latlon(projection, 500, 500 + 1000)  # 1 km "down": lon 0
    assert longitude == pytest.approx(0.0) or longitude == pytest.approx(360.0)
    assert 90 - latitude == pytest.approx(math.degrees(1000 / 3396190.0), rel=1e-4)


@pytest.mark.parametrize("text, reason", [
    ("PDS_VERSION_ID = PDS3\nOBJECT = IMAGE\nLINES = 3\nEND_OBJECT = IMAGE\nEND\n",
     "no IMAGE_MAP_PROJECTION"),
    ("PDS_VERSION_ID = PDS3\nOBJECT = = oops\n", "not a PDS3 label"),
    ("{\"MAP_SCALE\": 0.25}", "lacks a map projection keyword"),
    ("<Product_Observational><broken>", "not a PDS4 label"),
])
def test_bad_labels_are_refused_with_the_reason(tmp_path, text, reason):
    label = tmp_path / "bad.lbl"
    label.write_text(text)
    with pytest.raises(LabelRejected, match=reason):
        read_label(label, 100, 100)


def test_a_label_of_another_product_is_refused(tmp_path):
    require_hirise_observation()
    text = PDS3_LABEL.read_text(encoding="latin-1").replace(
        "LINE_PROJECTION_OFFSET       = 4052889.5", "LINE_PROJECTION_OFFSET       = 5052889.5")
    label = tmp_path / "other.LBL"
    label.write_text(text, encoding="latin-1")
    with pytest.raises(LabelRejected, match="outside its own"):
        read_label(label, *BROWSE_SIZE)
