"""Pascal VOC, COCO, CSV and GeoJSON: round trips, readable errors, the tools' own checks."""

import json
from pathlib import Path

import pytest

from supervising_ui.landmarks import formats
from supervising_ui.landmarks.geometry import Box
from supervising_ui.landmarks.merge import merge_boxes

CTX = Path(__file__).resolve().parents[3] / "shared" / "data" / "observations" / "ctx-craters"

BOXES = [Box(10, 20, 30, 44, label="crater", annotator="ann"),
         Box(100.5, 7, 120, 19.25, label="dune", annotator="ann", score=0.75)]


def _corners(boxes):
    return [(b.x_min, b.y_min, b.x_max, b.y_max, b.label) for b in boxes]


def test_voc_round_trip():
    text = formats.write_voc(BOXES, filename="tile.png", width=200, height=100)
    again = formats.read_voc(text.encode(), annotator="ann")
    assert _corners(again) == _corners(BOXES)
    assert again[1].score == 0.75 and again[0].annotator == "ann"


@pytest.mark.parametrize("text, message", [
    ("<annotation><object>", "not well-formed XML"),
    ("<root/>", "not a Pascal VOC annotation"),
    ("<annotation><object><name>c</name></object></annotation>", "object 1 has no <bndbox>"),
    ("<annotation><object><bndbox><xmin>a</xmin><ymin>1</ymin><xmax>2</xmax><ymax>3</ymax>"
     "</bndbox></object></annotation>", "object 1 <xmin> is not a number"),
    ("<annotation><object><bndbox><xmin>5</xmin><ymin>1</ymin><xmax>2</xmax><ymax>3</ymax>"
     "</bndbox></object></annotation>", "x_max must be greater"),
    ('<?xml version="1.0"?><!DOCTYPE a [<!ENTITY e "x">]><annotation>&e;</annotation>',
     "forbidden construct"),
])
def test_voc_errors_say_what_is_wrong(text, message):
    with pytest.raises(ValueError, match=message):
        formats.read_voc(text)


def test_csv_round_trip_and_errors():
    text = formats.write_csv(BOXES)
    assert text.splitlines()[0] == "x_min,y_min,x_max,y_max,label,annotator,score"
    again = formats.read_csv(text)
    assert _corners(again) == _corners(BOXES) and again[1].score == 0.75
    assert formats.read_csv("x_min,y_min,x_max,y_max,label\n1,2,3,4,crater\n",
                            annotator="bob")[0].annotator == "bob"
    with pytest.raises(ValueError, match="lacks y_max"):
        formats.read_csv("x_min,y_min,x_max,label\n1,2,3,crater\n")
    with pytest.raises(ValueError, match="line 3 x_max is not a number"):
        formats.read_csv("x_min,y_min,x_max,y_max,label\n1,2,3,4,c\n1,2,x,4,c\n")


def test_coco_round_trip_loads_with_pycocotools(tmp_path):
    coco_module = pytest.importorskip("pycocotools.coco")
    document = formats.write_coco(BOXES, file_name="tile.png", width=200, height=100)
    path = tmp_path / "boxes.json"
    path.write_text(json.dumps(document))
    coco = coco_module.COCO(str(path))
    assert len(coco.getAnnIds()) == 2
    assert {c["name"] for c in coco.loadCats(coco.getCatIds())} == {"crater", "dune"}
    first = coco.loadAnns(coco.getAnnIds())[0]
    assert first["bbox"] == [10, 20, 20, 24] and first["area"] == 480 and first["iscrowd"] == 0
    again = formats.read_coco(path.read_bytes())
    assert _corners(again) == _corners(BOXES)


def test_coco_many_images_and_picking_one(tmp_path):
    coco_module = pytest.importorskip("pycocotools.coco")
    document = formats.write_coco([("a.png", 50, 50, BOXES[:1]), ("b.png", 60, 60, BOXES)])
    path = tmp_path / "many.json"
    path.write_text(json.dumps(document))
    coco = coco_module.COCO(str(path))
    assert len(coco.getImgIds()) == 2 and len(coco.getAnnIds(imgIds=[2])) == 2
    text = path.read_text()
    assert len(formats.read_coco(text, file_name="some/dir/b.png")) == 2
    assert len(formats.read_coco(text, image_name="a")) == 1
    with pytest.raises(ValueError, match="lists 2 images: name the one"):
        formats.read_coco(text)
    with pytest.raises(ValueError, match="not JSON"):
        formats.read_coco("{")


def _validate_geojson(document):
    geojson = pytest.importorskip("geojson")
    parsed = geojson.loads(json.dumps(document))
    assert parsed.is_valid, parsed.errors()
    return parsed


def test_geojson_in_pixels_and_in_degrees():
    marks = merge_boxes([Box(10, 10, 30, 30, annotator=name) for name in "abc"], min_votes=1)
    pixel = formats.to_geojson(marks)
    _validate_geojson(pixel)
    feature = pixel["features"][0]
    assert feature["properties"]["votes"] == 3 and feature["properties"]["class"] == "crater"
    assert feature["properties"]["pixel_box"] == [10, 10, 30, 30]
    assert "pixels" in feature["properties"]["coordinates"]

    def lonlat(x, y):
        return 77.0 + x * 1e-4, 17.0 - y * 1e-4

    rows = [{"x_min": 10, "y_min": 10, "x_max": 30, "y_max": 30, "class": "crater",
             "confidence": 0.9, "votes": 2, "id": 7}]
    degrees = formats.to_geojson(rows, lonlat=lonlat)
    _validate_geojson(degrees)
    feature = degrees["features"][0]
    ring = feature["geometry"]["coordinates"][0]
    assert ring[0] == ring[-1] and len(ring) == 5
    area = sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in zip(ring[:-1], ring[1:], strict=True))
    assert area > 0  # counter-clockwise exterior ring (RFC 7946, right-hand rule)
    assert feature["properties"]["longitude"] == pytest.approx(77.002)
    assert feature["properties"]["latitude"] == pytest.approx(16.998)
    assert feature["properties"]["confidence"] == 0.9 and feature["properties"]["id"] == 7


@pytest.mark.skipif(not CTX.is_dir(), reason="needs ../shared/data/observations/ctx-craters")
def test_reads_every_real_ctx_annotation():
    for path in sorted((CTX / "annotations").glob("*/**/*.xml")):
        boxes = formats.read_voc(path.read_bytes(), annotator=path.stem)
        assert boxes, path.name
        assert all(box.is_valid() and box.x_max <= 2000 for box in boxes)
