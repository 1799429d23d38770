"""The classifier's crop of a landmark, made as the HiRISE landmark data set was made.

Wagstaff et al. (2018) cut each landmark as a square around its box with a 30-pixel border
and resized it to 227 x 227; the square's side is the box's longer side plus twice the
border, centred on the box, and where it leaves the image the crop is black (as the
data set's "edge" crops are).
"""
from __future__ import annotations

from PIL import Image

from .geometry import Box

BORDER = 30
CROP_SIZE = 227


def crop_square(box: Box, border: int = BORDER) -> tuple[int, int, int, int]:
    """The square (left, top, right, bottom) around box with border pixels on its longer side."""
    side = round(max(box.width, box.height) + 2 * border)
    center_x, center_y = box.center
    left, top = round(center_x - side / 2), round(center_y - side / 2)
    return left, top, left + side, top + side


def crop_landmark(image: Image.Image, box: Box, *, border: int = BORDER,
                  size: int = CROP_SIZE) -> Image.Image:
    """The landmark's square crop (black beyond the image's edge), resized to size x size."""
    if not box.is_valid():
        raise ValueError(f"cannot crop an empty box {box}")
    # Image.crop fills what lies outside the image with zeros (black).
    square = image.crop(crop_square(box, border))
    return square.resize((size, size), Image.Resampling.LANCZOS)
