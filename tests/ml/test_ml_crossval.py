"""Grouped k-fold cross-validation: folds of whole groups, the `ml cv` command and its table."""
import json

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from supervising_ui.ml.cli import ml
from supervising_ui.ml.crossval import (
    blocked_folds,
    combine_kept_folds,
    group_folds,
    read_kept_folds,
)


def test_group_folds_keep_groups_whole_and_balanced():
    rng = np.random.default_rng(0)
    sizes = rng.integers(1, 40, 30)
    groups = np.repeat([f"obs{i}" for i in range(30)], sizes)
    rng.shuffle(groups)
    folds = group_folds(groups, 5)
    assert sorted(np.concatenate(folds).tolist()) == list(range(len(groups)))
    owners = [set(groups[fold]) for fold in folds]
    for a in range(5):
        for b in range(a + 1, 5):
            assert not owners[a] & owners[b]
    lengths = [len(fold) for fold in folds]
    assert max(lengths) - min(lengths) <= sizes.max()
    again = group_folds(list(groups), 5)
    assert all(np.array_equal(x, y) for x, y in zip(folds, again, strict=True))


def test_group_folds_refuse_too_few_groups():
    with pytest.raises(ValueError, match="3 groups cannot fill 5 folds"):
        group_folds(["a", "b", "c", "a"], 5)
    with pytest.raises(ValueError, match="at least 2 folds"):
        group_folds(["a", "b"], 1)


def test_blocked_folds_are_consecutive_runs_of_groups_in_numeric_order():
    sols = np.repeat([3, 10, 25, 100, 182, 200, 564, 9, 40, 1000], [5, 1, 30, 2, 2, 2, 2, 2, 2, 2])
    folds = blocked_folds(list(sols), 4)
    assert sorted(np.concatenate(folds).tolist()) == list(range(len(sols)))
    runs = [sorted({int(sols[i]) for i in fold}) for fold in folds]
    assert all(runs), "no fold is empty, even after the large sol 25"
    for earlier, later in zip(runs, runs[1:], strict=False):
        assert max(earlier) < min(later), runs  # blocks of time, numeric (not text) order
    assert runs[0][0] == 3 and runs[-1][-1] == 1000
    with pytest.raises(ValueError, match="2 groups cannot fill 3 folds"):
        blocked_folds(["1", "2", "1"], 3)


def test_cv_command_pools_train_and_val_never_test(image_set, tmp_path):
    manifest, root, frame = image_set
    # A held-back row that must never be read: its file does exist, its split is test.
    test_row = frame.iloc[[0]].assign(source_id="obs_test", split="test")
    pd.concat([frame, test_row]).to_csv(tmp_path / "with_test.csv", index=False)
    result = CliRunner().invoke(ml, [
        "cv", "--manifest", str(tmp_path / "with_test.csv"), "--image-root", str(root),
        "--group-column", "source_id", "--folds", "3", "--mode", "head", "--top-blocks", "0", "--epochs", "5",
        "--stretch", "mixed", "--cache-dir", str(tmp_path / "cache"),
        "--json", str(tmp_path / "cv.json")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "accuracy (mean ± std over 3 folds)" in result.output
    assert "ECE (15 bins)" in result.output and "per-class recall" in result.output
    report = json.loads((tmp_path / "cv.json").read_text())
    assert report["n"] == 18 and len(report["folds"]) == 3
    fold_groups = [set(fold["groups"]) for fold in report["folds"]]
    assert set().union(*fold_groups) == {f"obs{i}" for i in range(6)}
    assert sum(len(g) for g in fold_groups) == 6  # no group in two folds; obs_test in none
    assert report["config"]["stretch"] == "mixed" and report["config"]["calibrate"] is False
    for fold in report["folds"]:
        assert fold["n_train"] + fold["n_held_out"] == 18 and fold["temperature"] > 0
        assert 0 <= fold["ece"] <= 1 and 0 <= fold["ece_calibrated"] <= 1
    assert set(report["per_class_recall"]) == {"bright", "dark", "stripes"}
    assert report["summary"]["accuracy"]["mean"] >= 0.6  # the generated classes are easy


def test_cv_command_needs_groups_for_every_fold(image_set, tmp_path):
    manifest, root, _ = image_set
    result = CliRunner().invoke(ml, [
        "cv", "--manifest", str(manifest), "--image-root", str(root), "--group-column", "source_id",
        "--folds", "7", "--cache-dir", str(tmp_path / "cache")])
    assert result.exit_code == 2 and "6 groups cannot fill 7 folds" in result.output


def test_cv_keep_folds_resumes_without_retraining(image_set, tmp_path, monkeypatch):
    manifest, root, _ = image_set
    arguments = ["cv", "--manifest", str(manifest), "--image-root", str(root),
                 "--group-column", "source_id", "--folds", "3", "--mode", "head", "--top-blocks", "0", "--epochs", "5",
                 "--cache-dir", str(tmp_path / "cache"), "--keep-folds", str(tmp_path / "folds")]
    # One fold alone (say, on another machine): kept, and summarised over that fold alone.
    alone = CliRunner().invoke(ml, arguments + ["--only-fold", "2", "--json",
                                                str(tmp_path / "alone.json")], catch_exceptions=False)
    assert alone.exit_code == 0, alone.output
    assert [fold["fold"] for fold in json.loads((tmp_path / "alone.json").read_text())["folds"]] == [2]
    assert len(list((tmp_path / "folds").glob("fold-2-of-3-*.pt"))) == 1
    refused = CliRunner().invoke(ml, arguments + ["--only-fold", "4"])
    assert refused.exit_code == 2 and "folds [4] do not exist: there are 3" in refused.output

    first = CliRunner().invoke(ml, arguments + ["--json", str(tmp_path / "first.json")],
                               catch_exceptions=False)
    assert first.exit_code == 0, first.output
    assert first.output.count("read back from") == 1  # fold 2; folds 1 and 3 trained
    assert len(list((tmp_path / "folds").glob("fold-*-of-3-*.pt"))) == 3
    alone_fold = json.loads((tmp_path / "alone.json").read_text())["folds"][0]
    assert json.loads((tmp_path / "first.json").read_text())["folds"][1]["accuracy"] == \
        alone_fold["accuracy"]

    def no_training(*args, **kwargs):
        raise AssertionError("a kept fold was trained again")

    monkeypatch.setattr("supervising_ui.ml.crossval.fit", no_training)
    again = CliRunner().invoke(ml, arguments + ["--json", str(tmp_path / "again.json")],
                               catch_exceptions=False)
    assert again.exit_code == 0, again.output
    assert again.output.count("read back from") == 3
    before, after = (json.loads((tmp_path / name).read_text()) for name in ("first.json", "again.json"))
    assert after["folds"] == before["folds"] and after["summary"] == before["summary"]

    # Another recipe (more epochs) does not match the kept folds: it trains.
    other = CliRunner().invoke(ml, arguments[:-2] + ["--epochs", "6", "--keep-folds",
                                                     str(tmp_path / "folds")])
    assert other.exit_code != 0 and "a kept fold was trained again" in str(other.exception)


def test_cv_combine_averages_the_kept_folds_of_two_recipes(image_set, tmp_path):
    manifest, root, _ = image_set
    arguments = ["cv", "--manifest", str(manifest), "--image-root", str(root),
                 "--group-column", "source_id", "--folds", "3", "--mode", "head", "--top-blocks", "0",
                 "--epochs", "5", "--tta-views", "2", "--cache-dir", str(tmp_path / "cache")]
    for seed in ("0", "1"):
        run = CliRunner().invoke(ml, arguments + ["--seed", seed, "--keep-folds", str(tmp_path / seed)],
                                 catch_exceptions=False)
        assert run.exit_code == 0, run.output

    folds = [read_kept_folds(tmp_path / seed) for seed in ("0", "1")]
    assert sorted(folds[0]) == [1, 2, 3] and folds[0][1]["groups"] and folds[0][1]["n_train"] == 12
    results, classes = combine_kept_folds([tmp_path / "0", tmp_path / "1"], views=1)
    assert classes == ["bright", "dark", "stripes"] and [r["fold"] for r in results] == [1, 2, 3]
    for result, first, second in zip(results, (folds[0][f] for f in (1, 2, 3)),
                                     (folds[1][f] for f in (1, 2, 3)), strict=True):
        # The first view of each model, side by side: combine_views averages the two models.
        assert torch.equal(result["logits"], torch.stack([first["logits"][0], second["logits"][0]]))
        assert result["seconds"] == pytest.approx(first["seconds"] + second["seconds"])

    combined = CliRunner().invoke(ml, ["cv-combine", str(tmp_path / "0"), str(tmp_path / "1"),
                                       "--json", str(tmp_path / "both.json")], catch_exceptions=False)
    assert combined.exit_code == 0, combined.output
    report = json.loads((tmp_path / "both.json").read_text())
    assert report["n"] == 18 and len(report["folds"]) == 3
    assert report["config"] == {"combined": [str(tmp_path / "0"), str(tmp_path / "1")], "views": None}

    # Folds of other rows (here another fold count) are refused, not silently mixed.
    other = CliRunner().invoke(ml, arguments[:8] + ["2"] + arguments[9:] + [
        "--keep-folds", str(tmp_path / "two")], catch_exceptions=False)
    assert other.exit_code == 0, other.output
    refused = CliRunner().invoke(ml, ["cv-combine", str(tmp_path / "0"), str(tmp_path / "two")])
    assert refused.exit_code == 2 and "holds other rows or classes" in refused.output
    empty = tmp_path / "empty"
    empty.mkdir()
    refused = CliRunner().invoke(ml, ["cv-combine", str(empty)])
    assert refused.exit_code == 2 and "holds no kept folds" in refused.output


def test_set_changes_any_recipe_field_and_refuses_unknown_ones(image_set, tmp_path):
    manifest, root, _ = image_set
    arguments = ["cv", "--manifest", str(manifest), "--image-root", str(root),
                 "--group-column", "source_id", "--folds", "3", "--mode", "head", "--top-blocks", "0",
                 "--epochs", "5", "--cache-dir", str(tmp_path / "cache")]
    result = CliRunner().invoke(ml, arguments + ["--set", "label_smoothing=0.2", "--set",
                                                 "weight_decay=0.01", "--json", str(tmp_path / "cv.json")],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "cv.json").read_text())["config"]
    assert config["label_smoothing"] == 0.2 and config["weight_decay"] == 0.01
    unknown = CliRunner().invoke(ml, arguments + ["--set", "smoothing=0.2"])
    assert unknown.exit_code == 2 and "'smoothing=0.2' is not FIELD=VALUE" in unknown.output
    bad = CliRunner().invoke(ml, arguments + ["--set", "crop_scale=0"])
    assert bad.exit_code == 2 and "crop_scale must be over 0" in bad.output
