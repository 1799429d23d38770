"""The console commands through click's CliRunner."""
import json

import numpy as np
import pandas as pd
from click.testing import CliRunner

from supervising_ui.ml.cli import ml


def run(*args):
    result = CliRunner().invoke(ml, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def test_train_predict_evaluate(image_set, tmp_path):
    manifest, root, frame = image_set
    model = tmp_path / "model"
    out = run("train", "--manifest", manifest, "--image-root", root, "--out", model, "--mode", "head",
              "--epochs", "20", "--seed", "1", "--cache-dir", tmp_path / "cache")
    assert "val accuracy" in out.output and (model / "model.pt").is_file()
    assert "temperature 1.000 (6 held-out examples, fewer than 50)" in out.output

    unlabeled = tmp_path / "unlabeled.csv"
    frame[["filename"]].to_csv(unlabeled, index=False)
    run("predict", "--model", model, "--manifest", unlabeled, "--image-root", root,
        "--out", tmp_path / "predictions.csv", "--cache-dir", tmp_path / "cache")
    predictions = pd.read_csv(tmp_path / "predictions.csv")
    assert list(predictions.columns) == ["filename", "predicted", "confidence",
                                         "p_bright", "p_dark", "p_stripes"]
    probabilities = predictions[["p_bright", "p_dark", "p_stripes"]].to_numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(predictions["confidence"], probabilities.max(axis=1))

    evaluated = run("evaluate", "--model", model, "--manifest", manifest, "--image-root", root,
                    "--threshold", "0.9", "--json", tmp_path / "report.json", "--plots",
                    tmp_path / "plots", "--cache-dir", tmp_path / "cache")
    assert "ECE" in evaluated.output and "(T 1.000)" in evaluated.output
    report = json.loads((tmp_path / "report.json").read_text())
    assert 0 <= report["splits"]["val"]["ece"] <= 1
    assert set(report["splits"]) == {"train", "val"}
    val = report["splits"]["val"]
    assert val["n"] == 6 and set(val["baselines"]) == {"random_uniform", "random_prior", "most_common"}
    assert (tmp_path / "plots" / "val_threshold.png").is_file()
    assert (tmp_path / "plots" / "train_confusion.png").is_file()


def test_train_by_group_column(image_set, tmp_path):
    manifest, root, frame = image_set
    frame.drop(columns=["split"]).to_csv(tmp_path / "nosplit.csv", index=False)
    run("train", "--manifest", tmp_path / "nosplit.csv", "--image-root", root, "--out",
        tmp_path / "model", "--mode", "head", "--epochs", "3", "--group-column", "source_id",
        "--cache-dir", tmp_path / "cache")
    metrics = json.loads((tmp_path / "model" / "metrics.json").read_text())
    assert metrics["n_train"] + metrics["val"]["n"] == 18


def test_missing_split_column_is_a_usage_error(image_set, tmp_path):
    manifest, root, frame = image_set
    frame.drop(columns=["split"]).to_csv(tmp_path / "nosplit.csv", index=False)
    result = CliRunner().invoke(ml, ["train", "--manifest", str(tmp_path / "nosplit.csv"),
                                     "--image-root", str(root), "--out", str(tmp_path / "m")])
    assert result.exit_code == 2 and "--group-column" in result.output


def test_val_label_unknown_to_training_is_a_usage_error(image_set, tmp_path):
    manifest, root, frame = image_set
    frame.loc[frame["split"] == "val", "label"] = "dune"
    frame.to_csv(tmp_path / "unseen.csv", index=False)
    result = CliRunner().invoke(ml, ["train", "--manifest", str(tmp_path / "unseen.csv"),
                                     "--image-root", str(root), "--out", str(tmp_path / "m"),
                                     "--mode", "head", "--epochs", "1"])
    assert result.exit_code == 2 and "labels ['dune'] are not among the classes" in result.output
    assert not (tmp_path / "m" / "model.pt").exists()


def test_device_option(image_set, tmp_path, monkeypatch):
    manifest, root, _ = image_set
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    refused = CliRunner().invoke(ml, ["train", "--manifest", str(manifest), "--image-root", str(root),
                                      "--out", str(tmp_path / "m"), "--device", "cuda"])
    assert refused.exit_code == 2 and "no CUDA device is available" in refused.output
    run("train", "--manifest", manifest, "--image-root", root, "--out", tmp_path / "m",
        "--mode", "head", "--top-blocks", "0", "--epochs", "1", "--device", "auto",
        "--cache-dir", tmp_path / "cache")
    assert json.loads((tmp_path / "m" / "metrics.json").read_text())["device"] == "cpu"
