"""The serving path: the ONNX graph of a model directory in ONNX Runtime against torch, its
export on first use, the embedding cache, int8, and JPEG draft decoding."""
import io

import numpy as np
import pytest
import torch
from PIL import Image

from supervising_ui import images
from supervising_ui.ml.data import Preprocessing, read_manifest, records_from_frame, with_hashes
from supervising_ui.ml.model_dir import load_model
from supervising_ui.ml.onnx_export import onnx_path, quantize_int8
from supervising_ui.ml.predict import proba_from_model
from supervising_ui.ml.serving import OnnxPredictor, network_input, prefetched, serving_views
from supervising_ui.ml.train import TrainConfig, fit


@pytest.fixture
def split(image_set):
    manifest, root, _ = image_set
    frame = read_manifest(manifest, root)
    records = records_from_frame(frame, group_column="source_id")
    train = [r for r, s in zip(records, frame["split"], strict=True) if s == "train"]
    val = [r for r, s in zip(records, frame["split"], strict=True) if s == "val"]
    return train, val


@pytest.fixture
def quick_model(split, tmp_path):
    """The app's quick model: the last block and the head over cached activations, 4 views."""
    train, val = split
    fit(train, TrainConfig(mode="head", epochs=1), tmp_path / "quick", val,
        cache_dir=tmp_path / "train-cache")
    return tmp_path / "quick"


def torch_proba(model_dir, paths, views):
    model, info = load_model(model_dir)
    return proba_from_model(model, info.config, paths, tta_views=views)


def test_the_quick_model_exported_on_first_use_predicts_as_torch_does(quick_model, split):
    _, val = split
    paths = [r.path for r in val] * 3  # more than a batch: several prefetched batches
    assert not onnx_path(quick_model).exists()
    predictor = OnnxPredictor(quick_model, batch_size=4)
    assert not onnx_path(quick_model).exists(), "not before an image needs the graph"
    predictor.proba(paths[:1])
    assert onnx_path(quick_model).is_file(), "exported into the model directory"
    assert predictor.views == serving_views(predictor.info.config)
    for views in (1, 4):
        served = OnnxPredictor(quick_model, views=views, batch_size=4).proba(paths)
        np.testing.assert_allclose(served, torch_proba(quick_model, paths, views), atol=2e-4)
        np.testing.assert_allclose(served.sum(axis=1), 1.0, atol=1e-6)


def test_a_fine_tuned_model_with_a_percentile_stretch(split, tmp_path):
    train, val = split
    fit(train, TrainConfig(mode="finetune", epochs=1, tta_views=2), tmp_path / "fine", val)
    paths = [r.path for r in val]
    served = OnnxPredictor(tmp_path / "fine", batch_size=5).proba(paths)
    np.testing.assert_allclose(served, torch_proba(tmp_path / "fine", paths, 2), atol=2e-4)


def test_cached_features_spare_the_decoding_and_give_the_same_answer(quick_model, split, tmp_path,
                                                                      monkeypatch):
    _, val = split
    records = with_hashes(val)
    predictor = OnnxPredictor(quick_model, views=2)
    first = predictor.proba(records, cache_dir=tmp_path / "cache")
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == 2 * len(records), "each view kept"

    def refuse(*args, **kwargs):
        raise AssertionError("an image was decoded")
    monkeypatch.setattr(images, "open_file", refuse)
    again = OnnxPredictor(quick_model, views=2).proba(records, cache_dir=tmp_path / "cache")
    np.testing.assert_allclose(again, first, atol=2e-3)  # features kept as float16


def test_int8_quantization_calibrated_on_images(quick_model, split):
    train, val = split
    preprocessing = OnnxPredictor(quick_model).preprocessing
    paths = [r.path for r in train]
    quantize_int8(quick_model, (network_input(paths[i:i + 4], preprocessing, [0])
                                for i in range(0, len(paths), 4)))
    assert onnx_path(quick_model, "int8").stat().st_size < onnx_path(quick_model).stat().st_size / 2
    eight = OnnxPredictor(quick_model, "int8", views=1).proba([r.path for r in val])
    full = OnnxPredictor(quick_model, "fp32", views=1).proba([r.path for r in val])
    np.testing.assert_allclose(eight.sum(axis=1), 1.0, atol=1e-6)
    assert np.mean(eight.argmax(1) == full.argmax(1)) >= 0.8
    assert np.abs(eight - full).max() < 0.5


def test_prefetched_batches_arrive_in_order(split):
    _, val = split
    preprocessing = Preprocessing(stretch="mixed")
    paths = [r.path for r in val]
    batches = list(prefetched(paths, preprocessing, [0, 1], batch_size=2, threads=3))
    assert [len(batch) for batch in batches] == [4, 4, 4]  # 2 views of 2, 2, 2 images
    np.testing.assert_array_equal(np.concatenate([b[:2] for b in batches]),
                                  network_input(paths, preprocessing, [0]))


def test_a_large_jpeg_is_decoded_in_draft_mode_close_to_a_full_decode(tmp_path):
    rng = np.random.default_rng(1)
    smooth = np.kron(rng.integers(0, 256, (32, 32)), np.ones((40, 40))).astype(np.uint8)
    path = tmp_path / "large.jpg"
    Image.fromarray(smooth, mode="L").save(path, quality=95)
    with Image.open(path) as full:
        full.load()
        reference = np.asarray(full.resize((224, 224), Image.Resampling.BILINEAR), dtype=float)
    drafted = images.gray_pixels(path, 224).astype(float)
    assert drafted.shape == (224, 224)
    assert np.abs(drafted - reference).mean() < 3.0
    with Image.open(path) as probe:  # what the draft decodes: 1/4 of 1280 = 320 >= 224
        probe.draft(probe.mode, (224, 224))
        assert probe.size == (320, 320)
    buffer = io.BytesIO()
    Image.fromarray(smooth[:100, :100], mode="L").save(buffer, format="PNG")
    (tmp_path / "small.png").write_bytes(buffer.getvalue())
    assert images.gray_pixels(tmp_path / "small.png", 224).shape == (224, 224), "PNG: no draft"


def test_byte_quantiles_are_torch_quantiles():
    from supervising_ui.ml.data import byte_quantiles, percentile_stretch
    generator = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (5, 1, 37, 41), generator=generator).float()
    pixels[1] = 9.0  # one value only
    pixels[2, 0, :3] = 255.0
    flat = pixels.flatten(1)
    for quantile in (0.0, 0.01, 1 / 3, 0.5, 0.99, 1.0):
        expected = torch.quantile(flat, quantile, dim=1)
        torch.testing.assert_close(byte_quantiles(flat, (quantile,))[0], expected, atol=1e-4, rtol=0)
    fractional = pixels + 0.5  # not whole bytes: torch.quantile as before
    expected = torch.quantile(fractional.flatten(1), torch.tensor([0.01, 0.99]), dim=1)
    low, spread = expected[0].view(-1, 1, 1, 1), (expected[1] - expected[0]).clamp_min(1.0)
    torch.testing.assert_close(percentile_stretch(fractional),
                               ((fractional - low) * (255.0 / spread.view(-1, 1, 1, 1))).clamp(0, 255))


def test_the_serving_views_are_the_trained_ones_up_to_the_chosen_number():
    from supervising_ui.ml.serving_choice import SERVING_VIEWS
    assert serving_views({"tta_views": 4}) == list(range(min(4, SERVING_VIEWS)))
    assert serving_views({"tta_views": 1}) == [0], "a model trained on one view keeps it"
    assert serving_views({"tta_views": 4}, views=3) == [0, 1, 2]
    with pytest.raises(ValueError):
        serving_views({"tta_views": 4}, views=9)
