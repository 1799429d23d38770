"""Managed storage: content-addressed keys, atomic writes, and the one image validator."""
import io

import pytest
from PIL import Image

from supervising_ui import storage

from .helpers import image_bytes


def test_validate_reads_format_size_and_hash():
    data = image_bytes(3, size=(40, 30), image_format="PNG")
    info = storage.validate_image(data, max_pixels=10_000)
    assert (info.format, info.width, info.height) == ("PNG", 40, 30)
    assert info.content_hash == storage.content_hash(data)
    assert info.storage_key == f"{info.content_hash[:2]}/{info.content_hash[2:4]}/{info.content_hash}.png"


@pytest.mark.parametrize("data, reason", [
    (b"this is a text file, not an image", "not an image"),
    (image_bytes(1, size=(64, 64))[:200], "corrupt image data"),
    (b"", "not an image"),
])
def test_validate_rejects_non_images_and_truncated_files(data, reason):
    with pytest.raises(storage.ImageRejected, match=reason):
        storage.validate_image(data, max_pixels=10_000)


def test_validate_rejects_formats_browsers_cannot_show():
    buffer = io.BytesIO()
    Image.new("L", (8, 8)).save(buffer, format="TIFF")
    with pytest.raises(storage.ImageRejected, match="format TIFF is not accepted"):
        storage.validate_image(buffer.getvalue(), max_pixels=10_000)


def test_configured_pixel_limit_is_enforced_before_decoding():
    data = image_bytes(1, size=(100, 50))
    with pytest.raises(storage.ImageRejected, match="decompression bomb.*5000 pixels.*4999"):
        storage.validate_image(data, max_pixels=4_999)
    assert storage.validate_image(data, max_pixels=5_000).width == 100
    assert Image.MAX_IMAGE_PIXELS >= 89_478_485, "a small app limit never lowers Pillow's own"


def test_pillow_decompression_bomb_error_is_a_rejection():
    """A small PNG that claims 200 million pixels trips Pillow's own guard at open."""
    buffer = io.BytesIO()
    Image.new("1", (20_000, 10_000)).save(buffer, format="PNG")
    assert len(buffer.getvalue()) < 100_000
    with pytest.raises(storage.ImageRejected, match="decompression bomb"):
        storage.validate_image(buffer.getvalue(), max_pixels=89_478_485)


def test_store_is_atomic_idempotent_and_keyed(tmp_path):
    data = image_bytes(5)
    info = storage.validate_image(data, max_pixels=10_000)
    path = storage.store_bytes(tmp_path, info.storage_key, data)
    assert path.read_bytes() == data
    assert storage.store_bytes(tmp_path, info.storage_key, data) == path
    assert not list(path.parent.glob(".incoming-*")), "no temporary file is left behind"
    assert storage.read_bytes(tmp_path, info.storage_key) == data
    assert storage.open_image(tmp_path, info.storage_key).size == (32, 24)
    assert storage.mimetype_for_key(info.storage_key) == "image/jpeg"


@pytest.mark.parametrize("key", ["../etc/passwd", "/etc/passwd", "ab/cd/x.jpg",
                                 "ab/cd/" + "0" * 64 + ".exe", ""])
def test_path_for_key_refuses_anything_but_a_key(tmp_path, key):
    with pytest.raises(ValueError, match="not a storage key"):
        storage.path_for_key(tmp_path, key)
