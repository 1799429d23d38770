"""Search parameters -> a checked query; anything wrong is a SearchError that names it.

Parameters come as (name, value) pairs, the way a URL carries them: repeatable filters
(class, label, predicted, status, meta.COLUMN) are OR within a name and AND across names.
Empty values count as absent, so a form may send every field. The free text ``q`` is cut into
words (any case, each counted once, a word inside another left out: the longer one implies
it), at most MAX_WORDS of them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

SORTS = ("confidence_desc", "confidence_asc", "filename", "random")
STATUSES = ("labeled", "unlabeled", "disagree")
DEFAULT_PER_PAGE, MAX_PER_PAGE = 50, 500
DEFAULT_GROUPS_PER_PAGE = 100
MAX_PAGE = 10**9
# Distinct words a search's free text may hold (each costs a scan of the file names).
MAX_WORDS = 10
_REPEATABLE = ("class", "label", "predicted", "status")
_SINGLE = ("q", "min_confidence", "max_confidence", "sort", "page", "per_page")
_GROUP_SINGLE = ("min_confidence", "max_confidence", "min_count", "page", "per_page")


class SearchError(ValueError):
    """A search request that cannot be answered, with a message naming what is wrong."""


@dataclass(frozen=True)
class MetaFilter:
    """The filter on one metadata column: any of these values, and/or a numeric range."""

    values: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class SearchQuery:
    """A checked search: filters, free text, sort and the page wanted."""

    text: str = ""
    words: tuple[str, ...] = ()
    classes: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    predicted: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    min_confidence: float | None = None
    max_confidence: float | None = None
    meta: dict[str, MetaFilter] = field(default_factory=dict)
    sort: str = SORTS[0]
    page: int = 1
    per_page: int = DEFAULT_PER_PAGE

    @property
    def offset(self) -> int:
        """Return how many matching images come before this page."""
        return (self.page - 1) * self.per_page


@dataclass(frozen=True)
class GroupsQuery:
    """A checked groups request: the class and threshold counted, the least count shown."""

    classes: tuple[str, ...] = ()
    min_confidence: float | None = None
    max_confidence: float | None = None
    min_count: int = 1
    page: int = 1
    per_page: int = DEFAULT_GROUPS_PER_PAGE

    def as_search(self) -> SearchQuery:
        """Return the search whose total a group's count equals (with the group's value added)."""
        return SearchQuery(classes=self.classes, min_confidence=self.min_confidence,
                           max_confidence=self.max_confidence)


def parse_search(pairs, class_names: list[str], column_keys) -> SearchQuery:
    """Check search parameters against the project's classes and metadata columns."""
    given, meta = _collect(pairs, _REPEATABLE, _SINGLE, column_keys)
    classes = {name: _class_names(name, given.get(name, []), class_names) for name in
               ("class", "label", "predicted")}
    statuses = tuple(dict.fromkeys(given.get("status", [])))
    for status in statuses:
        if status not in STATUSES:
            raise SearchError(f"unknown status {status!r}: use one of {', '.join(STATUSES)}")
    sort = _single(given, "sort") or SORTS[0]
    if sort not in SORTS:
        raise SearchError(f"unknown sort {sort!r}: use one of {', '.join(SORTS)}")
    low, high = _confidence_range(given)
    text = (_single(given, "q") or "").strip()
    return SearchQuery(
        text=text, words=search_words(text), classes=classes["class"],
        labels=classes["label"], predicted=classes["predicted"], statuses=statuses,
        min_confidence=low, max_confidence=high, meta=meta, sort=sort,
        page=_integer(given, "page", 1, 1, MAX_PAGE),
        per_page=_integer(given, "per_page", DEFAULT_PER_PAGE, 1, MAX_PER_PAGE))


def search_words(text: str) -> tuple[str, ...]:
    """Return the distinct lowercase words of a free text that count (SearchError past MAX_WORDS).

    A word held in another word is dropped: every image that matches the longer one matches
    it too.
    """
    distinct = tuple(dict.fromkeys(text.lower().split()))
    words = tuple(word for word in distinct
                  if not any(word != other and word in other for other in distinct))
    if len(words) > MAX_WORDS:
        raise SearchError(f"q holds {len(words)} different words: at most {MAX_WORDS}, "
                          "please narrow the text")
    return words


def parse_groups(pairs, class_names: list[str]) -> GroupsQuery:
    """Check groups parameters against the project's classes."""
    given, _ = _collect(pairs, ("class",), _GROUP_SINGLE, None)
    low, high = _confidence_range(given)
    return GroupsQuery(classes=_class_names("class", given.get("class", []), class_names),
                       min_confidence=low, max_confidence=high,
                       min_count=_integer(given, "min_count", 1, 1, MAX_PAGE),
                       page=_integer(given, "page", 1, 1, MAX_PAGE),
                       per_page=_integer(given, "per_page", DEFAULT_GROUPS_PER_PAGE, 1,
                                         MAX_PER_PAGE))


def _collect(pairs, repeatable, single, column_keys) -> tuple[dict, dict[str, MetaFilter]]:
    """Sort the pairs into known parameters and metadata filters; refuse unknown names."""
    given: dict[str, list[str]] = {}
    meta: dict[str, dict] = {}
    known = set(repeatable) | set(single)
    for name, value in pairs:
        value = value.strip() if isinstance(value, str) else ""
        if name.startswith("meta.") and column_keys is not None:
            key, part = _meta_name(name, column_keys)
            if value:
                meta.setdefault(key, {"values": [], "min": [], "max": []})[part].append(value)
            continue
        if name not in known:
            raise SearchError(f"unknown parameter {name!r}: use {', '.join(sorted(known))} "
                              "or meta.COLUMN, meta.COLUMN.min, meta.COLUMN.max")
        if value:
            given.setdefault(name, []).append(value)
    for name in single:
        if len(given.get(name, [])) > 1:
            raise SearchError(f"parameter {name!r} is given more than once")
    return given, {key: _meta_filter(key, parts) for key, parts in meta.items()}


def _meta_name(name: str, column_keys) -> tuple[str, str]:
    """Return (column, 'values'|'min'|'max') of a meta.* parameter, or refuse the column."""
    key = name[len("meta."):]
    if key in column_keys:
        return key, "values"
    for part in ("min", "max"):
        if key.endswith("." + part) and key[:-len(part) - 1] in column_keys:
            return key[:-len(part) - 1], part
    raise SearchError(f"unknown metadata column {key!r} in parameter {name!r}: the project's "
                      f"columns are {', '.join(sorted(column_keys)) or 'none'}")


def _meta_filter(key: str, parts: dict) -> MetaFilter:
    """Return the filter of one metadata column from its collected values."""
    bounds = {}
    for part in ("min", "max"):
        if len(parts[part]) > 1:
            raise SearchError(f"parameter 'meta.{key}.{part}' is given more than once")
        bounds[part] = _float(f"meta.{key}.{part}", parts[part][0]) if parts[part] else None
    return MetaFilter(tuple(dict.fromkeys(parts["values"])), bounds["min"], bounds["max"])


def _class_names(parameter: str, names: list[str], class_names: list[str]) -> tuple[str, ...]:
    """Return the distinct class names given, refusing one the project does not have."""
    for name in names:
        if name not in class_names:
            raise SearchError(f"unknown class {name!r} in parameter {parameter!r}: use one of "
                              f"{', '.join(class_names)}")
    return tuple(dict.fromkeys(names))


def _confidence_range(given: dict) -> tuple[float | None, float | None]:
    """Return the checked min_confidence and max_confidence (each in [0, 1] or None)."""
    bounds = []
    for name in ("min_confidence", "max_confidence"):
        text = _single(given, name)
        value = None if text is None else _float(name, text)
        if value is not None and not 0.0 <= value <= 1.0:
            raise SearchError(f"{name} must be between 0 and 1, not {text!r}")
        bounds.append(value)
    return bounds[0], bounds[1]


def _single(given: dict, name: str) -> str | None:
    """Return the one value of a parameter given at most once, or None."""
    values = given.get(name)
    return values[0] if values else None


def _float(name: str, text: str) -> float:
    """Parse a finite number, naming the parameter when it is not one."""
    try:
        value = float(text)
    except ValueError:
        raise SearchError(f"{name} must be a number, not {text!r}") from None
    if not math.isfinite(value):
        raise SearchError(f"{name} must be a finite number, not {text!r}")
    return value


def _integer(given: dict, name: str, default: int, lowest: int, highest: int) -> int:
    """Parse a whole number within [lowest, highest], naming the parameter when it is bad."""
    text = _single(given, name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise SearchError(f"{name} must be a whole number, not {text!r}") from None
    if not lowest <= value <= highest:
        raise SearchError(f"{name} must be between {lowest} and {highest}, not {value}")
    return value
