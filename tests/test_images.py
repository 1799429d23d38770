"""The one decoder: 16-bit and float images look the same to thumbnails and to the classifier."""
import io

import numpy as np
import pytest
from PIL import Image

from supervising_ui import images, storage


def sixteen_bit_gradient() -> tuple[bytes, np.ndarray]:
    """A 64x64 16-bit grayscale PNG rising from 0 to 4000 left to right, and its values."""
    values = np.tile(np.linspace(0, 4000, 64).astype(np.uint16), (64, 1))
    buffer = io.BytesIO()
    Image.fromarray(values).save(buffer, format="PNG")
    return buffer.getvalue(), values


def test_a_sixteen_bit_png_gives_thumbnails_and_the_model_the_same_stretched_picture(tmp_path):
    data, values = sixteen_bit_gradient()
    info = storage.validate_image(data, max_pixels=10_000)
    assert (info.format, info.width, info.height) == ("PNG", 64, 64)
    path = storage.store_bytes(tmp_path / "store", info.storage_key, data)
    assert storage.open_image(tmp_path / "store", info.storage_key).mode.startswith("I")
    thumbnail = np.asarray(Image.open(storage.thumbnail_path(
        tmp_path / "store", tmp_path / "cache", info.storage_key)).convert("L"), dtype=int)
    seen_by_model = images.gray_pixels(path, 64).astype(int)
    assert thumbnail.shape == seen_by_model.shape == (64, 64)
    assert np.abs(thumbnail - seen_by_model).max() <= 6, "the same picture (up to JPEG loss)"
    expected = np.rint(values / 4000 * 255)
    assert np.abs(seen_by_model - expected).max() <= 1, "stretched from min to max"
    assert (seen_by_model == 255).mean() < 0.05, "not clipped to white above 255"


@pytest.mark.parametrize("mode", ["I;16", "I;16B", "I", "F"])
def test_wide_modes_are_stretched_alike(mode):
    _, values = sixteen_bit_gradient()
    if mode == "I;16B":
        image = Image.frombytes(mode, (64, 64), values.astype(">u2").tobytes())
    else:
        image = Image.fromarray(values).convert(mode)
    eight = images.eight_bit(image)
    assert eight.mode == "L"
    reference = np.asarray(images.eight_bit(Image.fromarray(values)))
    assert np.array_equal(np.asarray(eight), reference)
    assert (reference.min(), reference.max()) == (0, 255)


def test_eight_bit_images_keep_their_pixels():
    gray = Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16))
    assert np.array_equal(np.asarray(images.eight_bit(gray)), np.asarray(gray))
    assert images.eight_bit(Image.new("RGBA", (4, 4), (255, 0, 0, 10))).mode == "RGB"
    assert images.eight_bit(Image.new("1", (4, 4))).mode == "L"


def test_a_flat_image_is_not_divided_by_zero():
    flat = Image.fromarray(np.full((8, 8), 1234, dtype=np.uint16))
    assert np.asarray(images.eight_bit(flat)).max() == 0
