"""What a search shows of its images: API items, CSV rows and the detail of one image."""
from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import select

from ..downloads import csv_line
from ..extensions import db
from ..ml.uncertainty import top_classes
from ..models import Image, Label, LabelClass, ModelVersion, Prediction, SearchImage, User
from ..timestamps import iso_utc

# Columns of the CSV download; those the export has too carry its names.
CSV_COLUMNS = ["image_id", "filename", "label", "predicted", "confidence", "class",
               "class_confidence", "model_version"]
ROWS_PER_READ = 1000

_search = SearchImage.__table__
_ITEM_COLUMNS = (_search.c.image_id, _search.c.filename, _search.c.label_class_id,
                 _search.c.predicted_class_id, _search.c.confidence, _search.c.class_id,
                 _search.c.class_confidence, ModelVersion.version, Image.meta)


def image_rows(image_ids: list[int]) -> list:
    """Return the search rows (with version number and metadata) of these images, in order."""
    rows = {}
    for start in range(0, len(image_ids), ROWS_PER_READ):
        chunk = image_ids[start:start + ROWS_PER_READ]
        for row in db.session.execute(
                select(*_ITEM_COLUMNS).join(Image, Image.id == _search.c.image_id)
                .outerjoin(ModelVersion, ModelVersion.id == _search.c.model_version_id)
                .where(_search.c.image_id.in_(chunk))):
            rows[row.image_id] = row
    return [rows[image_id] for image_id in image_ids if image_id in rows]


def items(image_ids: list[int], class_names: dict[int, str]) -> list[dict]:
    """Return the API items of these images, in order."""
    return [{"image_id": row.image_id, "filename": row.filename,
             "thumbnail_url": f"/api/images/{row.image_id}/thumbnail",
             "image_url": f"/api/images/{row.image_id}/file",
             "label": class_names.get(row.label_class_id),
             "predicted": class_names.get(row.predicted_class_id),
             "confidence": row.confidence, "class": class_names.get(row.class_id),
             "class_confidence": row.class_confidence, "model_version": row.version,
             "metadata": row.meta or {}}
            for row in image_rows(image_ids)]


def csv_lines(image_ids: list[int], class_names: dict[int, str],
              meta_keys: list[str]) -> Iterator[str]:
    """Yield the CSV of these images (header first), reading ROWS_PER_READ rows at a time."""
    header = CSV_COLUMNS + [f"meta_{key}" if key in CSV_COLUMNS else key for key in meta_keys]
    yield csv_line(header)
    for start in range(0, len(image_ids), ROWS_PER_READ):
        for row in image_rows(image_ids[start:start + ROWS_PER_READ]):
            meta = row.meta or {}
            yield csv_line([row.image_id, row.filename, class_names.get(row.label_class_id),
                             class_names.get(row.predicted_class_id), row.confidence,
                             class_names.get(row.class_id), row.class_confidence, row.version,
                             *[meta.get(key) for key in meta_keys]])


def image_detail(image: Image, class_names: dict[int, str]) -> dict:
    """Return what the detail view shows: metadata, every label, the model's top classes."""
    row = db.session.get(SearchImage, image.id)
    labels = db.session.execute(
        select(Label.created_at, User.username, LabelClass.name)
        .join(User, User.id == Label.user_id)
        .join(LabelClass, LabelClass.id == Label.label_class_id)
        .where(Label.image_id == image.id).order_by(Label.created_at, Label.id)).all()
    detail = {"image_id": image.id, "filename": image.original_name, "width": image.width,
              "height": image.height, "metadata": image.meta or {},
              "image_url": f"/api/images/{image.id}/file",
              "labels": [{"labeler": username, "label": name, "created_at": iso_utc(created_at)}
                         for created_at, username, name in labels],
              "label": None, "class": None, "class_confidence": None, "prediction": None}
    if row is None:
        return detail
    detail |= {"label": class_names.get(row.label_class_id),
               "class": class_names.get(row.class_id), "class_confidence": row.class_confidence}
    if row.model_version_id is not None:
        prediction = db.session.execute(
            select(Prediction.probabilities, Prediction.confidence, ModelVersion.version)
            .join(ModelVersion, ModelVersion.id == Prediction.model_version_id)
            .where(Prediction.model_version_id == row.model_version_id,
                   Prediction.image_id == image.id)).first()
        if prediction is not None:
            predicted = class_names.get(row.predicted_class_id)
            detail["prediction"] = {
                "label": predicted, "confidence": prediction.confidence,
                "model_version": prediction.version,
                "top": top_classes(prediction.probabilities, predicted, prediction.confidence)}
    return detail
