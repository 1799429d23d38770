"""What decides a training run: TrainConfig with its per-mode defaults, and the named recipes.

train.py runs a TrainConfig; this module only says what it holds and how its defaults resolve.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

from .backbones import backbone_spec
from .calibration import MIN_CALIBRATION_EXAMPLES

# Fine-tuning smooths its targets by 0.1: grouped 5-fold CV on HiRISE 91.4% against 90.3% and
# 90.8% (two seeds) without, ahead on every fold of both (docs/reproduction.md, (c)).
MODE_DEFAULTS = {
    "finetune": {"epochs": 8, "lr": 5e-4, "tta_views": 4, "stretch": "percentile",
                 "label_smoothing": 0.1},
    "head": {"epochs": 60, "lr": 1e-3, "tta_views": 1, "stretch": "mixed", "label_smoothing": 0.0},
}
# Head mode with top_blocks > 0: epochs, and the minibatch size of the blocks' training; a
# small label set gets more epochs, up to at least TOP_MIN_STEPS minibatches (measured on
# HiRISE: with 100-1000 labels, 5 epochs fell below the head alone, 400 steps beat it; with 4
# views, 300 steps give up 0.4-1.3 points of 400's and keep a warm retrain of 300 labels
# within a minute on 2 cores) but never more than TOP_MAX_EPOCHS (a handful of labels would
# otherwise take hundreds).
TOP_EPOCHS = 5
TOP_BATCH_SIZE = 32
TOP_MIN_STEPS = 300
TOP_MAX_EPOCHS = 100
# ... but a new project's first retrains (20-100 labels) take fewer: TOP_STEPS_PER_SAMPLE per
# training sample (a view of an image), at least TOP_FEWEST_STEPS. Measured on HiRISE val
# (benchmarks/quick_small_sets.py, 2 seeds): at 20 labels 60 steps gave 65.6% against 67.1%
# for 300 (the head alone 59.3%) in a fifth of the time; at 50 labels 75.9% against 79.2%
# (one seed), hence 150 steps there, and 300 from 100 labels on, as before.
TOP_STEPS_PER_SAMPLE = 0.75
TOP_FEWEST_STEPS = 60
# Head mode with top_blocks > 0 trains on, and averages at prediction, this many dihedral views
# (grouped 5-fold CV on HiRISE: 89.2% against 88.8% with one view, and ECE after the
# temperature 0.028 against 0.043). The head alone keeps the mode's default.
TOP_TTA_VIEWS = 4
# Minibatch size of a head trained alone on pooled embeddings.
HEAD_BATCH_SIZE = 64


@dataclass
class TrainConfig:
    """Everything that decides a training run; saved as JSON in the model directory."""

    backbone: str = "efficientnet_lite0"
    mode: str = "finetune"               # finetune | head
    epochs: int | None = None            # None: 8 for finetune, 60 for head (5 with top_blocks)
    batch_size: int = 16
    lr: float | None = None              # None: 5e-4 finetune (AdamW), 1e-3 head
    head_lr_multiplier: float = 10.0     # new last layer learns this much faster (finetune)
    optimizer: str = "adamw"             # adamw | sgd (the paper's: momentum 0.9)
    schedule: str = "cosine"             # cosine (with warm-up) | step
    step_epochs: int = 2                 # step schedule: lr *= step_gamma every step_epochs
    step_gamma: float = 0.1
    weight_decay: float = 1e-4
    head: str = "linear"                 # linear | mlp
    head_dropout: float | None = None    # None: the backbone's (0.2 / 0.5) for finetune, 0 for head
    augment_views: int = 8               # random dihedral views in training: 1 none, 4 rotations, 8 all
    crop_scale: float = 1.0              # finetune: random square crops of this share of the area
                                         # up to all of it, resized back (1.0: no crops)
    label_smoothing: float | None = None # share of each target spread over all classes
                                         # (None: 0.1 finetune, 0 head)
    fixed_orientation_classes: list[str] = field(default_factory=list)  # never flipped/rotated
    tta_views: int | None = None         # dihedral views averaged at prediction (head: also trained
                                         # on); None: 4 (rotations), 1 for the head alone
    tta_combine: str = "logits"          # logits: softmax of mean logits | probs: mean of softmaxes
    balance: str = "none"                # none | loss (class-weighted) | sampler (balanced batches)
    frozen_blocks: int = 0               # finetune: EfficientNet stem + this many blocks frozen
    top_blocks: int | None = None        # head: last blocks trained over cached activations
                                         # (None: 1 for EfficientNet, 0 for AlexNet; 0: head only)
    stretch: str | None = None           # per-image contrast stretch: none | percentile | mixed | color
    members: int = 1                     # head with top_blocks: models trained with seeds seed,
                                         # seed+1, ... over the same cached activations, averaged
                                         # (None: percentile for finetune, mixed for head)
    calibrate: bool = True               # fit a temperature on the validation records (if any)
    calibration_min_examples: int = MIN_CALIBRATION_EXAMPLES  # fewer: T stays 1
    threshold: float = 0.9               # confidence threshold reported in metrics
    seed: int = 0
    weights: str | None = None           # backbone weights file or URL (None: packaged / hub cache)
    classes: list[str] | None = None     # None: the sorted labels of the training records
    embed_batch_size: int = 8

    def resolved(self) -> "TrainConfig":
        """A copy with the per-mode defaults filled in, validated."""
        if self.mode not in MODE_DEFAULTS:
            raise ValueError(f"unknown mode {self.mode!r}; choose one of {sorted(MODE_DEFAULTS)}")
        spec = backbone_spec(self.backbone)
        defaults = MODE_DEFAULTS[self.mode]
        dropout = spec.dropout if self.mode == "finetune" else 0.0
        top_blocks = 0
        if self.mode == "head":
            top_blocks = self.top_blocks if self.top_blocks is not None else min(1, spec.blocks)
            if not 0 <= top_blocks <= spec.blocks:
                raise ValueError(f"top_blocks of {self.backbone} must be 0 to {spec.blocks}, "
                                 f"not {top_blocks}")
        if self.members < 1 or (self.members > 1 and not top_blocks):
            raise ValueError(f"members must be 1, or more in head mode with top_blocks "
                             f"(the members differ in the retrained blocks), not {self.members}")
        if not 0.0 < self.crop_scale <= 1.0:
            raise ValueError(f"crop_scale must be over 0 and at most 1, not {self.crop_scale}")
        smoothing = self.label_smoothing if self.label_smoothing is not None else defaults["label_smoothing"]
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f"label_smoothing must be 0 or more and under 1, not {smoothing}")
        epochs = TOP_EPOCHS if top_blocks else defaults["epochs"]
        tta_views = TOP_TTA_VIEWS if top_blocks else defaults["tta_views"]
        return replace(
            self,
            top_blocks=top_blocks,
            epochs=self.epochs if self.epochs is not None else epochs,
            lr=self.lr if self.lr is not None else defaults["lr"],
            tta_views=self.tta_views if self.tta_views is not None else tta_views,
            stretch=self.stretch if self.stretch is not None else defaults["stretch"],
            label_smoothing=smoothing,
            head_dropout=self.head_dropout if self.head_dropout is not None else dropout,
        )


def with_settings(config: TrainConfig, assignments: list[str]) -> TrainConfig:
    """A copy of config with FIELD=VALUE assignments applied, each value parsed as its field's
    current value is typed (number, true/false, text; "none" for an optional field is None;
    a list field takes comma-separated names)."""
    known = {f.name for f in fields(TrainConfig)}
    changes = {}
    for assignment in assignments:
        name, sep, text = assignment.partition("=")
        name = name.strip()
        if not sep or name not in known:
            raise ValueError(f"{assignment!r} is not FIELD=VALUE with FIELD one of "
                             f"{', '.join(sorted(known))}")
        changes[name] = parse_setting(name, text.strip(), getattr(config, name))
    return replace(config, **changes)


def parse_setting(name: str, text: str, current):
    """text as a value of the same type as current (None: a number, or text)."""
    try:
        if isinstance(current, bool):
            if text.lower() not in ("true", "false"):
                raise ValueError
            return text.lower() == "true"
        if isinstance(current, list):
            return [part.strip() for part in text.split(",") if part.strip()]
        if text.lower() == "none":
            return None
        if isinstance(current, int):
            return int(text)
        if isinstance(current, float):
            return float(text)
        if current is None:
            for kind in (int, float):
                try:
                    return kind(text)
                except ValueError:
                    pass
        return text
    except ValueError:
        raise ValueError(f"{name}={text!r}: expected a value like {current!r}") from None


def given(overrides: dict) -> dict:
    """The overrides that were given (a command's options left out are None)."""
    return {key: value for key, value in overrides.items() if value is not None}


def paper_recipe(**overrides) -> TrainConfig:
    """The Deep Mars recipe: AlexNet fine-tuned with SGD, base lr 1e-4, step schedule, 10x last layer."""
    settings = dict(backbone="alexnet", mode="finetune", optimizer="sgd", lr=1e-4,
                    schedule="step", step_epochs=2, head_lr_multiplier=10.0, epochs=6, tta_views=1,
                    stretch="none", label_smoothing=0.0)
    return TrainConfig(**(settings | given(overrides)))


def msl_recipe(**overrides) -> TrainConfig:
    """The rover images' recipe: the quick model on colour input, three draws averaged.

    Chosen on the MSL data by blocked 5-fold cross-validation over sols (95.2% +- 3.9%, against
    94.4% +- 4.3% for one grayscale draw) and measured on the paper's val sols: 95.7%, and 98.0%
    right with 3.7% abstained at 0.9 (docs/reproduction.md, MSL).
    """
    settings = dict(mode="head", stretch="color", members=3)
    return TrainConfig(**(settings | given(overrides)))


def default_recipe(**overrides) -> TrainConfig:
    """TrainConfig's own defaults, with the given settings that are not None."""
    return TrainConfig(**given(overrides))


# --recipe of ml train and ml cv.
RECIPES = {"default": default_recipe, "paper": paper_recipe, "msl": msl_recipe}
