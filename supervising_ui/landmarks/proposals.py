"""Machine proposals of craters on an orbital image: classical, multi-scale, no training.

A small crater under a low sun is a dipole: its sunward wall in shadow, the opposite wall lit.
Smoothed at a scale near its radius, the image has a strong gradient at the crater's centre,
so the detector looks for local maxima, over position and scale, of the scale-normalised
gradient magnitude ``sigma * |grad(G_sigma * I)|`` (Lindeberg's edge strength, used here as
a blob detector). A straight edge (a scarp, an albedo boundary, a large crater's rim) has
the same gradient all along it; a crater's fades within its own width, so each candidate is
scored by how much stronger it is than the two points one crater radius away across its
gradient direction ("end-stopping"). The best-scored candidates, spread out by non-maximum
suppression, become square boxes whose side is proportional to the scale.

Pixels equal to 0 are taken as no data (the black border of a map-projected image) and
propose nothing. Figures on the shared CTX tiles: docs/landmarks.md.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .geometry import Box, as_array, overlapping_pairs
from .merge import PROPOSAL_ANNOTATOR

DEFAULT_PER_MEGAPIXEL = 150
SIZE_PER_SIGMA = 5.0


def _normalised(gray: np.ndarray, valid: np.ndarray) -> np.ndarray:
    image = gray.astype(np.float32)
    values = image[valid]
    if values.size == 0:
        return np.zeros_like(image)
    median = float(np.median(values))
    spread = float(np.median(np.abs(values - median))) * 1.4826 or float(values.std()) or 1.0
    image = (image - median) / spread
    image[~valid] = 0.0  # the median: no data contributes no gradient of its own
    return image


def _scale_responses(image: np.ndarray, sigmas: np.ndarray):
    """Per scale: the normalised gradient magnitude and the gradient's components."""
    for sigma in sigmas:
        along_y = ndimage.gaussian_filter(image, sigma, order=(1, 0))
        along_x = ndimage.gaussian_filter(image, sigma, order=(0, 1))
        yield sigma * np.hypot(along_x, along_y), along_x, along_y


def _candidates(image, valid, sigmas, wanted):
    """The strongest space-scale maxima: arrays (y, x, scale index, strength, end-stop score)."""
    stack, directions = [], []
    for magnitude, along_x, along_y in _scale_responses(image, sigmas):
        stack.append(magnitude)
        directions.append((along_x, along_y))
    stack = np.stack(stack)
    peaks = stack == ndimage.maximum_filter(stack, size=(3, 5, 5), mode="nearest")
    # Nothing on or next to the no-data border: its step would look like a crater wall.
    margin = ndimage.binary_erosion(valid, iterations=int(2 * sigmas[-1]) + 1, border_value=1)
    peaks &= margin[None]
    scale, y, x = np.nonzero(peaks)
    strength = stack[scale, y, x]
    keep = np.argsort(-strength, kind="stable")[:wanted]
    scale, y, x, strength = scale[keep], y[keep], x[keep], strength[keep]
    beside = np.zeros(len(keep), dtype=np.float32)
    height, width = image.shape
    for index, sigma in enumerate(sigmas):
        chosen = scale == index
        if not chosen.any():
            continue
        along_x, along_y = directions[index]
        gx, gy = along_x[y[chosen], x[chosen]], along_y[y[chosen], x[chosen]]
        norm = np.hypot(gx, gy) + 1e-9
        # One crater radius away, across the gradient (along a would-be edge), both sides.
        reach = SIZE_PER_SIGMA * sigma / 2.0
        side = []
        for sign in (-1.0, 1.0):
            sample_y = np.clip(y[chosen] + sign * reach * gx / norm, 0, height - 1)
            sample_x = np.clip(x[chosen] - sign * reach * gy / norm, 0, width - 1)
            side.append(ndimage.map_coordinates(stack[index], [sample_y, sample_x], order=1))
        beside[chosen] = np.maximum(side[0], side[1])
    return y, x, scale, strength, strength - beside


def _suppress(corners: np.ndarray, limit: int, max_iou: float) -> list[int]:
    """Greedy non-maximum suppression over rows already sorted best first."""
    left, right, _ = overlapping_pairs(corners, min_iou=max_iou)
    later = {}
    for first, second in zip(left.tolist(), right.tolist(), strict=True):
        later.setdefault(first, []).append(second)
    suppressed = np.zeros(len(corners), dtype=bool)
    kept = []
    for index in range(len(corners)):
        if suppressed[index]:
            continue
        kept.append(index)
        if len(kept) >= limit:
            break
        suppressed[later.get(index, [])] = True
    return kept


def propose(gray: np.ndarray, *, min_size: float = 22.0, max_size: float = 200.0,
            per_megapixel: float = DEFAULT_PER_MEGAPIXEL, scales_per_octave: int = 4,
            max_iou: float = 0.3, end_stop: bool = True) -> list[Box]:
    """Crater-like boxes on a 2-D uint8 image, best first, at most per_megapixel per 10^6 px.

    Boxes are squares from min_size to max_size pixels across (a 22-pixel box still
    overlaps a 16-pixel crater at IoU 0.53; smaller scales mostly fire on noise), annotator
    ``PROPOSAL_ANNOTATOR``, label "crater", score the detector's strength (higher is
    more crater-like; comparable within one image only).
    """
    gray = np.asarray(gray)
    if gray.ndim != 2:
        raise ValueError(f"propose needs a 2-D grayscale image, not shape {gray.shape}")
    if not 0 < min_size < max_size:
        raise ValueError("min_size must be positive and below max_size")
    limit = int(per_megapixel * gray.size / 1e6)
    if limit < 1 or min(gray.shape) < 2 * min_size:
        return []
    valid = gray > 0
    image = _normalised(gray, valid)
    octaves = np.log2(max_size / min_size)
    sigmas = np.geomspace(min_size, max_size, int(round(octaves * scales_per_octave)) + 1)
    sigmas = sigmas / SIZE_PER_SIGMA
    y, x, scale, strength, stopped = _candidates(image, valid, sigmas, wanted=6 * limit)
    score = stopped if end_stop else strength
    order = np.argsort(-score, kind="stable")
    half = SIZE_PER_SIGMA * sigmas[scale[order]] / 2.0
    centre_x, centre_y = x[order] + 0.5, y[order] + 0.5
    corners = np.stack([centre_x - half, centre_y - half, centre_x + half, centre_y + half], 1)
    kept = _suppress(corners, limit, max_iou)
    return [Box(*(float(v) for v in corners[i]), label="crater",
                annotator=PROPOSAL_ANNOTATOR, score=float(score[order][i])) for i in kept]


def boxes_array(boxes: list[Box]) -> np.ndarray:
    """The proposals' corners as an (n, 4) array (for scoring against other boxes)."""
    return as_array(boxes)
