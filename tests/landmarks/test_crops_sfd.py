"""The classifier's crop of a landmark and the crater size-frequency numbers."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from supervising_ui.landmarks import crops, sfd
from supervising_ui.landmarks.geometry import Box


def test_crop_is_the_box_square_with_a_30_pixel_border_at_227():
    image = Image.new("L", (400, 300), 0)
    image.paste(255, (100, 100, 160, 120))  # the landmark: 60 x 20, white
    crop = crops.crop_landmark(image, Box(100, 100, 160, 120))
    assert crop.size == (227, 227) and crop.mode == "L"
    assert crops.crop_square(Box(100, 100, 160, 120)) == (70, 50, 190, 170)
    pixels = np.asarray(crop)
    # 60 of the square's 120 pixels are the box: the middle half of the crop is white.
    assert pixels[113, 60:167].min() > 200 and pixels[113, :40].max() < 50


def test_crop_beyond_the_edge_is_black():
    image = Image.new("L", (100, 100), 200)
    crop = np.asarray(crops.crop_landmark(image, Box(0, 0, 20, 20)))
    assert crop[0, 0] == 0 and crop[-1, -1] == 200
    with pytest.raises(ValueError, match="empty box"):
        crops.crop_landmark(image, Box(5, 5, 5, 9))


def test_cumulative_size_frequency_counts_ties_alike():
    diameters, per_km2 = sfd.cumulative_sfd([10, 20, 20, 5, float("nan")], 2.0)
    assert diameters.tolist() == [20, 20, 10, 5]
    assert per_km2.tolist() == [1.0, 1.0, 1.5, 2.0]
    with pytest.raises(ValueError, match="area"):
        sfd.cumulative_sfd([1.0], 0)
