"""The one image decoder: stored bytes or files -> what people and models see.

Import validation, thumbnails, the storage reader and the classifier's loader all decode here,
so a 16-bit (or 32-bit integer, or float) image looks the same to each of them: stretched from
its darkest to its brightest value over 0-255, never clipped to white at 255.
No Flask here: the ML package imports it.
"""
from __future__ import annotations

import io
import os
from typing import Collection

import numpy as np
from PIL import Image, UnidentifiedImageError

# Pillow modes holding more than 8 bits per pixel: decoded by stretching, never by clipping.
WIDE_MODES = ("I", "I;16", "I;16L", "I;16B", "I;16N", "F")


class ImageRejected(ValueError):
    """A file that is not an image this tool accepts, with the reason in words."""


def allow_pillow_up_to(max_pixels: int) -> None:
    """Raise Pillow's process-wide bomb guard to the configured limit where that is higher.

    Never lowered: a small limit for one app must not make Pillow refuse images elsewhere in
    the process; the configured limit itself is enforced by decode_bytes from the header.
    """
    if Image.MAX_IMAGE_PIXELS is not None and max_pixels > Image.MAX_IMAGE_PIXELS:
        Image.MAX_IMAGE_PIXELS = max_pixels


def decode_bytes(data: bytes, max_pixels: int, formats: Collection[str]) -> Image.Image:
    """Decode data fully and return the image, or raise ImageRejected saying why.

    The format and the pixel count are checked from the header, before a pixel is decoded.
    """
    allow_pillow_up_to(max_pixels)
    try:
        with Image.open(io.BytesIO(data)) as image:
            image_format, (width, height) = image.format, image.size
            if image_format not in formats:
                raise ImageRejected(f"format {image_format} is not accepted: use one of "
                                    f"{', '.join(sorted(formats))}")
            if width * height > max_pixels:
                raise ImageRejected(_bomb_message(width, height, max_pixels))
            image.load()  # decodes every pixel: truncated or corrupt data fails here
    except ImageRejected:
        raise
    except Image.DecompressionBombError as error:
        raise ImageRejected(f"decompression bomb refused ({error})") from error
    except UnidentifiedImageError as error:
        raise ImageRejected("not an image (or a format Pillow cannot read)") from error
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise ImageRejected(f"corrupt image data ({error})") from error
    if width < 1 or height < 1:
        raise ImageRejected("image has no pixels")
    return image


def _bomb_message(width: int, height: int, max_pixels: int) -> str:
    return (f"decompression bomb refused: {width}x{height} = {width * height} pixels is over "
            f"the limit of {max_pixels} (setting MAX_IMAGE_PIXELS)")


def open_file(path: str | os.PathLike, max_pixels: int | None = None,
              at_least: int | None = None) -> Image.Image:
    """Return the image in a file, decoded and detached from the file, as stored.

    at_least: a JPEG at least twice that size a side is decoded at a reduced scale (Pillow's
    draft mode: 1/2, 1/4 or 1/8 in the decoder), never below at_least pixels a side.
    """
    if max_pixels is not None:
        allow_pillow_up_to(max_pixels)
    with Image.open(path) as image:
        if at_least is not None:
            image.draft(image.mode, (at_least, at_least))  # no-op for other formats
        image.load()
        return image


def eight_bit(image: Image.Image) -> Image.Image:
    """Return image as 8-bit L or RGB; wider grayscale is stretched from its min to its max."""
    if image.mode not in WIDE_MODES:
        return image.convert("L" if image.mode in ("1", "L", "LA") else "RGB")
    values = np.asarray(image)
    low, high = float(np.nanmin(values)), float(np.nanmax(values))
    scale = 255.0 / (high - low or 1.0)
    if values.dtype.kind == "u" and values.itemsize == 2:
        # A 65536-entry table: a 90-megapixel image needs no float copy of itself.
        table = np.rint((np.arange(65536) - low) * scale).clip(0, 255).astype(np.uint8)
        return Image.fromarray(table[values])
    scaled = np.nan_to_num((values.astype(np.float32) - low) * scale)
    return Image.fromarray(np.rint(scaled).clip(0, 255).astype(np.uint8))


def gray_pixels(path: str | os.PathLike, size: int) -> np.ndarray:
    """What a classifier sees of the image in a file: (size, size) 8-bit grayscale pixels."""
    gray = eight_bit(open_file(path, at_least=size)).convert("L")
    if gray.size != (size, size):
        gray = gray.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(gray, dtype=np.uint8).copy()


def color_pixels(path: str | os.PathLike, size: int) -> np.ndarray:
    """The image in a file in colour: (3, size, size) 8-bit red, green and blue (gray: 3 equal)."""
    color = eight_bit(open_file(path, at_least=size)).convert("RGB")
    if color.size != (size, size):
        color = color.resize((size, size), Image.Resampling.BILINEAR)
    return np.ascontiguousarray(np.asarray(color, dtype=np.uint8).transpose(2, 0, 1))


def thumbnail_jpeg(path: str | os.PathLike, pixels: int, quality: int = 85) -> bytes:
    """What a person sees in the image table: a JPEG at most `pixels` a side, as bytes."""
    with Image.open(path) as image:
        image.draft("RGB", (pixels, pixels))  # JPEG: decode at reduced size
        small = eight_bit(image)
    small.thumbnail((pixels, pixels))
    buffer = io.BytesIO()
    small.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()
