"""Boxes in and out: Pascal VOC XML, COCO JSON, CSV, and landmarks as GeoJSON.

Readers take text or bytes and return ``Box`` lists; whatever a user can get wrong raises a
``ValueError`` whose message says what and where. XML is parsed with defusedxml (no entity
expansion, no external references).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import defusedxml.ElementTree as SafeElementTree
from defusedxml import DefusedXmlException

from .geometry import Box

CSV_COLUMNS = ("x_min", "y_min", "x_max", "y_max", "label", "annotator", "score")
PIXEL_NOTE = ("coordinates are pixels of the observation (x right, y down), not longitude and "
              "latitude: its label gave no map projection")


def _text(source: str | bytes) -> str:
    if isinstance(source, bytes):
        try:
            return source.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            raise ValueError(f"the file is not UTF-8 text ({error.reason})") from None
    return source


def _number(value: Any, what: str) -> float:
    try:
        number = float(str(value).strip())
    except (TypeError, ValueError):
        raise ValueError(f"{what} is not a number: {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{what} is not a finite number: {value!r}")
    return number


def _checked_box(x_min, y_min, x_max, y_max, where: str, **fields) -> Box:
    box = Box(x_min, y_min, x_max, y_max, **fields)
    if not box.is_valid():
        raise ValueError(f"{where}: the box ({x_min:g}, {y_min:g}, {x_max:g}, {y_max:g}) has no "
                         "area; x_max must be greater than x_min and y_max than y_min")
    return box


# Pascal VOC ---------------------------------------------------------------------------------

def read_voc(source: str | bytes, *, annotator: str = "") -> list[Box]:
    """The boxes of a Pascal VOC annotation (``<object><name>``, ``<bndbox>``)."""
    try:
        root = SafeElementTree.fromstring(source)
    except ElementTree.ParseError as error:
        raise ValueError(f"the file is not well-formed XML ({error}); export it again as "
                         "Pascal VOC XML") from None
    except DefusedXmlException as error:
        raise ValueError(f"the XML uses a forbidden construct ({type(error).__name__}); "
                         "a Pascal VOC file needs no entities or DTD") from None
    if root.tag != "annotation":
        raise ValueError(f"the root element is <{root.tag}>, not <annotation>: this is not "
                         "a Pascal VOC annotation")
    boxes = []
    for index, element in enumerate(root.iter("object"), start=1):
        where = f"object {index}"
        bndbox = element.find("bndbox")
        if bndbox is None:
            raise ValueError(f"{where} has no <bndbox>")
        corners = []
        for tag in ("xmin", "ymin", "xmax", "ymax"):
            child = bndbox.find(tag)
            if child is None:
                raise ValueError(f"{where}: <bndbox> has no <{tag}>")
            corners.append(_number(child.text, f"{where} <{tag}>"))
        label = (element.findtext("name") or "").strip()
        score_text = element.findtext("score") or element.findtext("confidence")
        score = _number(score_text, f"{where} <score>") if score_text else None
        boxes.append(_checked_box(*corners, where, label=label or "crater",
                                  annotator=annotator, score=score))
    return boxes


def write_voc(boxes: Iterable[Box], *, filename: str, width: int, height: int,
              depth: int = 1) -> str:
    """A Pascal VOC annotation of the boxes on one image, as XML text."""
    root = ElementTree.Element("annotation")
    ElementTree.SubElement(root, "filename").text = filename
    size = ElementTree.SubElement(root, "size")
    for tag, value in (("width", width), ("height", height), ("depth", depth)):
        ElementTree.SubElement(size, tag).text = str(int(value))
    ElementTree.SubElement(root, "segmented").text = "0"
    for box in boxes:
        element = ElementTree.SubElement(root, "object")
        ElementTree.SubElement(element, "name").text = box.label
        ElementTree.SubElement(element, "pose").text = "Unspecified"
        ElementTree.SubElement(element, "truncated").text = "0"
        ElementTree.SubElement(element, "difficult").text = "0"
        if box.score is not None:
            ElementTree.SubElement(element, "score").text = f"{box.score:g}"
        bndbox = ElementTree.SubElement(element, "bndbox")
        for tag, value in (("xmin", box.x_min), ("ymin", box.y_min), ("xmax", box.x_max),
                           ("ymax", box.y_max)):
            ElementTree.SubElement(bndbox, tag).text = f"{value:g}"
    ElementTree.indent(root)
    return ElementTree.tostring(root, encoding="unicode") + "\n"


# COCO ---------------------------------------------------------------------------------------

def _coco_image(document: Mapping, file_name: str | None) -> Mapping:
    images = document.get("images")
    if not isinstance(images, list) or not images:
        raise ValueError("the COCO file lists no images")
    if file_name is None:
        if len(images) == 1:
            return images[0]
        raise ValueError(f"the COCO file lists {len(images)} images: name the one to read")
    wanted = os.path.basename(file_name)
    found = [image for image in images
             if os.path.basename(str(image.get("file_name", ""))) == wanted]
    if not found:
        stem = os.path.splitext(wanted)[0]
        found = [image for image in images if os.path.splitext(
            os.path.basename(str(image.get("file_name", ""))))[0] == stem]
    if len(found) != 1:
        raise ValueError(f"the COCO file has {len(found)} images named {wanted!r}")
    return found[0]


def read_coco(source: str | bytes, *, file_name: str | None = None,
              annotator: str = "", image_name: str | None = None) -> list[Box]:
    """The boxes of one image of a COCO file: by file name (or image_name), or the only one."""
    file_name = file_name or image_name
    try:
        document = json.loads(_text(source))
    except json.JSONDecodeError as error:
        raise ValueError(f"the file is not JSON (line {error.lineno}: {error.msg})") from None
    if not isinstance(document, dict):
        raise ValueError("a COCO file is a JSON object with images, annotations, categories")
    image = _coco_image(document, file_name)
    names = {category.get("id"): str(category.get("name", "")).strip()
             for category in document.get("categories") or [] if isinstance(category, dict)}
    boxes = []
    for index, annotation in enumerate(document.get("annotations") or [], start=1):
        if not isinstance(annotation, dict) or annotation.get("image_id") != image.get("id"):
            continue
        where = f"annotation {annotation.get('id', index)}"
        bbox = annotation.get("bbox")
        if not isinstance(bbox, list) or len(bbox) != 4:
            raise ValueError(f"{where}: bbox must be [x, y, width, height]")
        x, y, width, height = (_number(value, f"{where} bbox") for value in bbox)
        label = names.get(annotation.get("category_id")) or "crater"
        score = annotation.get("score")
        boxes.append(_checked_box(x, y, x + width, y + height, where, label=label,
                                  annotator=annotator,
                                  score=None if score is None else _number(score, where)))
    return boxes


def write_coco(boxes_or_images: Iterable, *, file_name: str | None = None,
               width: int | None = None, height: int | None = None,
               categories: Iterable[str] | None = None) -> dict:
    """A COCO dataset (bbox [x, y, w, h], area, iscrowd 0) of one image's boxes or of many.

    Either ``write_coco(boxes, file_name=..., width=..., height=...)`` for one image, or
    ``write_coco([(file_name, width, height, boxes), ...])`` for several.
    """
    if file_name is None:
        images = [(str(name), int(w), int(h), list(found))
                  for name, w, h, found in boxes_or_images]
    else:
        images = [(file_name, int(width), int(height), list(boxes_or_images))]
    labels = sorted({box.label for *_, found in images for box in found})
    names = list(dict.fromkeys(list(categories or []) + labels))
    category_ids = {name: index for index, name in enumerate(names, start=1)}
    annotations = []
    for image_id, (_, _, _, found) in enumerate(images, start=1):
        for box in found:
            annotation = {"id": len(annotations) + 1, "image_id": image_id,
                          "category_id": category_ids[box.label],
                          "bbox": [box.x_min, box.y_min, box.width, box.height],
                          "area": box.width * box.height, "iscrowd": 0, "segmentation": []}
            if box.score is not None:
                annotation["score"] = box.score
            annotations.append(annotation)
    return {
        "info": {"description": "landmark boxes"},
        "licenses": [],
        "images": [{"id": image_id, "file_name": name, "width": w, "height": h}
                   for image_id, (name, w, h, _) in enumerate(images, start=1)],
        "categories": [{"id": category_ids[name], "name": name, "supercategory": "landmark"}
                       for name in names],
        "annotations": annotations,
    }


# CSV ----------------------------------------------------------------------------------------

def read_csv(source: str | bytes, *, annotator: str = "") -> list[Box]:
    """Boxes from CSV with a header x_min,y_min,x_max,y_max,label[,annotator][,score]."""
    reader = csv.DictReader(io.StringIO(_text(source)))
    header = [name.strip().lower() for name in reader.fieldnames or []]
    missing = [name for name in CSV_COLUMNS[:4] if name not in header]
    if missing:
        raise ValueError(f"the CSV header lacks {', '.join(missing)}; it needs "
                         "x_min,y_min,x_max,y_max,label[,annotator][,score]")
    reader.fieldnames = header
    boxes = []
    for row in reader:
        where = f"line {reader.line_num}"
        if not any((value or "").strip() for value in row.values() if isinstance(value, str)):
            continue
        corners = [_number(row.get(name), f"{where} {name}") for name in CSV_COLUMNS[:4]]
        score_text = (row.get("score") or "").strip()
        boxes.append(_checked_box(
            *corners, where, label=(row.get("label") or "").strip() or "crater",
            annotator=(row.get("annotator") or "").strip() or annotator,
            score=_number(score_text, f"{where} score") if score_text else None))
    return boxes


def write_csv(boxes: Iterable[Box]) -> str:
    """The boxes as CSV text with the header that ``read_csv`` reads."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for box in boxes:
        writer.writerow([f"{box.x_min:g}", f"{box.y_min:g}", f"{box.x_max:g}", f"{box.y_max:g}",
                         box.label, box.annotator, "" if box.score is None else f"{box.score:g}"])
    return out.getvalue()


# GeoJSON ------------------------------------------------------------------------------------

def _row_fields(row: Any) -> dict:
    """Box corners and properties of a Landmark, a Box or a mapping."""
    if hasattr(row, "box") and hasattr(row, "votes"):
        box = row.box
        return {"box": box, "class": box.label, "confidence": box.score, "votes": row.votes}
    if isinstance(row, Box):
        return {"box": row, "class": row.label, "confidence": row.score, "votes": None}
    if isinstance(row, Mapping):
        box = Box(*(_number(row.get(name), name) for name in CSV_COLUMNS[:4]))
        extra = {key: value for key, value in row.items()
                 if key not in CSV_COLUMNS[:4] and key not in ("label", "score")}
        return {**extra, "box": box, "class": row.get("class", row.get("label")),
                "confidence": row.get("confidence", row.get("score")),
                "votes": row.get("votes")}
    raise TypeError(f"cannot turn a {type(row).__name__} into a GeoJSON feature")


def _counter_clockwise(ring: list[list[float]]) -> list[list[float]]:
    doubled_area = sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in zip(ring[:-1], ring[1:], strict=True))
    return ring if doubled_area >= 0 else ring[::-1]


def to_geojson(landmarks_rows: Iterable[Any],
               lonlat: Callable[[float, float], tuple[float, float]] | None = None) -> dict:
    """Landmarks as a GeoJSON FeatureCollection of box polygons.

    Rows are Landmarks, Boxes or mappings with x_min, y_min, x_max, y_max and optional
    class (or label), confidence (or score), votes and any other properties. With
    ``lonlat``, a callable from pixel (x, y) to (longitude, latitude), polygons are in
    degrees and each feature also carries the centre's longitude and latitude; without
    it, they are in pixels and each feature's properties say so (``coordinates``).
    """
    features = []
    for row in landmarks_rows:
        fields = _row_fields(row)
        box = fields.pop("box")
        corners = [(box.x_min, box.y_min), (box.x_max, box.y_min), (box.x_max, box.y_max),
                   (box.x_min, box.y_max)]
        project = lonlat or (lambda x, y: (x, y))
        ring = [[float(v) for v in project(x, y)] for x, y in corners]
        ring = _counter_clockwise(ring + [ring[0]])
        properties = {**fields,
                      "pixel_box": [box.x_min, box.y_min, box.x_max, box.y_max]}
        if lonlat is None:
            properties["coordinates"] = PIXEL_NOTE
        else:
            longitude, latitude = lonlat(*box.center)
            properties.update(longitude=float(longitude), latitude=float(latitude))
        features.append({"type": "Feature", "properties": properties,
                         "geometry": {"type": "Polygon", "coordinates": [ring]}})
    return {"type": "FeatureCollection", "features": features}
