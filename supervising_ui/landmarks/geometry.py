"""Boxes on an observation and their overlap (intersection over union).

Coordinates are pixels of the whole observation: x to the right, y down, the minimum
inclusive and the maximum exclusive, so a box's width is ``x_max - x_min``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Box:
    """One axis-aligned box drawn (or proposed) on an observation."""

    x_min: float
    y_min: float
    x_max: float
    y_max: float
    label: str = "crater"
    annotator: str = ""
    score: float | None = None

    @property
    def width(self) -> float:
        """Width in pixels."""
        return float(self.x_max - self.x_min)

    @property
    def height(self) -> float:
        """Height in pixels."""
        return float(self.y_max - self.y_min)

    @property
    def center(self) -> tuple[float, float]:
        """Centre (x, y) in pixels."""
        return ((self.x_min + self.x_max) / 2.0, (self.y_min + self.y_max) / 2.0)

    @property
    def diameter(self) -> float:
        """Crater diameter in pixels: the mean of width and height."""
        return (self.width + self.height) / 2.0

    @property
    def area(self) -> float:
        """Area in square pixels (0 for a degenerate box)."""
        return max(self.width, 0.0) * max(self.height, 0.0)

    def is_valid(self) -> bool:
        """True when the box has a positive width and height and finite corners."""
        corners = (self.x_min, self.y_min, self.x_max, self.y_max)
        return all(np.isfinite(corners)) and self.x_max > self.x_min and self.y_max > self.y_min

    @classmethod
    def from_center(cls, x: float, y: float, width: float, height: float | None = None,
                    **fields) -> Box:
        """A box of that size centred on (x, y); a square when height is left out."""
        height = width if height is None else height
        return cls(x - width / 2.0, y - height / 2.0, x + width / 2.0, y + height / 2.0, **fields)


def as_array(boxes: Sequence[Box]) -> np.ndarray:
    """The boxes' corners as a float array of shape (n, 4): x_min, y_min, x_max, y_max."""
    if len(boxes) == 0:
        return np.zeros((0, 4), dtype=np.float64)
    return np.array([(b.x_min, b.y_min, b.x_max, b.y_max) for b in boxes], dtype=np.float64)


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes (0 when they do not overlap)."""
    width = min(a.x_max, b.x_max) - max(a.x_min, b.x_min)
    height = min(a.y_max, b.y_max) - max(a.y_min, b.y_min)
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    union = a.area + b.area - inter
    return float(inter / union) if union > 0 else 0.0


def iou_pairs(corners_a: np.ndarray, corners_b: np.ndarray) -> np.ndarray:
    """Element-wise IoU of two (n, 4) corner arrays (row i of one against row i of the other)."""
    width = np.minimum(corners_a[:, 2], corners_b[:, 2]) - np.maximum(corners_a[:, 0],
                                                                      corners_b[:, 0])
    height = np.minimum(corners_a[:, 3], corners_b[:, 3]) - np.maximum(corners_a[:, 1],
                                                                       corners_b[:, 1])
    inter = np.clip(width, 0, None) * np.clip(height, 0, None)
    area_a = (corners_a[:, 2] - corners_a[:, 0]) * (corners_a[:, 3] - corners_a[:, 1])
    area_b = (corners_b[:, 2] - corners_b[:, 0]) * (corners_b[:, 3] - corners_b[:, 1])
    union = area_a + area_b - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def iou_matrix(boxes_a: Sequence[Box] | np.ndarray,
               boxes_b: Sequence[Box] | np.ndarray) -> np.ndarray:
    """IoU of every box of ``boxes_a`` with every box of ``boxes_b``: shape (len(a), len(b)).

    Takes Box lists or (n, 4) corner arrays. Dense: for thousands of boxes on each side use
    ``overlapping_pairs`` instead.
    """
    a = boxes_a if isinstance(boxes_a, np.ndarray) else as_array(boxes_a)
    b = boxes_b if isinstance(boxes_b, np.ndarray) else as_array(boxes_b)
    width = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    height = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(width, 0, None) * np.clip(height, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def overlapping_pairs(corners_a: np.ndarray, corners_b: np.ndarray | None = None,
                      min_iou: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index pairs (i, j) whose boxes overlap with IoU > min_iou, and that IoU.

    A sweep over x (sorted minima, ``searchsorted`` on the maxima), all in numpy: the work
    grows with the number of boxes whose x ranges overlap, not with n squared. With one
    array, pairs are i < j within it; with two, i indexes ``corners_a`` and j ``corners_b``.
    """
    same = corners_b is None
    b = corners_a if same else corners_b
    empty = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0))
    if len(corners_a) == 0 or len(b) == 0:
        return empty
    order = np.argsort(b[:, 0], kind="stable")
    sorted_x_min = b[order, 0]
    # Candidates for box i: boxes of b whose x_min lies before i's x_max ...
    stop = np.searchsorted(sorted_x_min, corners_a[:, 2], side="left")
    start = np.zeros(len(corners_a), dtype=np.int64)
    if same:
        # ... and, within one array, after i itself in the sorted order (each pair once).
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order))
        start = rank + 1
    else:
        # ... and whose x_min is after i's x_min minus the widest box of b.
        widest = float(np.max(b[:, 2] - b[:, 0]))
        start = np.searchsorted(sorted_x_min, corners_a[:, 0] - widest, side="left")
    counts = np.clip(stop - start, 0, None)
    total = int(counts.sum())
    if total == 0:
        return empty
    left = np.repeat(np.arange(len(corners_a)), counts)
    offsets = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    right = order[np.repeat(start, counts) + offsets]
    overlap = iou_pairs(corners_a[left], b[right])
    keep = overlap > min_iou
    left, right, overlap = left[keep], right[keep], overlap[keep]
    if same:
        swap = left > right
        left, right = np.where(swap, right, left), np.where(swap, left, right)
    return left, right, overlap
