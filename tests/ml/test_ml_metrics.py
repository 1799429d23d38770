"""Metrics against hand-worked examples; plots are written."""
import json

import numpy as np
import pytest

from supervising_ui.ml.metrics import (
    accuracy,
    at_threshold,
    baselines,
    confusion_matrix,
    evaluation_report,
    per_class,
    threshold_curve,
    write_json,
    write_plots,
)

# 5 samples, 3 classes. Predictions: 0 (0.95, right), 1 (0.6, right), 1 (0.92, wrong: true 2),
# 2 (0.5, right), 0 (0.91, wrong: true 1).
PROBA = np.array([[0.95, 0.03, 0.02], [0.3, 0.6, 0.1], [0.05, 0.92, 0.03],
                  [0.25, 0.25, 0.5], [0.91, 0.05, 0.04]])
TRUTH = np.array([0, 1, 2, 2, 1])


def test_accuracy_and_threshold():
    assert accuracy(TRUTH, PROBA.argmax(1)) == pytest.approx(3 / 5)
    point = at_threshold(PROBA, TRUTH, 0.9)
    assert point["kept"] == 3
    assert point["accuracy"] == pytest.approx(1 / 3)
    assert point["abstained"] == pytest.approx(2 / 5)
    nobody = at_threshold(PROBA, TRUTH, 0.99)
    assert nobody["abstained"] == 1.0 and np.isnan(nobody["accuracy"])
    curve = threshold_curve(PROBA, TRUTH, [0.0, 0.55])
    assert [p["kept"] for p in curve] == [5, 4]
    assert curve[1]["accuracy"] == pytest.approx(2 / 4)


def test_confusion_and_per_class():
    matrix = confusion_matrix(TRUTH, PROBA.argmax(1), 3)
    assert matrix.tolist() == [[1, 0, 0], [1, 1, 0], [0, 1, 1]]
    stats = per_class(TRUTH, PROBA.argmax(1), ["a", "b", "c"])
    assert stats["a"] == {"precision": 0.5, "recall": 1.0, "support": 1}
    assert stats["b"]["precision"] == 0.5 and stats["b"]["recall"] == 0.5
    assert stats["c"] == {"precision": 1.0, "recall": 0.5, "support": 2}
    unseen = per_class(np.array([0]), np.array([0]), ["a", "b"])
    assert np.isnan(unseen["b"]["precision"]) and np.isnan(unseen["b"]["recall"])


def test_baselines():
    # training mostly class 1; evaluation has 1 of class 0 and 3 of class 1
    result = baselines([1, 1, 1, 0], [0, 1, 1, 1], 2)
    assert result["most_common"] == pytest.approx(0.75)
    assert result["random_uniform"] == pytest.approx(0.5)
    assert result["random_prior"] == pytest.approx(0.25 * 0.25 + 0.75 * 0.75)


def test_report_json_and_plots(tmp_path):
    report = evaluation_report(PROBA, TRUTH, ["a", "b", "c"], threshold=0.9)
    write_json(report, tmp_path / "report.json")
    loaded = json.loads((tmp_path / "report.json").read_text())
    assert loaded["accuracy"] == pytest.approx(0.6)
    assert loaded["confusion_matrix"][2] == [0, 1, 1]
    assert loaded["threshold_curve"][-1]["accuracy"] is None  # nan -> null
    for path in write_plots(report, tmp_path / "plots", prefix="val_"):
        assert open(path, "rb").read(4) == b"\x89PNG"
