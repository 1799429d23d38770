"""Temperature fitting, the ECE, and the temperature travelling with the model directory."""
import json

import numpy as np
import pytest
import torch

from supervising_ui.ml.calibration import (
    calibration_refusal,
    calibration_summary,
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
)
from supervising_ui.ml.data import Record, read_manifest, records_from_frame
from supervising_ui.ml.model_dir import load_model
from supervising_ui.ml.predict import combine_views, predict_proba
from supervising_ui.ml.train import TrainConfig, fit


def overconfident_logits(scale: float, n: int = 4000, seed: int = 0):
    """(1, n, 4) logits that are `scale` times too sharp for labels drawn from softmax(true)."""
    rng = np.random.default_rng(seed)
    true_logits = rng.normal(0, 1.5, (n, 4))
    proba = np.exp(true_logits) / np.exp(true_logits).sum(axis=1, keepdims=True)
    labels = np.array([rng.choice(4, p=row) for row in proba])
    return torch.tensor(true_logits * scale)[None], labels


def test_fit_temperature_recovers_the_overconfidence():
    logits, labels = overconfident_logits(3.0)
    temperature = fit_temperature(logits, labels, "logits")
    assert temperature == pytest.approx(3.0, rel=0.1)
    assert negative_log_likelihood(logits, labels, temperature) < negative_log_likelihood(logits, labels, 1.0)
    summary = calibration_summary(logits, labels, temperature, "logits")
    assert summary["ece_after"] < summary["ece_before"] / 2 and summary["ece_bins"] == 15
    # A temperature never changes the predicted class.
    assert np.array_equal(combine_views(logits, 1.0, "logits").argmax(1),
                          combine_views(logits, temperature, "logits").argmax(1))


def test_fit_temperature_with_probability_averaged_views_and_no_labels():
    logits, labels = overconfident_logits(0.5, n=2000)
    views = torch.stack([logits[0], logits[0] + 0.01])
    assert fit_temperature(views, labels, "probs") == pytest.approx(0.5, rel=0.15)
    assert fit_temperature(views[:, :0], [], "probs") == 1.0
    with torch.inference_mode():  # callers evaluate under inference mode
        assert fit_temperature(views, labels, "logits") == pytest.approx(0.5, rel=0.15)


def test_expected_calibration_error_by_hand():
    # Two bins: confidence 0.95 with 1 of 2 right (gap 0.45), 0.55 with 2 of 2 right (gap 0.45).
    proba = np.array([[0.95, 0.05], [0.95, 0.05], [0.55, 0.45], [0.45, 0.55]])
    labels = np.array([0, 1, 0, 1])
    assert expected_calibration_error(proba, labels) == pytest.approx(0.45)
    calibrated = np.array([[0.5, 0.5]] * 4)  # said 50%, right 50% (argmax picks class 0)
    assert expected_calibration_error(calibrated, np.array([0, 1, 0, 1])) == pytest.approx(0.0)


def test_fit_stores_the_temperature_and_everything_applies_it(image_set, tmp_path):
    manifest, root, _ = image_set
    frame = read_manifest(manifest, root)
    records = records_from_frame(frame, group_column="source_id")
    train = [r for r, s in zip(records, frame["split"], strict=True) if s == "train"]
    val = [r for r, s in zip(records, frame["split"], strict=True) if s == "val"]
    # One val image carries a wrong label, so that the held-out likelihood has a finite optimum.
    val[0] = Record(val[0].path, next(c for c in ("bright", "dark") if c != val[0].label), val[0].group)
    config = TrainConfig(mode="head", top_blocks=0, epochs=5, calibration_min_examples=len(val))
    result = fit(train, config, tmp_path / "model", val, cache_dir=tmp_path / "cache",
                 logits_out=tmp_path / "logits.pt")
    calibration = result.metrics["calibration"]
    temperature = calibration["temperature"]
    assert calibration["skipped"] is None and temperature != 1.0
    assert calibration["fitted_on"] == "val" and calibration["n"] == len(val)
    assert {"ece_before", "ece_after", "nll_before", "nll_after"} <= set(calibration)
    assert calibration["nll_after"] <= calibration["nll_before"] + 1e-9
    assert json.loads((tmp_path / "model" / "config.json").read_text())["temperature"] == temperature
    assert result.metrics["val"]["ece"] == pytest.approx(calibration["ece_after"])

    logits = torch.load(tmp_path / "logits.pt", weights_only=True)["logits"]
    proba = predict_proba(tmp_path / "model", [r.path for r in val], cache_dir=tmp_path / "cache")
    np.testing.assert_allclose(proba, combine_views(logits, temperature, "logits"), atol=1e-5)


def test_model_directory_without_a_temperature_loads_with_one(image_set, tmp_path):
    manifest, root, _ = image_set
    records = records_from_frame(read_manifest(manifest, root), group_column="source_id")
    fit(records[:12], TrainConfig(mode="head", top_blocks=0, epochs=3, calibrate=False), tmp_path / "model",
        cache_dir=tmp_path / "cache")
    # Rewrite it as a directory of before calibration: no temperature anywhere.
    state = torch.load(tmp_path / "model" / "model.pt", weights_only=True)
    del state["temperature"]
    torch.save(state, tmp_path / "model" / "model.pt")
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    del config["temperature"]
    (tmp_path / "model" / "config.json").write_text(json.dumps(config))
    model, info = load_model(tmp_path / "model")
    assert info.config["temperature"] == 1.0 and info.temperature == 1.0
    proba = predict_proba(tmp_path / "model", [r.path for r in records[12:]])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)


def test_too_few_or_faultless_held_out_examples_fit_no_temperature(image_set, tmp_path):
    logits, labels = overconfident_logits(3.0, n=40)
    assert "40 held-out examples, fewer than 50" in calibration_refusal(logits, labels)
    right = logits[0].argmax(1).numpy()
    assert "no held-out errors" in calibration_refusal(logits, right, min_examples=10)
    assert calibration_refusal(logits, labels, min_examples=10) is None

    manifest, root, _ = image_set
    records = records_from_frame(read_manifest(manifest, root), group_column="source_id")
    result = fit(records[:12], TrainConfig(mode="head", top_blocks=0, epochs=5), tmp_path / "model", records[12:],
                 cache_dir=tmp_path / "cache")
    assert result.metrics["calibration"]["skipped"].startswith("6 held-out examples")
    assert result.config["temperature"] == 1.0
