"""Managed image storage: content-addressed files, atomic writes, the one image validator.

An image is stored once under a key derived from the SHA-256 of its bytes
(``ab/cd/abcd...ef.jpg``) below the folder ``IMAGE_STORE``. Keys never come from a request:
pages serve images by database id, and ``path_for_key`` refuses anything that is not a key.
This module imports no Flask, so the ML package can use it too.
"""
import hashlib
import io
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

# Formats that browsers display, mapped to the file extension of their stored copy.
# MPO is how Pillow names JPEGs from cameras that embed a second picture.
ACCEPTED_FORMATS = {"JPEG": "jpg", "MPO": "jpg", "PNG": "png", "GIF": "gif", "WEBP": "webp", "BMP": "bmp"}
MIMETYPES = {"jpg": "image/jpeg", "png": "image/png", "gif": "image/gif", "webp": "image/webp",
             "bmp": "image/bmp"}
KEY_PATTERN = re.compile(r"^[0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{64}\.(jpg|png|gif|webp|bmp)$")


class ImageRejected(ValueError):
    """A file that is not an image this tool accepts, with the reason in words."""


@dataclass(frozen=True)
class ImageInfo:
    """What validation learned about an image's bytes."""

    content_hash: str
    format: str
    width: int
    height: int

    @property
    def extension(self) -> str:
        """Return the extension of the stored copy."""
        return ACCEPTED_FORMATS[self.format]

    @property
    def storage_key(self) -> str:
        """Return the content-addressed key under which these bytes are stored."""
        return storage_key(self.content_hash, self.extension)


def content_hash(data: bytes) -> str:
    """Return the SHA-256 hex digest that identifies an image's bytes."""
    return hashlib.sha256(data).hexdigest()


def storage_key(digest: str, extension: str) -> str:
    """Return the key of a file with this digest: two folder levels keep folders small."""
    return f"{digest[:2]}/{digest[2:4]}/{digest}.{extension}"


def validate_image(data: bytes, max_pixels: int) -> ImageInfo:
    """Decode data fully and return its ImageInfo, or raise ImageRejected saying why."""
    allow_pillow_up_to(max_pixels)
    try:
        with Image.open(io.BytesIO(data)) as image:
            image_format, (width, height) = image.format, image.size
            if image_format not in ACCEPTED_FORMATS:
                raise ImageRejected(f"format {image_format} is not accepted: use one of "
                                    f"{', '.join(sorted(ACCEPTED_FORMATS))}")
            if width * height > max_pixels:  # checked before decoding a single pixel
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
    return ImageInfo(content_hash(data), image_format, width, height)


def allow_pillow_up_to(max_pixels: int) -> None:
    """Raise Pillow's process-wide bomb guard to the configured limit where that is higher.

    Never lowered: a small limit for one app must not make Pillow refuse images elsewhere in
    the process; the configured limit itself is enforced by validate_image from the header.
    """
    if Image.MAX_IMAGE_PIXELS is not None and max_pixels > Image.MAX_IMAGE_PIXELS:
        Image.MAX_IMAGE_PIXELS = max_pixels


def _bomb_message(width: int, height: int, max_pixels: int) -> str:
    return (f"decompression bomb refused: {width}x{height} = {width * height} pixels is over "
            f"the limit of {max_pixels} (setting MAX_IMAGE_PIXELS)")


def path_for_key(store: str | Path, key: str) -> Path:
    """Return the file of a storage key; refuse anything that is not a well-formed key."""
    if not KEY_PATTERN.match(key or ""):
        raise ValueError(f"not a storage key: {key!r}")
    return Path(store) / key


def mimetype_for_key(key: str) -> str:
    """Return the MIME type of the file stored under key."""
    return MIMETYPES[key.rsplit(".", 1)[-1]]


def store_bytes(store: str | Path, key: str, data: bytes) -> Path:
    """Write data under key atomically (temporary file, then rename); keep an existing copy."""
    path = path_for_key(store, key)
    if path.exists():  # content-addressed: an existing file already holds these bytes
        return path
    write_atomically(path, data)
    return path


def write_atomically(path: Path, data: bytes) -> None:
    """Write data to path through a temporary file and a rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".incoming-")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def read_bytes(store: str | Path, key: str) -> bytes:
    """Return the bytes stored under key."""
    return path_for_key(store, key).read_bytes()


def open_image(store: str | Path, key: str, max_pixels: int | None = None) -> Image.Image:
    """Open the stored image under key with Pillow (decoded, detached from the file)."""
    if max_pixels is not None:
        allow_pillow_up_to(max_pixels)
    with Image.open(path_for_key(store, key)) as image:
        image.load()
        return image


THUMBNAIL_PIXELS = 128


def thumbnail_path(store: str | Path, cache: str | Path, key: str) -> Path:
    """Return a cached JPEG thumbnail (at most 128 px a side) of the image under key."""
    source = path_for_key(store, key)
    target = Path(cache) / "thumbnails" / f"{key}.jpg"
    if target.is_file():
        return target
    with Image.open(source) as image:
        image.draft("RGB", (THUMBNAIL_PIXELS, THUMBNAIL_PIXELS))  # JPEG: decode at reduced size
        image.thumbnail((THUMBNAIL_PIXELS, THUMBNAIL_PIXELS))
        small = _eight_bit(image)
    buffer = io.BytesIO()
    small.save(buffer, format="JPEG", quality=85)
    write_atomically(target, buffer.getvalue())
    return target


def _eight_bit(image: Image.Image) -> Image.Image:
    """Return image as 8-bit L or RGB; 16-bit and float images are stretched min to max."""
    if image.mode in ("I", "I;16", "I;16B", "F"):
        values = np.asarray(image, dtype=np.float64)
        low, high = float(values.min()), float(values.max())
        scaled = (values - low) / (high - low or 1.0) * 255.0
        return Image.fromarray(scaled.astype(np.uint8))
    return image.convert("L" if image.mode in ("1", "L", "LA") else "RGB")
