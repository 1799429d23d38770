"""fit() in both modes, the model directory round trip, the cache, determinism."""
import json

import numpy as np
import pytest
import torch

from supervising_ui.ml import embeddings as embeddings_module
from supervising_ui.ml.backbones import load_backbone
from supervising_ui.ml.data import Record, read_manifest, records_from_frame, with_hashes
from supervising_ui.ml.model_dir import load_model, read_model_dir
from supervising_ui.ml.predict import predict_proba
from supervising_ui.ml.recipe import paper_recipe, with_settings
from supervising_ui.ml.train import TrainConfig, fit


@pytest.fixture
def records(image_set):
    manifest, root, _ = image_set
    frame = read_manifest(manifest, root)
    all_records = records_from_frame(frame, group_column="source_id")
    train = [r for r, s in zip(all_records, frame["split"], strict=True) if s == "train"]
    val = [r for r, s in zip(all_records, frame["split"], strict=True) if s == "val"]
    return train, val


def test_head_mode_round_trip(records, tmp_path):
    train, val = records
    result = fit(train, TrainConfig(mode="head", top_blocks=0, epochs=30), tmp_path / "model", val,
                 cache_dir=tmp_path / "cache")
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == [
        "config.json", "metrics.json", "model.pt"]
    state = torch.load(tmp_path / "model" / "model.pt", weights_only=True)
    assert state["backbone"] is None and state["classes"] == ["bright", "dark", "stripes"]
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["train_config"]["mode"] == "head" and config["version"] == result.version
    assert config["preprocessing"] == {"image_size": 224, "normalization": "tf", "stretch": "mixed"}
    assert read_model_dir(tmp_path / "model").metrics["val"]["n"] == len(val)

    proba = predict_proba(tmp_path / "model", [r.path for r in val])
    assert proba.shape == (len(val), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    accuracy = np.mean(proba.argmax(1) == [result.classes.index(r.label) for r in val])
    assert accuracy == pytest.approx(result.metrics["val"]["accuracy"])
    assert accuracy >= 0.8  # the generated classes are easy


def test_head_mode_retrains_the_last_block_over_cached_activations(records, tmp_path):
    train, val = records
    config = TrainConfig(mode="head")
    resolved = config.resolved()
    assert (resolved.top_blocks, resolved.epochs, resolved.tta_views) == (1, 5, 4), "the quick default"
    assert TrainConfig(mode="head", top_blocks=0).resolved().tta_views == 1, "the head alone: one view"
    result = fit(train, config, tmp_path / "model", val, cache_dir=tmp_path / "cache")
    state = torch.load(tmp_path / "model" / "model.pt", weights_only=True)
    assert state["backbone_partial"] is True
    assert {name.split(".")[1] for name in state["backbone"]} == {"_blocks", "_conv_head", "_bn1"}
    assert {name.split(".")[2] for name in state["backbone"] if name.startswith("net._blocks.")} == {"15"}
    pretrained = load_backbone("efficientnet_lite0").state_dict()
    assert not torch.equal(state["backbone"]["net._blocks.15._project_conv.weight"],
                           pretrained["net._blocks.15._project_conv.weight"]), "the block trained"
    # Activations are cached as float16, before the last block: (192, 7, 7) per image and view.
    cached = sorted((tmp_path / "cache").rglob("*.npy"))
    assert len(cached) == 4 * (len(train) + len(val))
    assert np.load(cached[0]).shape == (192, 7, 7) and np.load(cached[0]).dtype == np.float16

    from_cache = predict_proba(tmp_path / "model", with_hashes(val), cache_dir=tmp_path / "cache")
    from_pixels = predict_proba(tmp_path / "model", [r.path for r in val])
    np.testing.assert_allclose(from_cache, from_pixels, atol=5e-3)
    accuracy = np.mean(from_cache.argmax(1) == [result.classes.index(r.label) for r in val])
    assert accuracy == pytest.approx(result.metrics["val"]["accuracy"]) and accuracy >= 0.8
    again = fit(train, config, tmp_path / "again", val, cache_dir=tmp_path / "cache")
    assert again.version == result.version, "same seed, same cached activations: same weights"


def test_top_blocks_are_checked_against_the_backbone():
    with pytest.raises(ValueError, match="top_blocks of efficientnet_lite0 must be 0 to 16"):
        TrainConfig(mode="head", top_blocks=17).resolved()
    with pytest.raises(ValueError, match="top_blocks of alexnet must be 0 to 0"):
        TrainConfig(mode="head", backbone="alexnet", top_blocks=1).resolved()
    assert TrainConfig(mode="head", backbone="alexnet").resolved().top_blocks == 0
    assert TrainConfig(mode="finetune", top_blocks=3).resolved().top_blocks == 0


def test_head_mode_reuses_cached_embeddings(records, tmp_path, monkeypatch):
    train, val = records
    fit(train, TrainConfig(mode="head", top_blocks=0, epochs=5), tmp_path / "first", val, cache_dir=tmp_path / "cache")

    def must_not_run(*args, **kwargs):
        raise AssertionError("embeddings should come from the cache")
    monkeypatch.setattr(embeddings_module, "run_views", must_not_run)
    second = fit(train, TrainConfig(mode="head", top_blocks=0, epochs=5), tmp_path / "second", val,
                 cache_dir=tmp_path / "cache")
    assert second.metrics["val"]["n"] == len(val)
    proba = predict_proba(tmp_path / "second", [r.path for r in val], cache_dir=tmp_path / "cache")
    assert proba.shape == (len(val), 3)


def test_same_seed_same_model(records, tmp_path):
    train, val = records
    config = TrainConfig(mode="head", top_blocks=0, epochs=5, head="mlp", head_dropout=0.2, seed=7)
    first = fit(train, config, tmp_path / "a", val, cache_dir=tmp_path / "cache")
    second = fit(train, config, tmp_path / "b", val, cache_dir=tmp_path / "cache")
    other = fit(train, TrainConfig(mode="head", top_blocks=0, epochs=5, head="mlp", head_dropout=0.2,
                                   seed=8),
                tmp_path / "c", val, cache_dir=tmp_path / "cache")
    assert first.version == second.version != other.version


def test_finetune_round_trip_and_determinism(records, tmp_path):
    train, val = records[0][:6], records[1][:3]
    config = TrainConfig(epochs=1, batch_size=3, tta_views=2, frozen_blocks=10, calibrate=True)
    first = fit(train, config, tmp_path / "a", val)
    second = fit(train, config, tmp_path / "b", val)
    assert first.version == second.version
    state = torch.load(tmp_path / "a" / "model.pt", weights_only=True)
    assert "net._conv_stem.weight" in state["backbone"] and state["temperature"] > 0
    model, info = load_model(tmp_path / "a")
    assert info.classes == first.classes and info.config["tta_views"] == 2
    proba = predict_proba(tmp_path / "a", [r.path for r in val])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    assert len(first.metrics["history"]) == 1


def test_fit_rejects_unknown_validation_labels(records, tmp_path):
    train, val = records
    with pytest.raises(ValueError, match="not among the classes"):
        fit(train, TrainConfig(mode="head", classes=["bright", "dark"]), tmp_path / "m", val)


def test_paper_recipe_keeps_its_settings_unless_overridden():
    from supervising_ui.ml.recipe import paper_recipe
    config = paper_recipe(backbone=None, epochs=None, seed=3).resolved()
    assert (config.backbone, config.optimizer, config.lr, config.schedule) == ("alexnet", "sgd", 1e-4, "step")
    assert config.epochs == 6 and config.seed == 3 and config.head_lr_multiplier == 10.0


def test_msl_recipe_is_the_colour_quick_model_of_three_members_unless_overridden():
    from supervising_ui.ml.cli import recipe_config
    config = recipe_config("msl", backbone=None, mode=None, members=None, stretch=None).resolved()
    assert (config.backbone, config.mode, config.stretch, config.members) == \
        ("efficientnet_lite0", "head", "color", 3)
    assert config.top_blocks == 1 and config.tta_views == 4
    assert recipe_config("msl", members=1, seed=4).members == 1
    default = recipe_config("default", backbone=None, mode=None, members=None).resolved()
    assert (default.mode, default.members, default.stretch) == ("finetune", 1, "percentile")


def test_stretch_travels_with_the_model_and_keys_its_own_cache(records, tmp_path):
    from supervising_ui.ml.data import Preprocessing
    from supervising_ui.ml.embeddings import cache_key
    train, val = records[0][:6], records[1][:3]
    config = TrainConfig(epochs=1, batch_size=3, tta_views=1, frozen_blocks=10)
    assert config.resolved().stretch == "percentile", "the fine-tune default"
    assert TrainConfig(mode="head").resolved().stretch == "mixed", "the quick model's default"
    fit(train, config, tmp_path / "a", val)
    model, info = load_model(tmp_path / "a")
    assert info.preprocessing == Preprocessing(stretch="percentile")
    proba = predict_proba(tmp_path / "a", [r.path for r in val])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    assert cache_key("efficientnet_lite0", Preprocessing(stretch="percentile")) != \
        cache_key("efficientnet_lite0", Preprocessing())


def test_color_input_tells_apart_what_grayscale_cannot(tmp_path):
    """Red and green images of equal luma: one class to the grayscale inputs, two in colour."""
    from PIL import Image
    rng = np.random.default_rng(0)
    records = []
    for index in range(24):
        label = ("red", "green")[index % 2]
        base = np.array([180, 60, 60] if label == "red" else [62, 120, 60], dtype=float)  # equal luma
        pixels = np.clip(base + rng.normal(0, 6, (48, 48, 3)), 0, 255).astype(np.uint8)
        path = tmp_path / f"{index:02d}.png"
        Image.fromarray(pixels, mode="RGB").save(path)
        records.append(Record(str(path), label))
    train, val = records[:16], records[16:]
    accuracy = {}
    for stretch in ("mixed", "color"):
        result = fit(train, TrainConfig(mode="head", stretch=stretch, tta_views=1, epochs=2),
                     tmp_path / stretch, val, cache_dir=tmp_path / "cache")
        proba = predict_proba(tmp_path / stretch, [r.path for r in val], cache_dir=tmp_path / "cache")
        accuracy[stretch] = np.mean(proba.argmax(1) == [result.classes.index(r.label) for r in val])
        assert accuracy[stretch] == pytest.approx(result.metrics["val"]["accuracy"])
    assert read_model_dir(tmp_path / "color").preprocessing.stretch == "color"
    assert accuracy["color"] == 1.0
    assert accuracy["color"] > accuracy["mixed"]


def test_members_are_the_runs_of_successive_seeds_averaged(records, tmp_path):
    """--members 2 trains what seeds 0 and 1 train alone, over one activation pass, and averages
    their logits, through the cache and without it."""
    from supervising_ui.ml.backbones import Ensemble
    from supervising_ui.ml.predict import proba_from_model
    train, val = records
    cache = tmp_path / "cache"
    settings = dict(mode="head", tta_views=1, epochs=1, calibrate=False)
    fit(train, TrainConfig(**settings, members=2), tmp_path / "both", val, cache_dir=cache,
        logits_out=tmp_path / "both.pt")
    for seed in (0, 1):
        fit(train, TrainConfig(**settings, seed=seed), tmp_path / f"seed{seed}", val, cache_dir=cache,
            logits_out=tmp_path / f"seed{seed}.pt")
    alone = [torch.load(tmp_path / f"seed{seed}.pt")["logits"] for seed in (0, 1)]
    both = torch.load(tmp_path / "both.pt")["logits"]
    torch.testing.assert_close(both, (alone[0] + alone[1]) / 2, rtol=1e-4, atol=1e-4)

    model, info = load_model(tmp_path / "both")
    assert isinstance(model, Ensemble) and len(model.members) == 2
    assert info.version not in {read_model_dir(tmp_path / f"seed{s}").version for s in (0, 1)}
    state = torch.load(tmp_path / "both" / "model.pt", weights_only=True)
    assert set(state["members"][0]["backbone"]) == set(state["backbone"]), "the retrained blocks only"
    paths = [r.path for r in val]
    cached = proba_from_model(model, info.config, paths, cache_dir=cache)
    uncached = proba_from_model(model, info.config, paths)
    np.testing.assert_allclose(cached, uncached, atol=2e-3)  # the cache holds float16
    expected = torch.softmax((alone[0] + alone[1]).mean(dim=0) / 2, dim=1).numpy()
    np.testing.assert_allclose(cached, expected, atol=1e-4)


def test_members_need_retrained_blocks(records, tmp_path):
    with pytest.raises(ValueError, match="members must be 1, or more in head mode with top_blocks"):
        TrainConfig(mode="head", top_blocks=0, members=2).resolved()
    with pytest.raises(ValueError, match="members must be 1"):
        TrainConfig(mode="finetune", members=3).resolved()


def test_ml_package_imports_without_the_web_stack():
    """The ML package (training, CV, its console commands) runs where Flask is not installed."""
    import subprocess
    import sys
    blocker = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name.split('.')[0] in {'flask', 'flask_sqlalchemy', 'flask_login', 'flask_wtf',\n"
        "                                  'flask_migrate', 'sqlalchemy', 'alembic', 'huey'}:\n"
        "            raise ImportError('blocked ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import supervising_ui.ml, supervising_ui.ml.cli, supervising_ui.ml.crossval\n"
        "print('imported')\n")
    done = subprocess.run([sys.executable, "-c", blocker], capture_output=True, text=True)
    assert done.returncode == 0 and "imported" in done.stdout, done.stderr


def test_the_last_block_trains_for_60_to_300_minibatches_by_label_set_size():
    from supervising_ui.ml.backbones import Classifier, frozen_and_trained
    from supervising_ui.ml.train import optimization_plan
    model = Classifier(load_backbone("efficientnet_lite0"), torch.nn.Linear(1280, 3))
    config = TrainConfig(mode="head").resolved()
    _, trained = frozen_and_trained(model, 1)
    # Samples are views of images (4 each): 10 -> at least 60 steps (60 epochs of 1), 300 ->
    # 225 steps (23 epochs of 10), 400 (100 images) -> 300 steps, 2600 -> 5 epochs of 82.
    plans = {n: optimization_plan(trained, config, n) for n in (10, 300, 400, 2600)}
    assert {n: plan[1:] for n, plan in plans.items()} == {
        10: (32, 60), 300: (32, 23), 400: (32, 24), 2600: (32, 5)}
    blocks, head = plans[300][0]
    assert head["lr"] == 10 * blocks["lr"] == 10 * config.lr
    assert len(blocks["params"]) == len(list(model.backbone.net._blocks[15].parameters())) + 3
    lone = optimization_plan(model.head, TrainConfig(mode="head", top_blocks=0).resolved(), 300)
    assert lone[1:] == (64, 60)


def test_with_settings_parses_each_field_as_its_type():
    config = with_settings(TrainConfig(), ["label_smoothing=0.1", "epochs=12", "lr=2e-4",
                                           "calibrate=false", "stretch=mixed", "weights=none",
                                           "fixed_orientation_classes=edge, horizon"])
    assert (config.label_smoothing, config.epochs, config.lr) == (0.1, 12, 2e-4)
    assert config.calibrate is False and config.stretch == "mixed" and config.weights is None
    assert config.fixed_orientation_classes == ["edge", "horizon"]
    with pytest.raises(ValueError, match="epochs='many': expected a value like"):
        with_settings(TrainConfig(epochs=8), ["epochs=many"])
    with pytest.raises(ValueError, match="is not FIELD=VALUE"):
        with_settings(TrainConfig(), ["label_smoothing"])
    with pytest.raises(ValueError, match="label_smoothing must be 0 or more and under 1"):
        TrainConfig(label_smoothing=1.0).resolved()


def test_finetune_with_label_smoothing_and_crops_trains(image_set, tmp_path):
    manifest, root, frame = image_set
    records = records_from_frame(read_manifest(manifest, root), group_column="source_id")
    train = [r for r, split in zip(records, frame["split"], strict=True) if split == "train"]
    config = TrainConfig(mode="finetune", epochs=1, batch_size=4, tta_views=1,
                         label_smoothing=0.1, crop_scale=0.5)
    result = fit(train, config, tmp_path / "model")
    saved = json.loads((tmp_path / "model" / "config.json").read_text())["train_config"]
    assert saved["label_smoothing"] == 0.1 and saved["crop_scale"] == 0.5
    assert np.isfinite(result.metrics["history"][0]["loss"])


def test_fine_tuning_smooths_its_targets_by_default_the_head_and_the_paper_do_not():
    assert TrainConfig(mode="finetune").resolved().label_smoothing == 0.1
    assert TrainConfig(mode="head").resolved().label_smoothing == 0.0
    assert TrainConfig(mode="finetune", label_smoothing=0.0).resolved().label_smoothing == 0.0
    assert paper_recipe().resolved().label_smoothing == 0.0
