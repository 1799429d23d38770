"""Gold images: images an admin gave a known answer. The picker mixes them into each
labeler's stream at the project's gold_share, unannounced (labeling/picking.py); their
answers are known truth for the consensus (consensus.known_class_ids) and give each labeler
a gold accuracy (agreement.py). Only admins read or write them: no labeler's request ever
carries a gold answer.

An answer comes from the API (one image, or a CSV of filename,gold), or from the review page
("make gold": the class a reviewer settled). Each function commits its own write.
"""
from __future__ import annotations

import csv
import io

from sqlalchemy import select, update

from ..extensions import db
from ..models import Image, Project
from . import consensus_jobs
from .queue import ReviewError

# Rows one CSV may mark.
CSV_ROW_LIMIT = 100_000


def set_gold(project: Project, image_id: int, class_name) -> dict:
    """Make an image of the project gold with the answer class_name (None: no longer gold)."""
    image = db.session.get(Image, image_id)
    if image is None or image.project_id != project.id:
        raise ReviewError(f"no image {image_id} in this project", 404)
    image.gold_class_id = None if class_name is None else _class_id(project, class_name)
    image.labels_wanted = None  # a gold image takes one label from every labeler
    db.session.commit()
    _after_change(project)
    return gold_payload(project, image)


def import_gold_csv(project: Project, text: str) -> dict:
    """Mark gold images from CSV text with columns filename (the image's original name) and
    gold (the answer; empty: no longer gold). Refuses the whole file on any unknown name or
    class, so that nothing is half-marked."""
    if "\x00" in text:
        raise ReviewError("send CSV text (this has a NUL character)", 400)
    try:
        rows = list(csv.DictReader(io.StringIO(text)))
    except csv.Error as error:
        raise ReviewError(f"not CSV: {error}", 400) from None
    if not rows or not {"filename", "gold"} <= set(rows[0]):
        raise ReviewError("send CSV with the columns filename and gold", 400)
    if len(rows) > CSV_ROW_LIMIT:
        raise ReviewError(f"at most {CSV_ROW_LIMIT} rows per file", 400)
    names = [str(row.get("filename") or "") for row in rows]
    ids = dict(db.session.execute(select(Image.original_name, Image.id).where(
        Image.project_id == project.id, Image.original_name.in_(set(names)))).all())
    answers = {}
    for number, (name, row) in enumerate(zip(names, rows, strict=True), start=2):
        if name not in ids:
            raise ReviewError(f"line {number}: no image named {name[:80]!r}", 400)
        answer = str(row.get("gold") or "").strip()
        answers[ids[name]] = _class_id(project, answer) if answer else None
    for image_id, class_id in answers.items():
        db.session.execute(update(Image).where(Image.id == image_id).values(
            gold_class_id=class_id, labels_wanted=None))
    db.session.commit()
    _after_change(project)
    marked = sum(class_id is not None for class_id in answers.values())
    return {"marked": marked, "unmarked": len(answers) - marked}


def gold_list(project: Project) -> list[dict]:
    """The project's gold images with their answers (for admins)."""
    images = db.session.scalars(select(Image).where(
        Image.project_id == project.id, Image.gold_class_id.is_not(None)).order_by(Image.id)).all()
    listed = [gold_payload(project, image) for image in images]
    db.session.commit()  # end the read
    return listed


def gold_payload(project: Project, image: Image) -> dict:
    """An image's gold state as JSON-ready values."""
    names = {label_class.id: label_class.name for label_class in project.classes}
    return {"image_id": image.id, "filename": image.original_name,
            "gold": names.get(image.gold_class_id)}


def _class_id(project: Project, name) -> int:
    """The id of the project's class with this name; 400 otherwise."""
    for label_class in project.classes:
        if label_class.name == name:
            return label_class.id
    raise ReviewError(f"a gold answer must be one of the project's classes: "
                      f"{', '.join(project.class_names)}", 400)


def _after_change(project: Project) -> None:
    """Known truth changed: the stored consensus is stale where the job keeps it."""
    if consensus_jobs.needs_consensus_job(project):
        consensus_jobs.request_consensus(project.id)
