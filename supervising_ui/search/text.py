"""The free text of a search: its words, and which images each word matches.

A word matches an image whose file name, class names (its label, prediction or class) or
metadata values hold it, in any letter case; an image must match every word. The words are
resolved to ids (image ids from the file names, class ids, value ids) outside the project's
search lock, because that costs a scan of the file names and of the values per word; only
turning those ids into a mask, a few array lookups per word, runs under the lock.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .snapshot import Snapshot, filename_ids


@dataclass(frozen=True)
class WordMatch:
    """What one word matches, as ids that do not change while the snapshot catches up."""

    image_ids: np.ndarray                 # images whose file name holds the word
    class_ids: tuple[int, ...]            # classes whose name holds it
    value_ids: dict[int, list[int]]       # column id -> ids of its values that hold it


def resolve(project_id: int, values: dict, words: tuple[str, ...],
            classes: dict[str, int]) -> tuple[WordMatch, ...]:
    """Resolve each word against a project's file names, class names and values.

    values is a snapshot's value dict (value id -> (column id, text, number)), which the
    snapshot replaces rather than changes, so that it may be read without the lock.
    """
    return tuple(WordMatch(filename_ids(project_id, word),
                           tuple(class_id for name, class_id in classes.items()
                                 if word in name.lower()),
                           values_containing(values, word))
                 for word in words)


def values_containing(values: dict, word: str) -> dict[int, list[int]]:
    """Map column id -> ids of its values whose text holds word (any case)."""
    found: dict[int, list[int]] = {}
    for value_id, (column_id, text, _) in values.items():
        if word in text.lower():
            found.setdefault(column_id, []).append(value_id)
    return found


def mask(snapshot: Snapshot, matches: tuple[WordMatch, ...]) -> np.ndarray:
    """Return the images of snapshot (whose lock the caller holds) that match every word."""
    matched = np.ones(snapshot.size, dtype=bool)
    for match in matches:
        hits = np.zeros(snapshot.size, dtype=bool)
        hits[snapshot.positions(match.image_ids)] = True
        if match.class_ids:
            for values in (snapshot.klass, snapshot.label, snapshot.predicted):
                hits |= np.isin(values, match.class_ids)
        for column_id, value_ids in match.value_ids.items():
            hits |= np.isin(snapshot.codes(column_id), value_ids)
        matched &= hits
    return matched
