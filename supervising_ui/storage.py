"""Managed image storage: content-addressed files, atomic writes, the image validator.

An image is stored once under a key derived from the SHA-256 of its bytes
(``ab/cd/abcd...ef.jpg``) below the folder ``IMAGE_STORE``. Keys never come from a request:
pages serve images by database id, and ``path_for_key`` refuses anything that is not a key.
Decoding is images.py's job. This module imports no Flask, so the ML package can use it too.
"""
import hashlib
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from PIL.Image import Image as PILImage

from . import images

# Validation raises it: importers catch storage.ImageRejected.
ImageRejected = images.ImageRejected

# Formats that browsers display, mapped to the file extension of their stored copy.
# MPO is how Pillow names JPEGs from cameras that embed a second picture.
ACCEPTED_FORMATS = {"JPEG": "jpg", "MPO": "jpg", "PNG": "png", "GIF": "gif", "WEBP": "webp", "BMP": "bmp"}
MIMETYPES = {"jpg": "image/jpeg", "png": "image/png", "gif": "image/gif", "webp": "image/webp",
             "bmp": "image/bmp"}
# The digest that names stored bytes, keys the database and the embedding cache.
CONTENT_HASH = "sha256"
# tif and jp2: whole observations' originals (observations/files.py).
KEY_PATTERN = re.compile(r"^[0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{64}\.(jpg|png|gif|webp|bmp|tif|jp2)$")


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
    return hashlib.new(CONTENT_HASH, data).hexdigest()


def file_content_hash(path: str | os.PathLike) -> str:
    """Return content_hash() of a file's bytes, read in chunks."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, CONTENT_HASH).hexdigest()


def storage_key(digest: str, extension: str) -> str:
    """Return the key of a file with this digest: two folder levels keep folders small."""
    return f"{digest[:2]}/{digest[2:4]}/{digest}.{extension}"


def validate_image(data: bytes, max_pixels: int) -> ImageInfo:
    """Decode data fully (through images.py) and return its ImageInfo, or raise ImageRejected."""
    image = images.decode_bytes(data, max_pixels, ACCEPTED_FORMATS)
    return ImageInfo(content_hash(data), image.format, image.width, image.height)


def path_for_key(store: str | Path, key: str) -> Path:
    """Return the file of a storage key; refuse anything that is not a well-formed key."""
    if not KEY_PATTERN.match(key or ""):
        raise ValueError(f"not a storage key: {key!r}")
    return Path(store) / key


def mimetype_for_key(key: str) -> str:
    """Return the MIME type of the file stored under key."""
    return MIMETYPES[key.rsplit(".", 1)[-1]]


def store_bytes(store: str | Path, key: str, data: bytes) -> Path:
    """Write data under key atomically (temporary file, then rename); keep an existing copy.

    An existing copy gets a new modification time: the sweep of files no row names
    (importing/orphans.py) takes a file stored again as a new one.
    """
    path = path_for_key(store, key)
    if path.exists():  # content-addressed: an existing file already holds these bytes
        try:
            os.utime(path)
        except OSError:  # a copy the service may not touch: it stays all the same
            pass
        return path
    write_atomically(path, data)
    return path


def store_file(store: str | Path, key: str, source: str | Path) -> Path:
    """Copy the file source under key atomically, in chunks (files too big to hold in memory)."""
    path = path_for_key(store, key)
    if path.exists():
        os.utime(path)
        return path
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".incoming-")
    try:
        with os.fdopen(descriptor, "wb") as handle, open(source, "rb") as reader:
            shutil.copyfileobj(reader, handle, 1024 * 1024)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def write_atomically(path: Path, data: bytes) -> None:
    """Write data to path through a temporary file and a rename: readers never see half a file.

    The file is 0600 and new folders 0700 (less where the umask says so).
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".incoming-")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
        os.replace(temporary, path)  # mkstemp made it 0600: readable by this service's user only
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def read_bytes(store: str | Path, key: str) -> bytes:
    """Return the bytes stored under key."""
    return path_for_key(store, key).read_bytes()


def open_image(store: str | Path, key: str, max_pixels: int | None = None) -> PILImage:
    """Open the stored image under key with Pillow (decoded, detached from the file)."""
    return images.open_file(path_for_key(store, key), max_pixels)


THUMBNAIL_PIXELS = 128


def thumbnail_path(store: str | Path, cache: str | Path, key: str) -> Path:
    """Return a cached JPEG thumbnail (at most 128 px a side) of the image under key."""
    source = path_for_key(store, key)
    target = Path(cache) / "thumbnails" / f"{key}.jpg"
    if not target.is_file():
        write_atomically(target, images.thumbnail_jpeg(source, THUMBNAIL_PIXELS))
    return target
