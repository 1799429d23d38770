"""Crater size-frequency distributions: how many craters per km^2 are at least D across.

The cumulative form is the one crater counting plots on log-log axes (a surface's age is read
from where its curve lies): N(>= D) is the number of craters whose diameter is D or more,
divided by the counted area.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def cumulative_sfd(diameters_m: Sequence[float], area_km2: float) -> tuple[np.ndarray, np.ndarray]:
    """Diameters (metres) sorted from largest to smallest and, for each, craters >= it per km^2."""
    if not area_km2 or area_km2 <= 0:
        raise ValueError("the counted area must be positive")
    values = np.asarray(diameters_m, dtype=float)
    values = values[np.isfinite(values) & (values > 0)]
    ascending = np.sort(values)
    descending = ascending[::-1]
    # Equal diameters get the same count: every crater at least that large.
    at_least = len(ascending) - np.searchsorted(ascending, descending, side="left")
    return descending, at_least / float(area_km2)
