"""The read side of the search index: a project's search columns held as arrays in memory.

Facet counts at archive scale need every matching row counted once per facet: grouped SQL
scans cost about 100 ms per facet at a million rows on SQLite (measured), so a search with
eight facets would take a second. Here each process keeps the project's search columns as
numpy arrays (about 60 bytes an image) and counts with bincount, as search engines count
facets from column stores. Before each search it reads the project's generation (one
primary-key lookup) and, when that moved, only the rows written since (index
ix_search_image_generation); a process that starts loads the whole project once.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
from flask import current_app
from sqlalchemy import func, select

from ..extensions import db
from ..models import SearchState
from . import index
from .index import CHUNK, _column, _meta, _search, _value  # the tables' Core aliases: one home

# Projects whose arrays a process keeps (least recently searched ones are dropped).
CACHED_PROJECTS = 4
# Above this share of changed rows a full reload is cheaper than patching.
RELOAD_SHARE = 0.2
# Rows fetched from the cursor at a time while loading (bounds the memory of Python tuples).
READ_BATCH = 50000

# Missing class ids are 0 and missing confidences NaN in the arrays (SQL NULL in the rows;
# read as -1, which no probability is).
_ROW_COLUMNS = (_search.c.image_id, func.coalesce(_search.c.label_class_id, 0),
                func.coalesce(_search.c.predicted_class_id, 0),
                func.coalesce(_search.c.class_id, 0), func.coalesce(_search.c.confidence, -1.0),
                func.coalesce(_search.c.class_confidence, -1.0), _search.c.status)
# The Snapshot array each of those columns fills, and its type.
_ROW_TYPES = [("image_ids", "i8"), ("label", "i4"), ("predicted", "i4"), ("klass", "i4"),
              ("confidence", "f8"), ("class_confidence", "f8"), ("status", "i1")]
_META_TYPES = [("image_id", "i8"), ("column_id", "i8"), ("value_id", "i4")]
_ID_TYPES = [("image_id", "i8")]


@dataclass
class Snapshot:
    """The search columns of one project's images, in ascending image id order."""

    project_id: int
    generation: int = -1
    image_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    label: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    predicted: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    klass: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    confidence: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float64))
    class_confidence: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float64))
    status: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8))
    # Metadata column id -> value id per image (0: the image has no value there).
    meta: dict = field(default_factory=dict)
    columns: dict = field(default_factory=dict)      # key -> column id
    # value id -> (column id, text, number); replaced, never changed in place (search/text.py
    # reads it without the lock)
    values: dict = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _numbers: dict = field(default_factory=dict, repr=False)
    _numeric: dict = field(default_factory=dict, repr=False)
    _value_ids: dict | None = field(default=None, repr=False)
    _filename_rank: np.ndarray | None = field(default=None, repr=False)

    @property
    def size(self) -> int:
        """Return the number of images."""
        return len(self.image_ids)

    def codes(self, column_id: int) -> np.ndarray:
        """Return a column's value id per image (0 where it has none)."""
        codes = self.meta.get(column_id)
        return codes if codes is not None else np.zeros(self.size, np.int32)

    def value_id(self, column_id: int, text: str) -> int | None:
        """Return the id of a column's value with this text, or None."""
        if self._value_ids is None:
            self._value_ids = {(owner, value_text): value_id for value_id, (owner, value_text, _)
                               in self.values.items()}
        return self._value_ids.get((column_id, text))

    def value_text(self, value_id: int) -> str:
        """Return the text of a value id."""
        return self.values[value_id][1] if value_id in self.values else str(value_id)

    def numbers(self, column_id: int) -> np.ndarray:
        """Return a column's numeric value per image (NaN where it has none)."""
        if column_id not in self._numbers:
            codes = self.codes(column_id)
            lookup = np.full(max(max(self.values, default=0), int(codes.max(initial=0))) + 1,
                             np.nan)
            for value_id, (owner, _, number) in self.values.items():
                if owner == column_id and number is not None:
                    lookup[value_id] = number
            self._numbers[column_id] = lookup[codes]
        return self._numbers[column_id]

    def is_numeric(self, column_id: int) -> bool:
        """Return whether every value of a column is a number (its facet is then a range)."""
        if column_id not in self._numeric:
            numbers = [number for owner, _, number in self.values.values() if owner == column_id]
            self._numeric[column_id] = bool(numbers) and None not in numbers
        return self._numeric[column_id]

    def positions(self, image_ids) -> np.ndarray:
        """Return the array positions of these image ids (ids not held are left out)."""
        where, held = locate(self.image_ids, np.asarray(image_ids, dtype=np.int64))
        return where[held]

    def filename_rank(self) -> np.ndarray:
        """Return each image's place in file name order (read once, again after new images)."""
        if self._filename_rank is None or len(self._filename_rank) != self.size:
            ordered = _read(select(_search.c.image_id).where(
                _search.c.project_id == self.project_id).order_by(
                _search.c.filename, _search.c.image_id), _ID_TYPES)["image_id"]
            rank = np.full(self.size, self.size, dtype=np.int64)
            where, held = locate(self.image_ids, ordered)
            rank[where[held]] = np.arange(len(ordered))[held]
            self._filename_rank = rank
        return self._filename_rank

    def forget_derived(self) -> None:
        """Drop what is computed from the values (after they changed)."""
        self._numbers, self._numeric, self._value_ids = {}, {}, None


def filename_ids(project_id: int, term: str) -> np.ndarray:
    """Return the ids of the project's images whose file name holds term (any case)."""
    return _read(select(_search.c.image_id).where(
        _search.c.project_id == project_id,
        _search.c.filename.icontains(term, autoescape=True)), _ID_TYPES)["image_id"]


def locate(sorted_ids: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return where ids are (or would go) in sorted_ids, and which of them are there."""
    where = np.searchsorted(sorted_ids, ids)
    held = where < len(sorted_ids)
    held[held] = sorted_ids[where[held]] == ids[held]
    return where, held


_cache_lock = threading.Lock()


def current(project_id: int) -> Snapshot:
    """Return the project's snapshot, caught up with the database; hold its lock while using it."""
    cache = _app_cache()
    with _cache_lock:
        snapshot = cache.pop(project_id, None) or Snapshot(project_id)
        cache[project_id] = snapshot
        while len(cache) > CACHED_PROJECTS:
            cache.popitem(last=False)
    return snapshot


def catch_up(snapshot: Snapshot) -> None:
    """Bring a snapshot (whose lock the caller holds) up to the project's newest generation."""
    if snapshot.generation < 0 and index.index_missing(snapshot.project_id):
        db.session.commit()
    generation = db.session.scalar(select(SearchState.generation).where(
        SearchState.project_id == snapshot.project_id))
    generation = -1 if generation is None else generation
    if generation == snapshot.generation and snapshot.generation >= 0:
        return
    if snapshot.generation < 0 or generation < snapshot.generation:
        _load_all(snapshot, generation)
        return
    changed = _read(select(*_ROW_COLUMNS).where(
        _search.c.project_id == snapshot.project_id,
        _search.c.generation > snapshot.generation), _ROW_TYPES)
    if len(changed) > RELOAD_SHARE * max(snapshot.size, 1) and len(changed) > CHUNK:
        _load_all(snapshot, generation)
        return
    _patch(snapshot, changed)
    snapshot.generation = generation


def _app_cache() -> OrderedDict:
    """Return this app's snapshots (a fresh app, e.g. a test's, starts with none)."""
    return current_app.extensions.setdefault("search_snapshots", OrderedDict())


def _load_all(snapshot: Snapshot, generation: int) -> None:
    """Read every search row and metadata value of the project."""
    rows = _read(select(*_ROW_COLUMNS).where(_search.c.project_id == snapshot.project_id)
                 .order_by(_search.c.image_id), _ROW_TYPES)
    _set_rows(snapshot, _as_columns(rows))
    metadata = _read(select(_meta.c.image_id, _meta.c.column_id, _meta.c.value_id)
                     .where(_meta.c.project_id == snapshot.project_id), _META_TYPES)
    snapshot.meta = {}
    _place_metadata(snapshot, metadata)
    snapshot.columns = dict(db.session.execute(select(_column.c.key, _column.c.id).where(
        _column.c.project_id == snapshot.project_id)).all())
    snapshot.values = {value_id: (column_id, text, number) for value_id, column_id, text, number
                       in db.session.execute(select(_value.c.id, _value.c.column_id,
                                                    _value.c.text, _value.c.number)
                                             .where(_value.c.column_id.in_(
                                                 list(snapshot.columns.values()) or [-1])))}
    snapshot.forget_derived()
    snapshot._filename_rank = None
    snapshot.generation = generation


def _read(statement, types: list[tuple[str, str]]) -> np.ndarray:
    """Run a select and read its rows straight into a structured array.

    The DBAPI cursor's tuples go to numpy without SQLAlchemy Row objects, which cost
    seconds at a million rows.
    """
    connection = db.session.connection()
    compiled = statement.compile(dialect=connection.dialect,
                                 compile_kwargs={"render_postcompile": True})
    params = compiled.construct_params()
    if compiled.positional:
        params = tuple(params[name] for name in compiled.positiontup)
    cursor = connection.connection.cursor()
    try:
        cursor.execute(str(compiled), params)
        parts = [np.zeros(0, dtype=types)]
        while rows := cursor.fetchmany(READ_BATCH):  # psycopg builds a batch's rows in C
            parts.append(np.array(rows, dtype=types))
        return np.concatenate(parts)
    finally:
        cursor.close()


def _as_columns(rows: np.ndarray) -> dict[str, np.ndarray]:
    """Turn search rows (a structured array of _ROW_TYPES) into one array per column."""
    columns = {name: np.ascontiguousarray(rows[name]) for name, _ in _ROW_TYPES}
    for name in ("confidence", "class_confidence"):
        columns[name][columns[name] < 0] = np.nan
    return columns


def _set_rows(snapshot: Snapshot, columns: dict[str, np.ndarray]) -> None:
    """Replace the snapshot's row arrays."""
    for name, values in columns.items():
        setattr(snapshot, name, values)


def _patch(snapshot: Snapshot, changed) -> None:
    """Apply changed and new rows; new images also bring their metadata values."""
    if not len(changed):
        return
    columns = _as_columns(changed)
    ids = columns["image_ids"]
    where, known = locate(snapshot.image_ids, ids)
    for name, values in columns.items():
        getattr(snapshot, name)[where[known]] = values[known]
    new = ~known
    if new.any():
        _append(snapshot, {name: values[new] for name, values in columns.items()})
        new_ids = ids[new].tolist()
        metadata = np.concatenate([np.zeros(0, _META_TYPES)] + [
            _read(select(_meta.c.image_id, _meta.c.column_id, _meta.c.value_id)
                  .where(_meta.c.image_id.in_(new_ids[start:start + CHUNK])), _META_TYPES)
            for start in range(0, len(new_ids), CHUNK)])
        _place_metadata(snapshot, metadata)
        _learn_values(snapshot, set(metadata["value_id"].tolist()))
        snapshot.forget_derived()


def _append(snapshot: Snapshot, columns: dict[str, np.ndarray]) -> None:
    """Append rows of new images, keeping image ids ascending."""
    grows = len(columns["image_ids"])
    for name, values in columns.items():
        setattr(snapshot, name, np.concatenate([getattr(snapshot, name), values]))
    snapshot.meta = {column_id: np.concatenate([codes, np.zeros(grows, np.int32)])
                     for column_id, codes in snapshot.meta.items()}
    if np.any(np.diff(snapshot.image_ids) < 0):
        order = np.argsort(snapshot.image_ids, kind="stable")
        for name in columns:
            setattr(snapshot, name, getattr(snapshot, name)[order])
        snapshot.meta = {column_id: codes[order] for column_id, codes in snapshot.meta.items()}
    snapshot._filename_rank = None


def _place_metadata(snapshot: Snapshot, metadata: np.ndarray) -> None:
    """Put (image id, column id, value id) rows into the per-column arrays."""
    for column_id in np.unique(metadata["column_id"]).tolist():
        chosen = metadata[metadata["column_id"] == column_id]
        where, held = locate(snapshot.image_ids, chosen["image_id"])
        codes = snapshot.meta.setdefault(column_id, np.zeros(snapshot.size, np.int32))
        codes[where[held]] = chosen["value_id"][held]


def _learn_values(snapshot: Snapshot, value_ids: set[int]) -> None:
    """Read the values (and columns) that new images brought and the snapshot does not know."""
    unknown = sorted(value_ids - set(snapshot.values))
    if not unknown:
        return
    learned = dict(snapshot.values)  # a new dict: searches read the old one without the lock
    for start in range(0, len(unknown), CHUNK):
        for value_id, column_id, text, number in db.session.execute(
                select(_value.c.id, _value.c.column_id, _value.c.text, _value.c.number)
                .where(_value.c.id.in_(unknown[start:start + CHUNK]))):
            learned[value_id] = (column_id, text, number)
    snapshot.values = learned
    snapshot.columns = dict(db.session.execute(select(_column.c.key, _column.c.id).where(
        _column.c.project_id == snapshot.project_id)).all())
