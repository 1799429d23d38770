"""Confidence intervals for the proportions people read off the model page.

An accuracy on nine images says little; the Wilson score interval says how little, and stays
inside [0, 1] at 0 or n successes where the normal approximation does not (Brown, Cai and
DasGupta 2001 recommend it for small n).
"""
from __future__ import annotations

import math

# z of a two-sided 95% interval.
Z_95 = 1.959964


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float] | None:
    """Return the (low, high) Wilson score interval of successes out of n, or None if n is 0."""
    if n <= 0:
        return None
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


# Below this many images an accuracy is shown as "too few to judge": at 20 images a 95%
# interval around 80% still spans 58-92%.
TOO_FEW_TO_JUDGE = 20


def proportion(value: float | None, n: int | None) -> dict | None:
    """A share (an accuracy) with its sample size and 95% Wilson interval, or None without one.

    "enough" says whether n reaches TOO_FEW_TO_JUDGE; the page then shows the figure, else
    a plain "too few images to judge" with the same numbers.
    """
    if value is None or not n:
        return None
    low, high = wilson_interval(round(value * n), n)
    return {"value": value, "n": n, "low": low, "high": high, "enough": n >= TOO_FEW_TO_JUDGE}
