"""Reading parts of an observation's stored original (pyvips, random access), as 8-bit
Pillow images or numpy arrays, for tile pictures, landmark crops and proposals.

The original lives in the observation store (observations/files.py); a JPEG 2000 is decoded
whole by Pillow there, any other format is read by pyvips only where a region is asked for.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

from .. import storage
from ..models import Observation
from ..observations import files


def open_original(observation: Observation):
    """The observation's original as a pyvips image, 8-bit with 1 or 3 bands, read where a
    region is asked for (observations/files.open_for_tiling, the one 8-bit reading)."""
    path = storage.path_for_key(files.observation_store(), observation.image_key)
    extension = observation.image_key.rsplit(".", 1)[-1]
    return files.open_for_tiling(path, extension, access="random")


def region_array(image, left: int, top: int, right: int, bottom: int) -> np.ndarray:
    """Pixels [top:bottom, left:right] of a pyvips image (clipped to it), as a numpy array."""
    left, top = max(int(left), 0), max(int(top), 0)
    right, bottom = min(int(right), image.width), min(int(bottom), image.height)
    part = image.crop(left, top, max(right - left, 1), max(bottom - top, 1))
    array = np.ndarray(buffer=part.write_to_memory(), dtype=np.uint8,
                       shape=(part.height, part.width, part.bands))
    return array[:, :, 0] if part.bands == 1 else array


def region_picture(image, left: int, top: int, right: int, bottom: int) -> Image.Image:
    """A region of a pyvips image as a Pillow image (L or RGB)."""
    return Image.fromarray(region_array(image, left, top, right, bottom))


def gray_array(image) -> np.ndarray:
    """The whole image as an 8-bit grayscale numpy array."""
    gray = image.colourspace("b-w") if image.bands == 3 else image
    return region_array(gray, 0, 0, gray.width, gray.height)
