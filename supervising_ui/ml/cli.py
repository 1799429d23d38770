"""Console commands ``ml train``, ``ml cv``, ``ml predict`` and ``ml evaluate`` (click only, no Flask).

Attach to the app's CLI with ``main.add_command(ml)``; standalone:
``python -m supervising_ui.ml.cli train --manifest M.csv --image-root DIR --out MODEL_DIR``.
"""
from __future__ import annotations

import click
import numpy as np
import torch

from ..config import ml_settings
from ..throttled import throttled
from .crossval import combine_kept_folds, cross_validate, format_report, summarize
from .data import (
    STRETCHES,
    assert_no_leakage,
    read_manifest,
    records_from_frame,
    split_by_column,
    split_by_group,
    split_by_sol,
)
from .metrics import evaluation_report, write_json, write_plots
from .model_dir import load_model
from .predict import predictions_frame, proba_from_model
from .recipe import RECIPES, TrainConfig, with_settings
from .train import choose_device, fit


def default_cache_dir() -> str:
    """Embedding cache: $SUPERVISING_UI_EMBEDDING_CACHE or ~/.cache/supervising_ui/embeddings."""
    return ml_settings()["EMBEDDING_CACHE"]


def echo_progress():
    """A progress callback printing at most every 15 seconds, and at the end."""
    def progress(stage: str, done: int, total: int) -> None:
        click.echo(f"{stage}: {done}/{total}", err=True)
    return throttled(progress, every_seconds=15)


# Options that ml train and ml cv share.
balance_option = click.option(
    "--balance", type=click.Choice(["none", "loss", "sampler"]), default="none",
    show_default=True, help="Class balance: weighted loss or balanced batches.")
device_option = click.option("--device", default="auto", show_default=True,
                             help="cpu, cuda or auto (the GPU when torch sees one).")
top_blocks_option = click.option(
    "--top-blocks", type=int, default=None,
    help="Head mode: last backbone blocks retrained over cached activations "
         "(0: the head alone). Default: 1 efficientnet_lite0, 0 alexnet.")

members_option = click.option(
    "--members", type=int, default=None,
    help="Head mode with top blocks: train this many models (seeds seed, seed+1, ...) over the "
         "same cached activations and average them. Default: 1 (3 with --recipe msl).")


settings_option = click.option(
    "--set", "assignments", multiple=True, metavar="FIELD=VALUE",
    help="Any other TrainConfig field (recipe.py), e.g. --set crop_scale=0.6 "
         "--set weight_decay=0.05; repeatable, applied last.")


def recipe_config(recipe: str, assignments=(), **settings) -> TrainConfig:
    """The training config of --recipe; the command's settings that are not None override it,
    then the --set assignments."""
    try:
        config = with_settings(RECIPES[recipe](**settings), list(assignments))
        config.resolved()  # refuse a bad value before any work
    except ValueError as error:
        raise click.UsageError(str(error)) from error
    return config


recipe_option = click.option(
    "--recipe", type=click.Choice(sorted(RECIPES)), default="default", show_default=True,
    help="paper: AlexNet fine-tuned with SGD, base lr 1e-4, step schedule, 10x last layer. "
         "msl: the rover images' quick model (head mode, colour input, 3 members). "
         "Options given beside it override the recipe's.")


def chosen_device(name: str) -> torch.device:
    """--device as a torch device; a usage error where it names none that torch can use."""
    try:
        return choose_device(name)
    except (RuntimeError, ValueError) as error:
        raise click.UsageError(f"--device {name}: {error}") from error


def choose_splits(frame, split_column, group_column, sol_column, val_fraction, seed):
    """Train/val row indices from a split column, a group column or sol ranges, leak-checked."""
    labelled = np.flatnonzero(frame["label"].astype(bool).to_numpy()) if "label" in frame else []
    if group_column:
        if group_column not in frame:
            raise click.UsageError(f"the manifest has no column {group_column!r}")
        groups = frame[group_column].to_numpy()[labelled]
        local = split_by_group(groups, val_fraction, seed)
        splits = {name: labelled[idx] for name, idx in local.items()}
        assert_no_leakage(frame[group_column].to_numpy(), splits)
        return splits
    if sol_column:
        splits = split_by_sol(frame[sol_column])
        return {name: np.intersect1d(idx, labelled) for name, idx in splits.items()}
    if split_column not in frame:
        raise click.UsageError(f"the manifest has no column {split_column!r}: pass --split-column "
                               "NAME, or --group-column NAME to split by group")
    splits = split_by_column(frame[split_column].to_numpy())
    return {name: np.intersect1d(idx, labelled) for name, idx in splits.items()}


@click.group(name="ml")
def ml() -> None:
    """Train, apply and evaluate image classifiers."""
    torch.set_num_threads(ml_settings()["THREADS"] or torch.get_num_threads())


@ml.command()
@click.option("--manifest", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--image-root", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False))
@click.option("--backbone", type=click.Choice(["efficientnet_lite0", "alexnet"]), default=None,
              help="Default: efficientnet_lite0 (alexnet with --recipe paper).")
@click.option("--mode", type=click.Choice(["finetune", "head"]), default=None,
              help="Default: finetune (head with --recipe msl).")
@click.option("--split-column", default="split", show_default=True, help="train/val/test column.")
@click.option("--group-column", default=None, help="Split by this group column instead (e.g. source_id).")
@click.option("--sol-column", default=None, help="Split by MSL sol ranges of this column instead.")
@click.option("--val-fraction", default=0.2, show_default=True, help="With --group-column.")
@click.option("--epochs", type=int, default=None,
              help="Default: 8 finetune, 5 head (60 with --top-blocks 0).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--stretch", type=click.Choice(STRETCHES), default=None,
              help="Per-image contrast stretch; mixed = channels raw, percentile, raw; "
                   "color = the image's red, green, blue. "
                   "Default: percentile finetune, mixed head.")
@click.option("--tta-views", type=int, default=None,
              help="Dihedral views averaged at prediction (head: also trained on). "
                   "Default: 4 (1 with --mode head --top-blocks 0).")
@recipe_option
@click.option("--weights", default=None, help="Backbone weights file or URL.")
@click.option("--cache-dir", default=None, help="Embedding and activation cache (head mode).")
@balance_option
@device_option
@top_blocks_option
@members_option
@settings_option
@click.option("--val-logits", default=None, type=click.Path(dir_okay=False),
              help="Also save the val rows' raw logits (views, rows, classes) to this file.")
def train(manifest, image_root, out_dir, backbone, mode, split_column, group_column, sol_column,
          val_fraction, epochs, seed, stretch, tta_views, recipe, weights, cache_dir, balance,
          device, top_blocks, members, assignments, val_logits):
    """Train a model on the train split and report on the val split."""
    frame = read_manifest(manifest, image_root)
    if "label" not in frame:
        raise click.UsageError("the manifest has no 'label' column")
    splits = choose_splits(frame, split_column, group_column, sol_column, val_fraction, seed)
    if not len(splits.get("train", [])):
        raise click.UsageError(f"no labelled rows in the train split (splits: {sorted(splits)})")
    records = records_from_frame(frame, group_column=group_column)
    config = recipe_config(recipe, assignments, backbone=backbone, mode=mode, epochs=epochs,
                           seed=seed, weights=weights, stretch=stretch, tta_views=tta_views,
                           balance=balance, top_blocks=top_blocks, members=members)
    try:
        result = fit([records[i] for i in splits["train"]], config, out_dir,
                     [records[i] for i in splits.get("val", [])], echo_progress(),
                     cache_dir or default_cache_dir(), val_logits, chosen_device(device))
    except ValueError as error:  # e.g. a val label that no training image has
        raise click.UsageError(str(error)) from error
    click.echo(f"model {result.version} written to {out_dir}")
    if "val" in result.metrics:
        report = result.metrics["val"]
        point = report["at_threshold"]
        click.echo(f"val accuracy {report['accuracy']:.3f} (most common class "
                   f"{report['baselines']['most_common']:.3f}); at {point['threshold']}: accuracy "
                   f"{point['accuracy']:.3f}, abstained {point['abstained']:.3f}")
    calibration = result.metrics.get("calibration")
    if calibration:
        click.echo(f"temperature {calibration['temperature']:.3f} "
                   f"({calibration['skipped'] or 'fitted on val'}); ECE ({calibration['ece_bins']} "
                   f"bins) on val {calibration['ece_before']:.3f} before, {calibration['ece_after']:.3f} after")
    click.echo(f"seconds {result.metrics['timings']['total_s']:.1f}, "
               f"peak memory {result.metrics['peak_memory_mb']:.0f} MiB")


@ml.command()
@click.option("--manifest", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--image-root", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--group-column", required=True, help="Whole groups per fold (e.g. source_id).")
@click.option("--folds", default=5, show_default=True)
@click.option("--blocked", is_flag=True,
              help="Folds of consecutive groups in order (e.g. sols: blocks of time).")
@click.option("--split-column", default="split", show_default=True)
@click.option("--pool-splits", default="train,val", show_default=True,
              help="Rows of these splits are pooled; others (test) are never read.")
@click.option("--backbone", type=click.Choice(["efficientnet_lite0", "alexnet"]), default=None)
@click.option("--mode", type=click.Choice(["finetune", "head"]), default=None,
              help="Default: head (the recipe's own mode with --recipe paper).")
@click.option("--epochs", type=int, default=None,
              help="Default: 8 finetune, 5 head (60 with --top-blocks 0).")
@click.option("--stretch", type=click.Choice(STRETCHES), default=None)
@click.option("--tta-views", type=int, default=None,
              help="Dihedral views (head: also trained on). Default: 4 (1 with --top-blocks 0).")
@click.option("--head", "head_kind", type=click.Choice(["linear", "mlp"]), default="linear",
              show_default=True)
@recipe_option
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threshold", default=0.9, show_default=True)
@click.option("--weights", default=None, help="Backbone weights file or URL.")
@click.option("--cache-dir", default=None, help="Embedding and activation cache (head mode).")
@click.option("--json", "json_path", default=None, type=click.Path(dir_okay=False))
@click.option("--only-fold", "only_folds", type=int, multiple=True,
              help="Train and score only this fold (1..folds; repeatable).")
@click.option("--keep-folds", default=None, type=click.Path(file_okay=False),
              help="Keep each fold's held-out logits here; a rerun reads back the folds it finds.")
@balance_option
@device_option
@top_blocks_option
@members_option
@settings_option
def cv(manifest, image_root, group_column, folds, blocked, split_column, pool_splits, backbone,
       mode, epochs, stretch, tta_views, head_kind, recipe, seed, threshold, weights, cache_dir,
       json_path, only_folds, keep_folds, balance, device, top_blocks, members, assignments):
    """Grouped k-fold cross-validation of a training recipe on the pooled train+val rows."""
    frame = read_manifest(manifest, image_root)
    for column in ("label", group_column):
        if column not in frame:
            raise click.UsageError(f"the manifest has no column {column!r}")
    if split_column in frame:
        keep = {name.strip() for name in pool_splits.split(",") if name.strip()}
        left_out = int((~frame[split_column].isin(keep)).sum())
        frame = frame[frame[split_column].isin(keep)]
        click.echo(f"pooled {len(frame)} rows of splits {sorted(keep)}; {left_out} other rows "
                   "left out", err=True)
    records = records_from_frame(frame, group_column=group_column)
    if mode is None and recipe == "default":
        mode = "head"  # cross-validation screens the quick model unless told otherwise
    config = recipe_config(recipe, assignments, backbone=backbone, mode=mode, epochs=epochs,
                           seed=seed, weights=weights, stretch=stretch, tta_views=tta_views,
                           head=head_kind, balance=balance, top_blocks=top_blocks, members=members)
    try:
        report = cross_validate(records, config, folds, cache_dir or default_cache_dir(),
                                echo_progress(), threshold,
                                log=lambda text: click.echo(text, err=True), blocked=blocked,
                                device=chosen_device(device), keep_folds=keep_folds,
                                only_folds=only_folds or None)
    except ValueError as error:
        raise click.UsageError(str(error)) from error
    click.echo(format_report(report))
    if json_path:
        write_json(report, json_path)
        click.echo(f"report written to {json_path}")


@ml.command(name="cv-combine")
@click.argument("folders", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--views", type=int, default=None,
              help="Use only each model's first N test-time views (default: all it kept).")
@click.option("--threshold", default=0.9, show_default=True)
@click.option("--json", "json_path", default=None, type=click.Path(dir_okay=False))
def cv_combine(folders, views, threshold, json_path):
    """Score an ensemble from the --keep-folds folders of cross-validations on the same folds:
    each fold's logits of every model averaged, calibrated and summarised as ml cv does."""
    try:
        results, classes = combine_kept_folds(folders, views)
    except ValueError as error:
        raise click.UsageError(str(error)) from error
    report = summarize(results, classes, TrainConfig(classes=classes), threshold)
    report["config"] = {"combined": list(folders), "views": views}
    click.echo(format_report(report))
    if json_path:
        write_json(report, json_path)
        click.echo(f"report written to {json_path}")


@ml.command()
@click.option("--model", "model_dir", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--manifest", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--image-root", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False))
@click.option("--batch-size", default=32, show_default=True, help="Images per ONNX Runtime call.")
@click.option("--cache-dir", default=None, help="Embedding cache (head models).")
@click.option("--precision", type=click.Choice(["fp32", "int8"]), default="fp32", show_default=True,
              help="int8: the model directory's model.int8.onnx (see docs/classify-speed.md).")
@click.option("--views", type=click.IntRange(1, 8), default=None,
              help="Test-time views averaged (default: the serving path's choice).")
def predict(model_dir, manifest, image_root, out_path, batch_size, cache_dir, precision, views):
    """Write filename, predicted, confidence and p_<class> columns for every manifest row
    (ONNX Runtime; the model's graph is exported into its directory on first use)."""
    from .serving import OnnxPredictor
    frame = read_manifest(manifest, image_root)
    predictor = OnnxPredictor(model_dir, precision, views, threads=ml_settings()["THREADS"] or 0,
                              batch_size=batch_size)
    proba = predictor.proba(list(frame["path"]), cache_dir or default_cache_dir(), echo_progress())
    predictions_frame(frame["filename"], proba, predictor.classes).to_csv(out_path, index=False)
    click.echo(f"{len(frame)} predictions from model {predictor.info.version} "
               f"({precision}, {len(predictor.views)} views) written to {out_path}")


@ml.command()
@click.option("--model", "model_dir", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--manifest", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--image-root", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--threshold", default=0.9, show_default=True)
@click.option("--json", "json_path", required=True, type=click.Path(dir_okay=False))
@click.option("--plots", "plots_dir", default=None, type=click.Path(file_okay=False))
@click.option("--split-column", default="split", show_default=True)
@click.option("--split", "only_split", default=None, help="Evaluate only this split.")
@click.option("--batch-size", default=8, show_default=True)
@click.option("--cache-dir", default=None, help="Embedding cache (head models).")
def evaluate(model_dir, manifest, image_root, threshold, json_path, plots_dir, split_column,
             only_split, batch_size, cache_dir):
    """Accuracy per split beside baselines, threshold curves, per-class results, plots."""
    frame = read_manifest(manifest, image_root)
    if "label" not in frame:
        raise click.UsageError("the manifest has no 'label' column to evaluate against")
    model, info = load_model(model_dir)
    unknown = sorted(set(frame["label"]) - set(info.classes) - {""})
    if unknown:
        raise click.UsageError(f"labels {unknown} are not classes of the model {info.classes}")
    frame = frame[frame["label"] != ""]
    if split_column in frame:
        groups = {name: frame[frame[split_column] == name] for name in frame[split_column].unique()}
    else:
        groups = {"all": frame}
    if only_split:
        groups = {only_split: groups.get(only_split, frame.iloc[:0])}
    counts = info.metrics.get("train_class_counts")
    train_labels = np.repeat(np.arange(len(info.classes)), counts) if counts else None
    report = {"model": str(model_dir), "version": info.version, "threshold": threshold, "splits": {}}
    for name, rows in groups.items():
        proba = proba_from_model(model, info.config, list(rows["path"]), batch_size,
                                 cache_dir or default_cache_dir(), echo_progress())
        labels = np.array([info.classes.index(label) for label in rows["label"]], dtype=int)
        split_report = evaluation_report(proba, labels, info.classes, train_labels, threshold)
        report["splits"][name] = split_report
        point = split_report["at_threshold"]
        click.echo(f"{name}: n={split_report['n']} accuracy {split_report['accuracy']:.3f} "
                   f"(most common {split_report['baselines']['most_common']:.3f}, random "
                   f"{split_report['baselines']['random_uniform']:.3f}); at {threshold}: "
                   f"{point['accuracy']:.3f} with {point['abstained']:.1%} abstained; "
                   f"ECE {split_report['ece']:.3f} (T {info.temperature:.3f})")
        if plots_dir:
            write_plots(split_report, plots_dir, prefix=f"{name}_")
    write_json(report, json_path)
    click.echo(f"report written to {json_path}")


if __name__ == "__main__":
    ml()
