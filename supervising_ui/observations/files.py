"""An observation's files: the original (managed storage), its format and size, its deep-zoom tiles.

Originals are content-addressed like images (storage.py), in IMAGE_STORE (the orphan sweep,
importing/orphans.py, keeps the files an observation row names). Deep-zoom tiles are made from the original by the tiling job
(tiling.py) into ``deepzoom/<observation id>/`` beside it; their paths are built from
integers only (tile_path), never from a request's text.

PNG, JPEG and TIFF are read by libvips (pyvips); JPEG 2000 by Pillow's OpenJPEG decoder
(the pyvips binary wheel has no JPEG 2000 loader), decoded whole into memory before tiling.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from flask import current_app

from ..images import allow_pillow_up_to

# The extension of the stored copy per format, as storage.KEY_PATTERN allows.
FORMATS = {"jpegload": "jpg", "pngload": "png", "tiffload": "tif", "jp2": "jp2"}
# Over this many pixels an observation is refused (a HiRISE RDR has about 1.2 billion).
MAX_OBSERVATION_PIXELS = 4_000_000_000
DEEPZOOM_TILE = 256
DEEPZOOM_OVERLAP = 1
DEEPZOOM_FORMAT = "jpg"
JP2_MAGIC = (b"\x00\x00\x00\x0cjP  \r\n\x87\n", b"\xff\x4f\xff\x51")


class ObservationFileRejected(ValueError):
    """An image file that cannot become an observation, with the reason in words."""


@dataclass(frozen=True)
class ImageProbe:
    """What the header of an observation's image says."""

    extension: str
    width: int
    height: int
    bands: int


def observation_store() -> Path:
    """Return the managed store of the observations' originals (IMAGE_STORE)."""
    return Path(current_app.config["IMAGE_STORE"])


def deepzoom_folder(observation_id: int) -> Path:
    """Return the folder of an observation's deep-zoom tiles (beside IMAGE_STORE)."""
    return Path(current_app.config["IMAGE_STORE"]).parent / "deepzoom" / str(int(observation_id))


def probe_image(path: str | Path) -> ImageProbe:
    """Read the image's header; raise ObservationFileRejected if it is no image we can tile."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
    except OSError as error:
        raise ObservationFileRejected(f"cannot read the image ({error.strerror or error})") \
            from error
    if head.startswith(JP2_MAGIC):
        return _probe_jp2(path)
    import pyvips
    try:
        image = pyvips.Image.new_from_file(str(path), access="sequential")
        loader = image.get("vips-loader")
    except pyvips.Error as error:
        raise ObservationFileRejected(
            "not an image libvips can read (PNG, JPEG, TIFF or JPEG 2000): "
            f"{str(error).strip().splitlines()[0][:200]}") from error
    if loader not in FORMATS:
        raise ObservationFileRejected(f"format {loader.removesuffix('load')} is not accepted: "
                                      "use PNG, JPEG, TIFF or JPEG 2000")
    return _checked(ImageProbe(FORMATS[loader], image.width, image.height, image.bands))


def _probe_jp2(path: Path) -> ImageProbe:
    """The header of a JPEG 2000 file, through Pillow."""
    from PIL import Image, UnidentifiedImageError
    allow_pillow_up_to(MAX_OBSERVATION_PIXELS)  # raised where lower, never switched off
    try:
        with Image.open(path) as image:
            width, height, bands = image.width, image.height, len(image.getbands())
    except Image.DecompressionBombError:
        raise ObservationFileRejected(
            f"the JPEG 2000 image is over the limit of {MAX_OBSERVATION_PIXELS} pixels") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ObservationFileRejected(f"corrupt JPEG 2000 file ({error})") from error
    return _checked(ImageProbe("jp2", width, height, bands))


def _checked(probe: ImageProbe) -> ImageProbe:
    """Refuse images with no pixels or too many."""
    if probe.width < 1 or probe.height < 1:
        raise ObservationFileRejected("the image has no pixels")
    if probe.width * probe.height > MAX_OBSERVATION_PIXELS:
        raise ObservationFileRejected(
            f"{probe.width}x{probe.height} is over the limit of {MAX_OBSERVATION_PIXELS} pixels")
    return probe


def open_for_tiling(path: str | Path, extension: str, access: str = "sequential"):
    """Return the stored original as a pyvips image (8-bit, 1 or 3 bands) ready for dzsave.

    access "sequential" reads it once top to bottom (dzsave); "random" lets a caller cut
    regions anywhere (crops, tile pictures).
    """
    import pyvips
    if extension == "jp2":
        import numpy as np
        from PIL import Image
        allow_pillow_up_to(MAX_OBSERVATION_PIXELS)  # the import checked its size already
        with Image.open(path) as decoded:
            array = np.asarray(decoded)
        image = pyvips.Image.new_from_array(array)
    else:
        image = pyvips.Image.new_from_file(str(path), access=access, fail=True)
    if image.format != "uchar":  # 16-bit or float: stretched to 0-255 as images.py does
        if access != "random" and extension != "jp2":  # min and max read it all: a 2nd pass
            image = pyvips.Image.new_from_file(str(path), access="random", fail=True)
        low, high = image.min(), image.max()
        image = ((image - low) * (255.0 / max(high - low, 1e-9))).cast("uchar")
    if image.bands == 2 or image.bands > 3:  # grey + alpha, or RGBA: the alpha dropped
        image = image[0] if image.bands == 2 else image[0:3]
    return image


def deepzoom_levels(width: int, height: int) -> int:
    """Return the number of deep-zoom levels (level 0 is 1x1 pixel, the last is full size)."""
    return math.ceil(math.log2(max(width, height))) + 1


def level_size(width: int, height: int, level: int) -> tuple[int, int]:
    """Return the image's size at a deep-zoom level."""
    shrink = 2 ** (deepzoom_levels(width, height) - 1 - level)
    return math.ceil(width / shrink), math.ceil(height / shrink)


def tile_path(observation_id: int, width: int, height: int, level: int, column: int,
              row: int) -> Path | None:
    """Return the file of one deep-zoom tile, or None where level, column or row is out of range."""
    if not 0 <= level < deepzoom_levels(width, height):
        return None
    level_width, level_height = level_size(width, height, level)
    if not (0 <= column < math.ceil(level_width / DEEPZOOM_TILE)
            and 0 <= row < math.ceil(level_height / DEEPZOOM_TILE)):
        return None
    return (deepzoom_folder(observation_id) / "image_files" / str(int(level))
            / f"{int(column)}_{int(row)}.{DEEPZOOM_FORMAT}")
