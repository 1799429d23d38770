"""A checked query on a snapshot: which images match, the facet counts, one sorted page.

Each filter is a boolean mask over the project's images. A facet is counted under every
filter but its own (the Atlas way: ticking "crater" leaves the other classes' counts in
place), so values of one facet are OR and different facets AND. The confidence slider and
the free text are not facets: they narrow every count.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import text as free_text
from .index import STATUS_DISAGREE, STATUS_LABELED, STATUS_UNLABELED
from .query import SearchQuery
from .snapshot import Snapshot

# Most values a text facet lists (by count); selected values are always listed.
FACET_VALUES = 100
# Confidences are ranked in steps of 2**-24; ties fall back to the image id.
CONFIDENCE_STEPS = 1 << 24
_LAST = CONFIDENCE_STEPS + 1
# The status facet's values and the stored status codes (index.py) each one matches.
STATUS_CODES = {"unlabeled": (STATUS_UNLABELED,), "labeled": (STATUS_LABELED, STATUS_DISAGREE),
                "disagree": (STATUS_DISAGREE,)}


@dataclass(frozen=True)
class Outcome:
    """What a search found: how many images, the page's image ids in order, the facets."""

    total: int
    page_ids: list[int]
    facets: dict


def run(snapshot: Snapshot, query: SearchQuery, classes: dict[str, int],
        words: tuple[free_text.WordMatch, ...] | None = None) -> Outcome:
    """Evaluate query on snapshot; classes maps the project's class names to ids, in order.

    words: query's words resolved outside the lock (free_text.resolve), else resolved here.
    """
    masks = filter_masks(snapshot, query, classes, words)
    matched = np.flatnonzero(_all(masks, snapshot.size))
    page = ordered(snapshot, matched, query.sort, query.offset + query.per_page)[query.offset:]
    return Outcome(len(matched), snapshot.image_ids[page].tolist(),
                   facets(snapshot, query, classes, masks))


def filter_masks(snapshot: Snapshot, query: SearchQuery, classes: dict[str, int],
                 words: tuple[free_text.WordMatch, ...] | None = None) -> dict:
    """Return one mask per active filter, keyed by the facet it belongs to."""
    masks = {}
    for facet, names, values in (("class", query.classes, snapshot.klass),
                                 ("label", query.labels, snapshot.label),
                                 ("predicted", query.predicted, snapshot.predicted)):
        if names:
            masks[facet] = np.isin(values, [classes[name] for name in names])
    if query.statuses:
        codes = sorted({code for status in query.statuses for code in STATUS_CODES[status]})
        masks["status"] = np.isin(snapshot.status, codes)
    for key, meta_filter in query.meta.items():
        masks["meta." + key] = _meta_mask(snapshot, snapshot.columns[key], meta_filter)
    if query.min_confidence is not None or query.max_confidence is not None:
        masks["confidence"] = _range(snapshot.class_confidence, query.min_confidence,
                                     query.max_confidence)
    if query.words:
        if words is None:
            words = free_text.resolve(snapshot.project_id, snapshot.values, query.words, classes)
        masks["q"] = free_text.mask(snapshot, words)
    return masks


def match_mask(snapshot: Snapshot, query: SearchQuery, classes: dict[str, int],
               words: tuple[free_text.WordMatch, ...] | None = None) -> np.ndarray:
    """Return which images match every filter of query."""
    return _all(filter_masks(snapshot, query, classes, words), snapshot.size)


def matching_ids(snapshot: Snapshot, query: SearchQuery, classes: dict[str, int],
                 words: tuple[free_text.WordMatch, ...] | None = None) -> np.ndarray:
    """Return the image ids of every match, in the query's sort order."""
    matched = np.flatnonzero(match_mask(snapshot, query, classes, words))
    return snapshot.image_ids[ordered(snapshot, matched, query.sort, len(matched))]


def facets(snapshot: Snapshot, query: SearchQuery, classes: dict[str, int], masks: dict) -> dict:
    """Count every facet under all filters but its own."""
    def under_others(facet):
        others = {name: mask for name, mask in masks.items() if name != facet}
        return _all(others, snapshot.size) if others else slice(None)  # a view: no copy

    counted = {facet: _class_counts(values[under_others(facet)], classes)
               for facet, values in (("class", snapshot.klass), ("label", snapshot.label),
                                     ("predicted", snapshot.predicted))}
    by_status = np.bincount(snapshot.status[under_others("status")], minlength=3)
    counted["status"] = {status: int(by_status[list(codes)].sum())
                         for status, codes in STATUS_CODES.items()}
    for key, column_id in snapshot.columns.items():
        chosen = under_others("meta." + key)
        selected = query.meta[key].values if key in query.meta else ()
        counted["meta." + key] = (_number_range(snapshot.numbers(column_id)[chosen])
                                  if snapshot.is_numeric(column_id) else
                                  _value_counts(snapshot, column_id, chosen, selected))
    return counted


def ordered(snapshot: Snapshot, positions: np.ndarray, sort: str, stop: int) -> np.ndarray:
    """Return the first `stop` of these positions in sort order (ties by image id)."""
    stop = min(stop, len(positions))
    if stop <= 0:
        return positions[:0]
    keys = _sort_keys(snapshot, positions, sort)
    first = np.argpartition(keys, stop - 1)[:stop] if stop < len(keys) else np.arange(len(keys))
    return positions[first[np.argsort(keys[first])]]


def _sort_keys(snapshot: Snapshot, positions: np.ndarray, sort: str) -> np.ndarray:
    """Return a distinct int64 key per position whose order is the sort order."""
    if sort == "filename":
        return snapshot.filename_rank()[positions]
    if sort == "random":
        primary = _scramble(snapshot.image_ids[positions])
    else:
        # The model's confidence in its own prediction, the figure each result shows: a human
        # label (class confidence 1) does not lift an image the model is unsure of to the top.
        confidence = snapshot.confidence[positions]
        steps = np.rint(np.nan_to_num(confidence, nan=0.0) * CONFIDENCE_STEPS).astype(np.int64)
        primary = CONFIDENCE_STEPS - steps if sort == "confidence_desc" else steps
        primary[np.isnan(confidence)] = _LAST  # images without a prediction come last either way
    return (primary << 32) | positions.astype(np.int64)


def _scramble(image_ids: np.ndarray) -> np.ndarray:
    """Return a stable pseudo-random 31-bit number per image id (a splitmix64 finaliser)."""
    mixed = image_ids.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    mixed ^= mixed >> np.uint64(31)
    mixed *= np.uint64(0xBF58476D1CE4E5B9)
    mixed ^= mixed >> np.uint64(29)
    return (mixed >> np.uint64(33)).astype(np.int64)


def _all(masks: dict, size: int) -> np.ndarray:
    """Return the AND of masks (every image when there are none)."""
    if not masks:
        return np.ones(size, dtype=bool)
    return np.logical_and.reduce(list(masks.values()))


def _range(values: np.ndarray, low: float | None, high: float | None) -> np.ndarray:
    """Return where low <= value <= high (NaN never passes)."""
    inside = ~np.isnan(values)
    if low is not None:
        inside &= values >= low
    if high is not None:
        inside &= values <= high
    return inside


def _meta_mask(snapshot: Snapshot, column_id: int, meta_filter) -> np.ndarray:
    """Return the images whose value in a column is one of the values and within the range."""
    mask = np.ones(snapshot.size, dtype=bool)
    if meta_filter.values:
        value_ids = [snapshot.value_id(column_id, text) for text in meta_filter.values]
        mask &= np.isin(snapshot.codes(column_id),
                        [value_id for value_id in value_ids if value_id is not None])
    if meta_filter.low is not None or meta_filter.high is not None:
        mask &= _range(snapshot.numbers(column_id), meta_filter.low, meta_filter.high)
    return mask


def _class_counts(values: np.ndarray, classes: dict[str, int]) -> dict[str, int]:
    """Count class ids per class name (every class listed, zeros included)."""
    counts = np.bincount(values, minlength=max(classes.values(), default=0) + 1)
    return {name: int(counts[class_id]) for name, class_id in classes.items()}


def _number_range(numbers: np.ndarray) -> dict:
    """Return the min and max of the numbers present (None when there are none)."""
    present = numbers[~np.isnan(numbers)]
    if not len(present):
        return {"min": None, "max": None}
    return {"min": _plain(present.min()), "max": _plain(present.max())}


def _plain(number) -> int | float:
    """Return a number as an int where it is whole, else a float (for JSON)."""
    number = float(number)
    return int(number) if number.is_integer() else number


def _value_counts(snapshot: Snapshot, column_id: int, chosen: np.ndarray,
                  selected: tuple[str, ...]) -> dict[str, int]:
    """Count the values of a text column, most frequent first (the selected ones always)."""
    codes = snapshot.meta.get(column_id)
    if codes is None:
        return {text: 0 for text in selected}
    counts = np.bincount(codes[chosen])
    present = np.flatnonzero(counts)
    present = present[present > 0]
    top = present[np.lexsort((present, -counts[present]))][:FACET_VALUES]
    listed = {snapshot.value_text(value_id): int(counts[value_id]) for value_id in top.tolist()}
    for text in selected:
        value_id = snapshot.value_id(column_id, text)
        listed.setdefault(text, int(counts[value_id]) if value_id is not None
                          and value_id < len(counts) else 0)
    return listed
