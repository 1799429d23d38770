"""The search index: one search_image row per image and its metadata values in search_meta.

How it stays current:
- new images (any ORM flush that adds Image rows, i.e. every import) are indexed by the
  session listener that create_app registers (init_app);
- a submitted or undone label calls refresh_images() in the labeling transaction;
- a model that starts serving calls refresh_project_predictions() (retraining.promote);
- ORM-added labels and predictions of the serving version are caught by the same listener;
- rebuild_project() rebuilds a project from the source tables, index_missing() fills in
  images that have no row yet (a database created before this index existed).

Every write raises the project's generation (search_state) in the same transaction, and the
rows it writes carry the new value. The generation row is locked from that raise to the
commit, so generations commit in order: a reader that sees generation G has every row up to
G, and catches up later by reading only the rows above it (snapshot.py).
"""
from __future__ import annotations

from collections import defaultdict

from flask import Flask
from sqlalchemy import bindparam, delete, event, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from ..consensus import majority
from ..extensions import db
from ..models import (
    Image,
    Label,
    ModelVersion,
    Prediction,
    SearchColumn,
    SearchImage,
    SearchMeta,
    SearchState,
    SearchValue,
)
from .values import KEY_LENGTH, value_number, value_text

STATUS_UNLABELED, STATUS_LABELED, STATUS_DISAGREE = 0, 1, 2
# Image ids per statement (IN lists) and rows per transaction of the project-wide walks.
CHUNK = 500
WALK_BATCH = 2000

_image = Image.__table__
_label = Label.__table__
_search = SearchImage.__table__
_state = SearchState.__table__
_column = SearchColumn.__table__
_value = SearchValue.__table__
_meta = SearchMeta.__table__

_RAISE_GENERATION = (update(_state).where(_state.c.project_id == bindparam("b_project_id"))
                     .values(generation=_state.c.generation + 1).returning(_state.c.generation))
_SET_ROW = update(_search).where(_search.c.image_id == bindparam("b_image_id"))
# PostgreSQL, one row (a submit): the raise and the row in one statement, so that the
# generation's lock is held for one round trip less. No state row: nothing is written.
_RAISED = _RAISE_GENERATION.cte("raised")
_RAISE_AND_SET_ROW = (_SET_ROW.where(select(_RAISED.c.generation).exists())
                      .values(generation=select(_RAISED.c.generation).scalar_subquery()))
_SERVING_MODEL = (select(ModelVersion.id).where(ModelVersion.project_id == bindparam("project_id"),
                                                ModelVersion.is_serving.is_(True))
                  .order_by(ModelVersion.version.desc()).limit(1))
# An image's search row with its votes: one row per (image, voted class).
_ROWS_AND_VOTES = (
    select(_search.c.image_id, _search.c.project_id, _search.c.label_class_id,
           _search.c.predicted_class_id, _search.c.confidence, _label.c.label_class_id,
           func.count(_label.c.id))
    .select_from(_search.outerjoin(_label, _label.c.image_id == _search.c.image_id))
    .where(_search.c.image_id.in_(bindparam("image_ids", expanding=True)))
    .group_by(_search.c.image_id, _search.c.project_id, _search.c.label_class_id,
              _search.c.predicted_class_id, _search.c.confidence, _label.c.label_class_id))


def init_app(app: Flask) -> None:
    """Keep the index current on every ORM flush (new images, labels, predictions)."""
    if not event.contains(Session, "after_flush", _index_flushed):
        event.listen(Session, "after_flush", _index_flushed)


def search_fields(label_class_id, predicted_class_id, confidence) -> dict:
    """Return the class, class confidence and status that a consensus label and a prediction give.

    A human label wins and counts as certain (1.0); without one the model's class and
    probability stand; with neither the image has no class.
    """
    if label_class_id is not None:
        agrees = predicted_class_id is None or predicted_class_id == label_class_id
        return {"class_id": label_class_id, "class_confidence": 1.0,
                "status": STATUS_LABELED if agrees else STATUS_DISAGREE}
    return {"class_id": predicted_class_id,
            "class_confidence": confidence if predicted_class_id is not None else None,
            "status": STATUS_UNLABELED}


def raise_generation(project_id: int, connection=None) -> int:
    """Raise the project's search generation by one and return it (locks it until commit)."""
    connection = connection or db.session.connection()
    generation = connection.execute(_RAISE_GENERATION, {"b_project_id": project_id}).scalar()
    if generation is None:
        connection.execute(_insert_ignoring(_state, connection),
                           [{"project_id": project_id, "generation": 0}])
        generation = connection.execute(_RAISE_GENERATION, {"b_project_id": project_id}).scalar()
    return generation


def refresh_images(image_ids, connection=None) -> int:
    """Recompute the consensus label of these images' search rows; return how many changed.

    The labeling code calls it in the transaction of a submit or an undo: one read, and
    two writes only when the consensus changed.
    """
    connection = connection or db.session.connection()
    changed = 0
    for chunk in _chunks(image_ids):
        rows: dict[int, dict] = {}
        for image_id, project_id, old_label, predicted, confidence, voted, count in \
                connection.execute(_ROWS_AND_VOTES, {"image_ids": chunk}):
            row = rows.setdefault(image_id, {"project_id": project_id, "old": old_label,
                                             "predicted": predicted, "confidence": confidence,
                                             "votes": {}})
            if voted is not None:
                row["votes"][voted] = count
        missing = [image_id for image_id in chunk if image_id not in rows]
        if missing:
            changed += index_images(missing, connection)
        updates = defaultdict(list)
        for image_id, row in rows.items():
            label = majority(row["votes"])
            if label != row["old"]:
                updates[row["project_id"]].append(
                    {"b_image_id": image_id, "label_class_id": label,
                     **search_fields(label, row["predicted"], row["confidence"])})
        changed += _write_updates(updates, connection)
    return changed


def index_images(image_ids, connection=None) -> int:
    """(Re)build the search rows and metadata values of these images from the source tables."""
    connection = connection or db.session.connection()
    indexed = 0
    for chunk in _chunks(image_ids):
        images = connection.execute(select(
            _image.c.id, _image.c.project_id, _image.c.original_name, _image.c.metadata)
            .where(_image.c.id.in_(chunk))).all()
        votes = _votes(chunk, connection)
        by_project = defaultdict(list)
        for image in images:
            by_project[image.project_id].append(image)
        for project_id, project_images in by_project.items():
            ids = [image.id for image in project_images]
            predictions = _serving_predictions(project_id, ids, connection)
            generation = raise_generation(project_id, connection)
            connection.execute(delete(_meta).where(_meta.c.image_id.in_(ids)))
            connection.execute(delete(_search).where(_search.c.image_id.in_(ids)))
            connection.execute(insert(_search), [
                _search_row(image, majority(votes.get(image.id, {})),
                            predictions.get(image.id), generation)
                for image in project_images])
            _insert_metadata(project_id, project_images, connection)
            indexed += len(ids)
    return indexed


def refresh_predictions(project_id: int, image_ids, connection=None) -> int:
    """Put the serving model's predictions of these images into their search rows."""
    connection = connection or db.session.connection()
    refreshed = 0
    for chunk in _chunks(image_ids):
        labels = dict(connection.execute(select(_search.c.image_id, _search.c.label_class_id)
                                         .where(_search.c.image_id.in_(chunk),
                                                _search.c.project_id == project_id)).all())
        predictions = _serving_predictions(project_id, list(labels), connection)
        updates = {project_id: [_prediction_update(image_id, label, predictions.get(image_id))
                                for image_id, label in labels.items()]}
        refreshed += _write_updates(updates, connection)
    return refreshed


def refresh_project_predictions(project_id: int) -> int:
    """Walk a project after its serving model changed, committing every WALK_BATCH images."""
    done = 0
    for batch in _walk(select(_search.c.image_id).where(_search.c.project_id == project_id),
                       _search.c.image_id):
        done += refresh_predictions(project_id, batch)
        db.session.commit()
    return done


def rebuild_project(project_id: int) -> int:
    """Rebuild every search row of a project from the source tables (committing in batches)."""
    done = 0
    for batch in _walk(select(_image.c.id).where(_image.c.project_id == project_id), _image.c.id):
        done += index_images(batch)
        db.session.commit()
    return done


def index_missing(project_id: int) -> int:
    """Index the project's images that have no search row yet; return how many (committed)."""
    images = db.session.scalar(select(func.count()).select_from(_image)
                               .where(_image.c.project_id == project_id))
    rows = db.session.scalar(select(func.count()).select_from(_search)
                             .where(_search.c.project_id == project_id))
    if images == rows:
        return 0
    missing = select(_image.c.id).where(
        _image.c.project_id == project_id,
        ~select(_search.c.image_id).where(_search.c.image_id == _image.c.id).exists())
    done = 0
    for batch in _walk(missing, _image.c.id):
        done += index_images(batch)
        db.session.commit()
    return done


def after_class_merge(project_id: int, old_class_id: int, new_class_id: int) -> int:
    """Re-index the images a class merge touched (call after moving its rows, before commit)."""
    touched = set(db.session.scalars(select(_search.c.image_id).where(
        _search.c.project_id == project_id,
        or_(_search.c.label_class_id == old_class_id,
            _search.c.predicted_class_id == old_class_id))))
    touched.update(db.session.scalars(select(_label.c.image_id).where(
        _label.c.label_class_id == new_class_id).distinct()))
    return index_images(touched)


# --- helpers -----------------------------------------------------------------------------


def _chunks(ids, size: int = CHUNK):
    """Yield the distinct ids in ascending lists of at most size."""
    ordered = sorted(set(ids))
    for start in range(0, len(ordered), size):
        yield ordered[start:start + size]


def _walk(query, id_column, size: int = WALK_BATCH):
    """Yield the ids a query selects in ascending batches, reading each batch afresh (keyset)."""
    last = 0
    while True:
        batch = list(db.session.scalars(query.where(id_column > last).order_by(id_column)
                                        .limit(size)))
        if not batch:
            return
        yield batch
        last = batch[-1]


def _insert_ignoring(table, connection):
    """Return an INSERT that skips rows whose unique key exists (SQLite and PostgreSQL)."""
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing()


def _votes(image_ids: list[int], connection) -> dict[int, dict[int, int]]:
    """Map image id -> {class id: votes} for these images."""
    votes: dict[int, dict[int, int]] = defaultdict(dict)
    for image_id, class_id, count in connection.execute(
            select(_label.c.image_id, _label.c.label_class_id, func.count(_label.c.id))
            .where(_label.c.image_id.in_(image_ids))
            .group_by(_label.c.image_id, _label.c.label_class_id)):
        votes[image_id][class_id] = count
    return votes


def _serving_predictions(project_id: int, image_ids: list[int], connection) -> dict[int, tuple]:
    """Map image id -> (class id, confidence, model version id) of the serving model."""
    model_id = connection.execute(_SERVING_MODEL, {"project_id": project_id}).scalar()
    if model_id is None or not image_ids:
        return {}
    prediction = Prediction.__table__
    rows = connection.execute(select(prediction.c.image_id, prediction.c.label_class_id,
                                     prediction.c.confidence)
                              .where(prediction.c.model_version_id == model_id,
                                     prediction.c.image_id.in_(image_ids)))
    return {image_id: (class_id, confidence, model_id) for image_id, class_id, confidence in rows}


def _search_row(image, label, prediction, generation: int) -> dict:
    """Return the search_image row of an image."""
    predicted, confidence, model_id = prediction or (None, None, None)
    return {"image_id": image.id, "project_id": image.project_id, "generation": generation,
            "filename": image.original_name, "label_class_id": label,
            "predicted_class_id": predicted, "confidence": confidence,
            "model_version_id": model_id, **search_fields(label, predicted, confidence)}


def _prediction_update(image_id: int, label, prediction) -> dict:
    """Return the changed columns of a search row whose serving prediction is new."""
    predicted, confidence, model_id = prediction or (None, None, None)
    return {"b_image_id": image_id, "predicted_class_id": predicted, "confidence": confidence,
            "model_version_id": model_id, **search_fields(label, predicted, confidence)}


def _write_updates(updates: dict[int, list[dict]], connection) -> int:
    """Write row updates grouped by project, each project's under a new generation."""
    written = 0
    for project_id, rows in updates.items():
        if not rows:
            continue
        if len(rows) == 1 and connection.dialect.name == "postgresql" and connection.execute(
                _RAISE_AND_SET_ROW, rows[0] | {"b_project_id": project_id}).rowcount == 1:
            written += 1
            continue
        generation = raise_generation(project_id, connection)
        connection.execute(_SET_ROW, [row | {"generation": generation} for row in rows])
        written += len(rows)
    return written


def _insert_metadata(project_id: int, images, connection) -> None:
    """Store the metadata values of new images in indexed form (columns and values created)."""
    entries = {}
    for image in images:
        for key, value in (image.metadata or {}).items():
            text = value_text(value)
            if text is not None:
                entries.setdefault((image.id, str(key)[:KEY_LENGTH]), (text, value_number(value)))
    if not entries:
        return
    columns = _column_ids(project_id, {key for _, key in entries}, connection)
    wanted = {(columns[key], text): number for (_, key), (text, number) in entries.items()}
    values = _value_ids(wanted, connection)
    connection.execute(insert(_meta), [
        {"image_id": image_id, "column_id": columns[key], "project_id": project_id,
         "value_id": values[(columns[key], text)]}
        for (image_id, key), (text, _) in entries.items()])


def _column_ids(project_id: int, keys: set[str], connection) -> dict[str, int]:
    """Map metadata key -> search column id, creating the columns a project lacks."""
    query = select(_column.c.key, _column.c.id).where(_column.c.project_id == project_id,
                                                       _column.c.key.in_(sorted(keys)))
    found = dict(connection.execute(query).all())
    if len(found) < len(keys):
        connection.execute(_insert_ignoring(_column, connection), [
            {"project_id": project_id, "key": key} for key in sorted(keys - set(found))])
        found = dict(connection.execute(query).all())
    return found


def _value_ids(wanted: dict[tuple[int, str], float | None], connection) -> dict[tuple, int]:
    """Map (column id, text) -> search value id, creating the values not stored yet."""
    by_column = defaultdict(list)
    for column_id, text in wanted:
        by_column[column_id].append(text)
    found = {}
    for column_id, texts in by_column.items():
        query = select(_value.c.text, _value.c.id).where(_value.c.column_id == column_id,
                                                         _value.c.text.in_(texts))
        known = dict(connection.execute(query).all())
        if len(known) < len(texts):
            connection.execute(_insert_ignoring(_value, connection), [
                {"column_id": column_id, "text": text, "number": wanted[(column_id, text)]}
                for text in texts if text not in known])
            known = dict(connection.execute(query).all())
        found.update({(column_id, text): value_id for text, value_id in known.items()})
    return found


def _index_flushed(session, flush_context) -> None:
    """After an ORM flush: index new images and refresh images whose labels or predictions changed."""
    new_images, labeled, predicted, serving_projects = [], set(), defaultdict(set), set()
    for instance in session.new:
        if isinstance(instance, Image):
            new_images.append(instance.id)
        elif isinstance(instance, Label):
            labeled.add(instance.image_id)
        elif isinstance(instance, Prediction):
            predicted[instance.model_version_id].add(instance.image_id)
        elif isinstance(instance, ModelVersion) and instance.is_serving:
            serving_projects.add(instance.project_id)
    for instance in list(session.dirty) + list(session.deleted):
        if isinstance(instance, Label):
            labeled.add(instance.image_id)
    if not (new_images or labeled or predicted or serving_projects):
        return
    connection = session.connection()
    if new_images:
        index_images(new_images, connection)
    if labeled - set(new_images):
        refresh_images(labeled - set(new_images), connection)
    for model_id, image_ids in predicted.items():
        project_id = connection.execute(select(ModelVersion.project_id).where(
            ModelVersion.id == model_id, ModelVersion.is_serving.is_(True))).scalar()
        if project_id is not None:
            refresh_predictions(project_id, image_ids, connection)
    for project_id in serving_projects:
        all_images = connection.execute(select(_search.c.image_id).where(
            _search.c.project_id == project_id)).scalars().all()
        refresh_predictions(project_id, all_images, connection)
