"""Machine proposals on synthetic craters (a shadowed and a lit wall) and on blank images."""

import numpy as np
import pytest
from scipy import ndimage

from supervising_ui.landmarks.geometry import Box, iou_matrix
from supervising_ui.landmarks.merge import PROPOSAL_ANNOTATOR
from supervising_ui.landmarks.proposals import propose


def _craters(size=512, count=12, seed=5):
    rng = np.random.default_rng(seed)
    image = rng.normal(120, 4, (size, size))
    yy, xx = np.mgrid[0:size, 0:size]
    truth = []
    for index in range(count):
        radius = 10 + 3 * (index % 5)
        cx, cy = 40 + (index % 4) * 120, 50 + (index // 4) * 150
        inside = (xx - cx) ** 2 + (yy - cy) ** 2 < radius ** 2
        # A bowl lit from the right: its shading ramps from shadow (left) to lit wall (right).
        image[inside] += 40 * (xx[inside] - cx) / radius
        truth.append(Box.from_center(cx, cy, 2 * radius))
    image = ndimage.gaussian_filter(image, 1.0)
    return np.clip(image, 1, 255).astype(np.uint8), truth


def test_finds_synthetic_craters():
    image, truth = _craters()
    boxes = propose(image, min_size=12, max_size=80)
    assert 0 < len(boxes) <= int(150 * image.size / 1e6)
    assert all(box.annotator == PROPOSAL_ANNOTATOR and box.score is not None for box in boxes)
    found = (iou_matrix(truth, boxes).max(axis=1) >= 0.5).mean()
    assert found >= 0.75


def test_limit_blank_and_no_data():
    image, _ = _craters()
    assert len(propose(image, per_megapixel=20)) <= int(20 * image.size / 1e6)
    assert propose(np.zeros((300, 300), dtype=np.uint8)) == []
    # A black no-data border (as map-projected images have) proposes nothing along its edge.
    flat = np.full((400, 400), 120, dtype=np.uint8)
    flat[:, :150] = 0
    assert all(box.x_min > 150 for box in propose(flat, min_size=12, max_size=60))
    with pytest.raises(ValueError, match="2-D"):
        propose(np.zeros((10, 10, 3), dtype=np.uint8))
