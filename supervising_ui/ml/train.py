"""Training: head-only over cached embeddings, or fine-tuning end to end.

``fit(train_records, config, out_dir, val_records=...)`` is what the app and the console
commands call. Modes:

* ``finetune`` (default): the whole network learns (optionally with the first
  ``frozen_blocks`` EfficientNet blocks frozen); AdamW, cosine schedule, a larger learning
  rate on the new last layer, targets smoothed by 0.1, dihedral augmentation, test-time
  averaging of 4 rotations (mean logits).
* ``head`` (the app's quick model): the network below the last ``top_blocks`` blocks stays
  frozen; what it computes is cached on disk by image content hash, and only the rest
  trains on those cached features: with ``top_blocks`` 0 a linear or small MLP head over the
  pooled embeddings (seconds, one view), with 1 (the EfficientNet default) also the last
  block and the final convolution, trained on and averaging 4 rotations (about a minute;
  2.9 points more in grouped cross-validation on HiRISE).
"""
from __future__ import annotations

import math
import os
import resource
import time
from dataclasses import asdict
from typing import Sequence

import torch
from torch import nn

from .backbones import (
    Classifier,
    Ensemble,
    Top,
    backbone_spec,
    build_head,
    frozen_and_trained,
    load_backbone,
)
from .calibration import (
    calibration_refusal,
    calibration_summary,
    fit_temperature,
)
from .data import Preprocessing, Record, augment, random_resized_crops
from .embeddings import (
    EmbeddingCache,
    Progress,
    embed_records,
    feature_cache,
    module_device,
    run_features,
    run_views,
)
from .metrics import evaluation_report
from .model_dir import ModelDir, save_model
from .predict import combine_views
from .recipe import (
    HEAD_BATCH_SIZE,
    TOP_BATCH_SIZE,
    TOP_FEWEST_STEPS,
    TOP_MAX_EPOCHS,
    TOP_MIN_STEPS,
    TOP_STEPS_PER_SAMPLE,
    TrainConfig,
)


def choose_device(name: str = "auto") -> torch.device:
    """The torch device to train on: "auto" is the GPU when torch sees one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("no CUDA device is available: use --device cpu (or auto)")
    return device


def peak_memory_mb() -> float:
    """Peak resident memory of this process in MiB (Linux ru_maxrss is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def label_indices(records: Sequence[Record], classes: Sequence[str]) -> torch.Tensor:
    """Class indices of labelled records; an unknown label is a ValueError."""
    lookup = {name: index for index, name in enumerate(classes)}
    unknown = sorted({r.label for r in records if r.label not in lookup})
    if unknown:
        raise ValueError(f"labels {unknown} are not among the classes {list(classes)}")
    return torch.tensor([lookup[r.label] for r in records], dtype=torch.long)


def class_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Inverse-frequency weights, averaging 1 over the training samples."""
    counts = torch.bincount(labels, minlength=num_classes).float().clamp(min=1)
    return len(labels) / (num_classes * counts)


def epoch_order(labels: torch.Tensor, balance: str, generator: torch.Generator) -> torch.Tensor:
    """Sample order for one epoch: a permutation, or balanced sampling with replacement."""
    if balance == "sampler":
        weights = class_weights(labels, int(labels.max()) + 1)[labels]
        return torch.multinomial(weights, len(labels), replacement=True, generator=generator)
    return torch.randperm(len(labels), generator=generator)


def make_scheduler(optimizer, config: TrainConfig, steps_per_epoch: int):
    """Per-step LR schedule: linear warm-up then cosine decay, or a step decay by epochs."""
    total = max(1, config.epochs * steps_per_epoch)
    warmup = min(100, total // 10)

    def cosine(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    def step_decay(step: int) -> float:
        return config.step_gamma ** ((step // steps_per_epoch) // config.step_epochs)

    if config.schedule not in ("cosine", "step"):
        raise ValueError(f"unknown schedule {config.schedule!r}; choose 'cosine' or 'step'")
    return torch.optim.lr_scheduler.LambdaLR(optimizer, cosine if config.schedule == "cosine" else step_decay)


def make_optimizer(model: Classifier, config: TrainConfig):
    """AdamW or SGD with the new head at head_lr_multiplier times the base rate."""
    backbone_params = [p for p in model.backbone.parameters() if p.requires_grad]
    groups = [{"params": backbone_params, "lr": config.lr},
              {"params": list(model.head.parameters()), "lr": config.lr * config.head_lr_multiplier}]
    groups = [g for g in groups if g["params"]]
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=0.9, weight_decay=config.weight_decay)
    raise ValueError(f"unknown optimizer {config.optimizer!r}; choose 'adamw' or 'sgd'")


def freeze_bottom(model: Classifier, frozen_blocks: int) -> list[nn.Module]:
    """Freeze the EfficientNet stem and first blocks; return the frozen modules (kept in eval)."""
    if frozen_blocks <= 0:
        return []
    net = getattr(model.backbone, "net", None)
    if not hasattr(net, "_blocks"):
        raise ValueError("frozen_blocks applies to EfficientNet backbones only")
    frozen = [net._conv_stem, net._bn0] + list(net._blocks[:frozen_blocks])
    for module in frozen:
        module.requires_grad_(False)
    return frozen


def train_one_epoch(model: Classifier, pixels: torch.Tensor, labels: torch.Tensor,
                    label_names: Sequence[str], optimizer, scheduler, loss_fn: nn.Module,
                    preprocessing: Preprocessing, config: TrainConfig, generator: torch.Generator,
                    frozen: Sequence[nn.Module] = (), progress: Progress | None = None,
                    stage: str = "train") -> float:
    """One pass over the training images with random dihedral views; returns the mean loss."""
    model.train()
    for module in frozen:
        module.eval()
    device = module_device(model)
    order = epoch_order(labels, config.balance, generator)
    total_loss, seen = 0.0, 0
    for start in range(0, len(order), config.batch_size):
        index = order[start:start + config.batch_size]
        batch = augment(pixels[index], [label_names[i] for i in index], generator,
                        config.augment_views, config.fixed_orientation_classes).to(device)
        inputs = preprocessing.to_input(batch)
        if config.crop_scale < 1.0:
            inputs = random_resized_crops(inputs, config.crop_scale, generator)
        loss = loss_fn(model(inputs), labels[index].to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        total_loss += loss.item() * len(index)
        seen += len(index)
        if progress:
            progress(stage, seen, len(order))
    return total_loss / max(seen, 1)


def optimization_plan(trained: nn.Module, config: TrainConfig, samples: int) -> tuple[list, int, int]:
    """(parameter groups, batch size, epochs) of training on cached features.

    A lone head learns at config.lr in batches of HEAD_BATCH_SIZE for config.epochs. A Top's
    blocks learn at config.lr and its head head_lr_multiplier times faster, in batches of
    TOP_BATCH_SIZE, for config.epochs but at least TOP_MIN_STEPS minibatches (fewer for a
    small label set: TOP_STEPS_PER_SAMPLE per sample, at least TOP_FEWEST_STEPS; at most
    TOP_MAX_EPOCHS epochs).
    """
    if not isinstance(trained, Top):
        return [{"params": list(trained.parameters()), "lr": config.lr}], HEAD_BATCH_SIZE, config.epochs
    groups = [{"params": trained.backbone.top_parameters(trained.top_blocks), "lr": config.lr},
              {"params": list(trained.head.parameters()), "lr": config.lr * config.head_lr_multiplier}]
    steps = math.ceil(samples / TOP_BATCH_SIZE)
    min_steps = min(TOP_MIN_STEPS, max(TOP_FEWEST_STEPS, math.ceil(TOP_STEPS_PER_SAMPLE * samples)))
    epochs = max(config.epochs, min(TOP_MAX_EPOCHS, math.ceil(min_steps / steps)))
    return groups, TOP_BATCH_SIZE, epochs


def train_on_features(trained: nn.Module, features: torch.Tensor, labels: torch.Tensor,
                      config: TrainConfig, loss_fn: nn.Module, generator: torch.Generator,
                      progress: Progress | None = None) -> None:
    """Minibatch AdamW of the trained part over cached features (V, N, ...): every view is a sample.

    progress hears ("fit", epochs done, epochs) after each epoch.
    """
    views, count = features.shape[:2]
    samples = features.reshape(views * count, *features.shape[2:])
    targets = labels.repeat(views)
    groups, batch_size, epochs = optimization_plan(trained, config, len(targets))
    optimizer = torch.optim.AdamW(groups, weight_decay=config.weight_decay)
    steps = math.ceil(len(targets) / batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * step / max(1, epochs * steps))))
    device = module_device(trained)
    trained.train()
    threads = torch.get_num_threads()
    if not isinstance(trained, Top):  # a lone head's steps are tiny: a second thread only waits
        torch.set_num_threads(1)
    try:
        for epoch in range(epochs):
            order = epoch_order(targets, config.balance, generator)
            for start in range(0, len(order), batch_size):
                index = order[start:start + batch_size]
                batch = samples[index].to(device).float()
                loss = loss_fn(trained(batch), targets[index].to(device))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
            if progress:
                progress("fit", epoch + 1, epochs)
    finally:
        torch.set_num_threads(threads)
    trained.eval()


def new_classifier(config: TrainConfig, num_classes: int) -> Classifier:
    """The pretrained backbone under a freshly initialised head (draws from torch's seed)."""
    backbone = load_backbone(config.backbone, config.weights)
    head = build_head(backbone.feature_dim, num_classes, config.head, config.head_dropout)
    return Classifier(backbone, head).to(memory_format=torch.channels_last)


def train_member(features: torch.Tensor, labels: torch.Tensor, num_classes: int, config: TrainConfig,
                 loss_fn: nn.Module, seed: int, device: torch.device) -> Classifier:
    """One more member of a head-mode ensemble: what fit() trains with this seed, over the same
    cached features (the same random draws, in the same order, as a run of its own)."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    member = new_classifier(config, num_classes).to(device)
    _, trained = frozen_and_trained(member, config.top_blocks)
    train_on_features(trained, features, labels, config, loss_fn, generator)
    return member


def evaluate(model: Classifier | Ensemble, records: Sequence[Record], preprocessing: Preprocessing,
             config: TrainConfig, cache: EmbeddingCache | None = None,
             progress: Progress | None = None) -> torch.Tensor:
    """(V, N, C) logits over the TTA views; head models reuse cached embeddings."""
    views = list(range(config.tta_views))
    if config.mode == "head":
        frozen, trained = frozen_and_trained(model, config.top_blocks)
        features = embed_records(frozen, records, preprocessing, views, cache,
                                 config.embed_batch_size, progress)
        return run_features(trained, features)
    pixels = preprocessing.load_images([r.path for r in records])
    return run_views(model, pixels, preprocessing, views, config.embed_batch_size, progress, "evaluate")


def fit(train_records: Sequence[Record], config: TrainConfig, out_dir: str | os.PathLike,
        val_records: Sequence[Record] = (), progress: Progress | None = None,
        cache_dir: str | os.PathLike | None = None,
        logits_out: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> ModelDir:
    """Train on labelled records, evaluate on val_records, write a model directory.

    device: where the network runs ("cpu", "cuda", "auto"); images stay in CPU memory and
    go over a batch at a time. The recipe is the same on every device; a GPU's arithmetic
    differs in rounding only (TF32 is switched off), and the saved model is on the CPU.
    """
    started = time.perf_counter()
    config = config.resolved()
    train_records = [r for r in train_records if r.label]
    val_records = [r for r in val_records if r.label]
    if not train_records:
        raise ValueError("no labelled training records")
    classes = list(config.classes) if config.classes else sorted({r.label for r in train_records})
    train_labels = label_indices(train_records, classes)
    val_labels = label_indices(val_records, classes)

    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    spec = backbone_spec(config.backbone)
    preprocessing = Preprocessing(spec.image_size, spec.normalization, config.stretch)
    model = new_classifier(config, len(classes))
    backbone = model.backbone
    device = choose_device(str(device))
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cudnn.benchmark = True  # fixed input size: pick the fastest kernels once
    # Head mode trains on cached features in CPU memory; a lone head stays on the CPU.
    (backbone if config.mode == "head" and not config.top_blocks else model).to(device)
    weights = class_weights(train_labels, len(classes)) if config.balance == "loss" else None
    loss_fn = nn.CrossEntropyLoss(weight=weights, label_smoothing=config.label_smoothing)
    if config.mode != "head":
        loss_fn.to(device)
    cache = feature_cache(cache_dir, config.backbone, preprocessing, config.weights,
                          config.top_blocks) if cache_dir is not None else None
    timings: dict[str, float] = {}
    history: list[dict] = []

    tick = time.perf_counter()
    if config.mode == "head":
        frozen, trained = frozen_and_trained(model, config.top_blocks)
        features = embed_records(frozen, train_records, preprocessing, list(range(config.tta_views)),
                                 cache, config.embed_batch_size, progress)
        timings["embed_train_s"] = time.perf_counter() - tick
        tick = time.perf_counter()
        train_on_features(trained, features, train_labels, config, loss_fn, generator, progress)
        if config.members > 1:
            model = Ensemble([model] + [
                train_member(features, train_labels, len(classes), config, loss_fn, config.seed + m, device)
                for m in range(1, config.members)], config.top_blocks)
        del features
    else:
        pixels = preprocessing.load_images([r.path for r in train_records])
        frozen = freeze_bottom(model, config.frozen_blocks)
        optimizer = make_optimizer(model, config)
        steps = math.ceil(len(train_records) / config.batch_size)
        scheduler = make_scheduler(optimizer, config, steps)
        names = [r.label for r in train_records]
        for epoch in range(config.epochs):
            epoch_start = time.perf_counter()
            loss = train_one_epoch(model, pixels, train_labels, names, optimizer, scheduler, loss_fn,
                                   preprocessing, config, generator, frozen, progress,
                                   f"epoch {epoch + 1}/{config.epochs}")
            history.append({"epoch": epoch + 1, "loss": loss,
                            "seconds": time.perf_counter() - epoch_start})
        del pixels
    timings["train_s"] = time.perf_counter() - tick

    temperature = 1.0
    metrics = {"history": history, "n_train": len(train_records), "device": device.type,
               "train_class_counts": torch.bincount(train_labels, minlength=len(classes)).tolist()}
    if val_records:
        tick = time.perf_counter()
        logits = evaluate(model, val_records, preprocessing, config, cache, progress)
        timings["evaluate_s"] = time.perf_counter() - tick
        if config.calibrate:
            refusal = calibration_refusal(logits, val_labels.numpy(), config.tta_combine,
                                          config.calibration_min_examples)
            if refusal is None:
                temperature = fit_temperature(logits, val_labels.numpy(), config.tta_combine)
            metrics["calibration"] = calibration_summary(logits, val_labels.numpy(), temperature,
                                                         config.tta_combine) | {"skipped": refusal}
        proba = combine_views(logits, temperature, config.tta_combine)
        metrics["val"] = evaluation_report(proba, val_labels.numpy(), classes,
                                           train_labels.numpy(), config.threshold)
        if logits_out is not None:
            torch.save({"logits": logits, "labels": val_labels, "classes": classes}, logits_out)
    timings["total_s"] = time.perf_counter() - started
    metrics["timings"] = timings
    metrics["peak_memory_mb"] = peak_memory_mb()
    model.to("cpu")
    saved = {
        "train_config": asdict(config),
        "preprocessing": asdict(preprocessing),
        "tta_views": config.tta_views,
        "tta_combine": config.tta_combine,
        "head_dropout": config.head_dropout,
        "mode": config.mode,
        "backbone": config.backbone,
    }
    if config.mode != "head":
        backbone_state = backbone.state_dict()
    else:
        backbone_state = backbone.top_state(config.top_blocks) if config.top_blocks else None
    return save_model(out_dir, model, classes, saved, metrics, temperature, backbone_state)
