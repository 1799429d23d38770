"""Counts per group (the landmark catalog): images of a class at or above a threshold per group.

A group is a value of the project's group column (source observation, sol). Its count is
made with the search's own filters, so it equals the total of the search with that class,
threshold and group value.
"""
from __future__ import annotations

import numpy as np

from . import engine
from .query import GroupsQuery
from .snapshot import Snapshot


def group_counts(snapshot: Snapshot, query: GroupsQuery, classes: dict[str, int],
                 group_key: str) -> dict:
    """Return the groups with at least query.min_count matching images, most first."""
    column_id = snapshot.columns.get(group_key)
    if column_id is None:
        return {"total": 0, "page": query.page, "per_page": query.per_page, "groups": []}
    codes = snapshot.codes(column_id)
    size = int(codes.max(initial=0)) + 1
    counts = np.bincount(codes[engine.match_mask(snapshot, query.as_search(), classes)],
                         minlength=size)
    images = np.bincount(codes, minlength=size)
    shown = np.flatnonzero(counts >= query.min_count)
    shown = shown[shown > 0].tolist()
    shown.sort(key=lambda value_id: (-counts[value_id], snapshot.value_text(value_id)))
    start = (query.page - 1) * query.per_page
    return {"total": len(shown), "page": query.page, "per_page": query.per_page,
            "groups": [{"group": snapshot.value_text(value_id), "count": int(counts[value_id]),
                        "images": int(images[value_id])}
                       for value_id in shown[start:start + query.per_page]]}
