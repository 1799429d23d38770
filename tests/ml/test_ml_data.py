"""Splits never leak; the image loader and transform presets do what they say."""
import io

import numpy as np
import pytest
import torch
from PIL import Image

from supervising_ui.ml.data import (
    Preprocessing,
    Record,
    assert_no_leakage,
    augment,
    dihedral,
    load_image,
    random_resized_crops,
    read_manifest,
    records_from_frame,
    split_by_column,
    split_by_group,
    split_by_sol,
)
from supervising_ui.storage import file_content_hash as content_hash
from supervising_ui.storage import store_bytes, thumbnail_path, validate_image


def test_split_by_group_never_puts_a_group_on_both_sides():
    rng = np.random.default_rng(3)
    groups = rng.choice([f"obs{i}" for i in range(30)], size=500)
    for seed in range(5):
        splits = split_by_group(groups, val_fraction=0.25, seed=seed)
        train, val = set(groups[splits["train"]]), set(groups[splits["val"]])
        assert not train & val
        assert len(splits["train"]) + len(splits["val"]) == 500
        assert 0.15 < len(splits["val"]) / 500 < 0.45
        assert_no_leakage(groups, splits)


def test_assert_no_leakage_names_the_leaking_group():
    with pytest.raises(ValueError, match="obs1"):
        assert_no_leakage(["obs0", "obs1", "obs1"], {"train": np.array([0, 1]), "val": np.array([2])})


def test_split_by_sol_uses_inclusive_msl_ranges():
    splits = split_by_sol([3, 181, 182, 564, 565, 1060, 2, 1061, "n/a"])
    assert splits["train"].tolist() == [0, 1]
    assert splits["val"].tolist() == [2, 3]
    assert splits["test"].tolist() == [4, 5]


def test_split_by_column_ignores_empty_values():
    splits = split_by_column(["train", "val", "", "train", "test"])
    assert {k: v.tolist() for k, v in splits.items()} == {"train": [0, 3], "val": [1], "test": [4]}


def test_manifest_records_and_missing_images(image_set, tmp_path):
    manifest, root, frame = image_set
    loaded = read_manifest(manifest, root)
    records = records_from_frame(loaded, group_column="source_id")
    assert records[0] == Record(str(root / frame.filename[0]), "bright", "obs0")
    with pytest.raises(FileNotFoundError, match="18 images"):
        read_manifest(manifest, tmp_path)


def test_load_image_makes_resized_grayscale(tmp_path):
    path = tmp_path / "rgb.jpg"
    Image.new("RGB", (60, 40), (255, 0, 0)).save(path)
    pixels = load_image(path, 32)
    assert pixels.shape == (32, 32) and pixels.dtype == torch.uint8
    assert abs(int(pixels[16, 16]) - 76) <= 2  # ITU-R 601 luma of pure red
    assert content_hash(path) == content_hash(path) and len(content_hash(path)) == 64  # the storage's SHA-256


def test_load_image_sees_a_sixteen_bit_png_as_its_thumbnail_shows_it(tmp_path):
    """Values above 255 are stretched like the thumbnails people see, not clipped to white."""
    values = np.tile(np.linspace(0, 4000, 64).astype(np.uint16), (64, 1))
    buffer = io.BytesIO()
    Image.fromarray(values).save(buffer, format="PNG")
    info = validate_image(buffer.getvalue(), max_pixels=10_000)
    path = store_bytes(tmp_path / "store", info.storage_key, buffer.getvalue())
    thumbnail = Image.open(thumbnail_path(tmp_path / "store", tmp_path / "cache", info.storage_key))
    pixels = load_image(path, 64).numpy().astype(int)
    assert np.abs(np.asarray(thumbnail.convert("L"), dtype=int) - pixels).max() <= 6
    assert (pixels.min(), pixels.max()) == (0, 255)
    assert (pixels == 255).mean() < 0.05, "not clipped to white"
    assert abs(int(pixels[0, 32]) - round(values[0, 32] / 4000 * 255)) <= 1


def test_preprocessing_scalings():
    pixels = torch.tensor([[[0, 127], [255, 255]]], dtype=torch.uint8)
    tf = Preprocessing(2, "tf").to_input(pixels)
    assert tf.shape == (1, 3, 2, 2)
    assert torch.allclose(tf[0, :, 0, 0], torch.full((3,), -127 / 128))
    assert torch.allclose(tf[0, :, 0, 1], torch.zeros(3))
    imagenet = Preprocessing(2, "imagenet").to_input(pixels)
    assert torch.allclose(imagenet[0, :, 1, 1], (1 - torch.tensor([0.485, 0.456, 0.406]))
                          / torch.tensor([0.229, 0.224, 0.225]))


def test_dihedral_views_are_the_eight_distinct_symmetries():
    image = torch.arange(9, dtype=torch.uint8).reshape(3, 3)
    views = {tuple(dihedral(image, v).flatten().tolist()) for v in range(8)}
    assert len(views) == 8 and tuple(image.flatten().tolist()) in views


def test_augment_leaves_fixed_orientation_classes_alone():
    images = torch.arange(2 * 16, dtype=torch.uint8).reshape(2, 4, 4)
    generator = torch.Generator().manual_seed(0)
    for _ in range(10):
        out = augment(images, ["upright", "free"], generator, 8, fixed_classes=["upright"])
        assert torch.equal(out[0], images[0])


def test_percentile_stretch_makes_differently_exposed_images_alike():
    rng = np.random.default_rng(0)
    scene = rng.uniform(0, 1, (2, 32, 32))
    dim = torch.tensor(40 + 30 * scene[0], dtype=torch.float32).round().to(torch.uint8)
    bright = torch.tensor(120 + 120 * scene[0], dtype=torch.float32).round().to(torch.uint8)
    stretched = Preprocessing(image_size=32, stretch="percentile").to_input(torch.stack([dim, bright]))
    assert stretched.shape == (2, 3, 32, 32)
    assert stretched.min() == pytest.approx(-127 / 128) and stretched.max() == pytest.approx(1.0)
    # Same scene, other exposure: after the stretch they differ only by rounding.
    assert (stretched[0] - stretched[1]).abs().mean() < 0.03
    plain = Preprocessing(image_size=32).to_input(torch.stack([dim, bright]))
    assert (plain[0] - plain[1]).abs().mean() > 0.5
    flat = torch.full((1, 32, 32), 77, dtype=torch.uint8)  # no spread: no division by zero
    assert torch.isfinite(Preprocessing(image_size=32, stretch="percentile").to_input(flat)).all()
    with pytest.raises(ValueError, match="unknown stretch"):
        Preprocessing(stretch="gamma").to_input(flat)


def test_manifest_reader_is_the_importers(tmp_path):
    """The ml commands read manifests with the importer's reader: same errors, text values."""
    from supervising_ui.manifests import ManifestError
    (tmp_path / "a.png").write_bytes(b"x")
    manifest = tmp_path / "m.csv"
    manifest.write_bytes("\ufeffFileName,label,sol\na.png,crater,0042\n".encode())
    frame = read_manifest(manifest, tmp_path)
    assert frame["filename"].tolist() == ["a.png"] and frame["sol"].tolist() == ["0042"]
    manifest.write_bytes(b"name,label\na.png,crater\n")
    with pytest.raises(ManifestError, match="no 'filename' column"):
        read_manifest(manifest, tmp_path)
    manifest.write_bytes(b"filename,label\na.png,crater,extra\n")
    with pytest.raises(ValueError, match="line 2"):
        read_manifest(manifest, tmp_path)


def test_mixed_stretch_keeps_albedo_beside_the_stretched_texture():
    """mixed = channels raw, percentile, raw: same texture at other albedo stays apart."""
    rng = np.random.default_rng(1)
    texture = rng.uniform(0, 1, (32, 32))
    dark = torch.tensor(40 + 30 * texture, dtype=torch.float32).round().to(torch.uint8)
    bright = torch.tensor(170 + 30 * texture, dtype=torch.float32).round().to(torch.uint8)
    pixels = torch.stack([dark, bright])
    raw = Preprocessing(image_size=32, stretch="none").to_input(pixels)
    stretched = Preprocessing(image_size=32, stretch="percentile").to_input(pixels)
    mixed = Preprocessing(image_size=32, stretch="mixed").to_input(pixels)
    assert mixed.shape == (2, 3, 32, 32) and mixed.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(mixed[:, 0], raw[:, 0]) and torch.equal(mixed[:, 2], raw[:, 0])
    assert torch.equal(mixed[:, 1], stretched[:, 1])
    assert not torch.equal(mixed, raw) and not torch.equal(mixed, stretched)
    # The percentile stretch maps both albedos to (almost) one input; mixed keeps them apart.
    assert (stretched[0] - stretched[1]).abs().mean() < 0.03
    assert (mixed[0, 0] - mixed[1, 0]).abs().mean() > 0.9
    assert (mixed[0] - mixed[1]).abs().mean() > 0.6


def test_every_stretch_gets_its_own_embedding_cache():
    from supervising_ui.ml.embeddings import cache_key
    stretches = ("none", "percentile", "mixed", "color")
    assert len({cache_key("efficientnet_lite0", Preprocessing(stretch=s)) for s in stretches}) == 4


def test_color_input_is_the_images_red_green_and_blue(tmp_path):
    Image.new("RGB", (60, 40), (200, 30, 90)).save(tmp_path / "rgb.png")
    Image.new("L", (60, 40), 77).save(tmp_path / "gray.png")
    color = Preprocessing(image_size=32, stretch="color")
    pixels = color.load_images([tmp_path / "rgb.png", tmp_path / "gray.png"])
    assert pixels.shape == (2, 3, 32, 32) and pixels.dtype == torch.uint8
    assert pixels[0, :, 5, 5].tolist() == [200, 30, 90]
    assert pixels[1, :, 5, 5].tolist() == [77, 77, 77], "a grayscale image: three equal channels"
    network_input = color.to_input(pixels)
    assert network_input.shape == (2, 3, 32, 32)
    assert network_input.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(network_input[0, :, 5, 5], (torch.tensor([200.0, 30.0, 90.0]) - 127) / 128)
    gray = Preprocessing(image_size=32, stretch="none")
    assert gray.load_images([tmp_path / "rgb.png"]).shape == (1, 32, 32)
    assert torch.equal(network_input[1], gray.to_input(gray.load_images([tmp_path / "gray.png"]))[0])
    # Rotations turn the colour planes alike.
    assert torch.equal(dihedral(pixels, 1)[:, 0], dihedral(pixels[:, 0], 1))


def test_a_stretch_refuses_pixels_of_the_other_kind():
    with pytest.raises(ValueError, match="colour"):
        Preprocessing(image_size=4, stretch="color").to_input(torch.zeros((1, 4, 4), dtype=torch.uint8))
    with pytest.raises(ValueError, match="grayscale"):
        Preprocessing(image_size=4, stretch="mixed").to_input(torch.zeros((1, 3, 4, 4), dtype=torch.uint8))
    with pytest.raises(ValueError, match="unknown stretch"):
        Preprocessing(image_size=4, stretch="sepia").to_input(torch.zeros((1, 4, 4), dtype=torch.uint8))


def test_random_resized_crops_zoom_into_each_image_and_keep_its_shape():
    x = torch.arange(2 * 3 * 32 * 32, dtype=torch.float32).reshape(2, 3, 32, 32)
    x = x.contiguous(memory_format=torch.channels_last)
    out = random_resized_crops(x, 0.25, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.is_contiguous(memory_format=torch.channels_last)
    again = random_resized_crops(x, 0.25, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)  # the generator decides the crops
    for image, crop in zip(x, out, strict=True):
        # A crop lies inside its own image: its values stay within that image's range, and
        # a crop smaller than the whole spans less than the image does.
        assert image.min() <= crop.min() and crop.max() <= image.max()
        assert crop.max() - crop.min() < image.max() - image.min()
    whole = random_resized_crops(x, 1.0, torch.Generator().manual_seed(0))
    assert torch.allclose(whole, x)  # the whole image, resized to its own size
