"""The model directory: weights (model.pt), config.json and metrics.json.

config.json holds the fitted temperature (1.0 if none) and metrics.json its "calibration"
block (ECE and NLL before and after, on which records it was fitted).

``model.pt`` is a plain dict of state dicts and plain values, so it loads with
``torch.load(..., weights_only=True)``. A head-only model stores no backbone weights:
they are the pretrained ones, loaded again by name; a quick model that retrained the last
blocks stores those blocks only ("backbone_partial"), loaded over the pretrained ones; an
ensemble of such models stores its other members' blocks and heads under "members".
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .backbones import Classifier, Ensemble, build_backbone, build_head, load_backbone
from .data import Preprocessing

FORMAT_VERSION = 1
WEIGHTS_FILE, CONFIG_FILE, METRICS_FILE = "model.pt", "config.json", "metrics.json"


@dataclass
class ModelDir:
    """What a saved model is: where, which version, its classes, config and metrics."""

    path: Path
    version: str
    classes: list[str]
    config: dict
    metrics: dict = field(default_factory=dict)

    @property
    def temperature(self) -> float:
        """The logits' divisor fitted on held-out data (1.0: none fitted, or an older directory)."""
        return float(self.config.get("temperature", 1.0))

    @property
    def preprocessing(self) -> Preprocessing:
        """The preprocessing the model was trained with."""
        return Preprocessing(**self.config["preprocessing"])


def weights_version(state: dict) -> str:
    """A short content hash of all tensors: equal weights give equal versions."""
    digest = hashlib.sha1()
    for member in [state] + list(state.get("members") or []):
        for part in ("backbone", "head"):
            for name, tensor in sorted((member.get(part) or {}).items()):
                digest.update(name.encode())
                digest.update(tensor.detach().contiguous().numpy().tobytes())
    return digest.hexdigest()[:12]


def save_model(out_dir: str | os.PathLike, model: Classifier | Ensemble, classes: list[str],
               config: dict, metrics: dict, temperature: float,
               backbone_state: dict[str, torch.Tensor] | None) -> ModelDir:
    """Write model.pt, config.json and metrics.json; return the ModelDir.

    backbone_state: the backbone tensors to store: all of its state_dict(), some of them (the
    rest are the pretrained backbone's), or None (the pretrained backbone, loaded by name).
    An Ensemble stores its first member so, and under "members" the same tensors (the
    retrained blocks and the head) of each other member.
    """
    members = list(model.members) if isinstance(model, Ensemble) else [model]
    model = members[0]
    partial = backbone_state is not None and backbone_state.keys() != model.backbone.state_dict().keys()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {
        "format_version": FORMAT_VERSION,
        "backbone": {k: v.detach().clone() for k, v in backbone_state.items()}
        if backbone_state is not None else None,
        "backbone_partial": partial,
        "head": {k: v.detach().clone() for k, v in model.head.state_dict().items()},
        "classes": list(classes),
        "temperature": float(temperature),
    }
    if len(members) > 1:
        state["members"] = [{
            "backbone": {k: v.detach().clone() for k, v in member.backbone.state_dict().items()
                         if k in backbone_state},
            "head": {k: v.detach().clone() for k, v in member.head.state_dict().items()},
        } for member in members[1:]]
    version = weights_version(state)
    torch.save(state, out / WEIGHTS_FILE)
    full_config = dict(config, classes=list(classes), version=version, temperature=float(temperature),
                       format_version=FORMAT_VERSION, torch_version=torch.__version__)
    (out / CONFIG_FILE).write_text(json.dumps(full_config, indent=2) + "\n")
    (out / METRICS_FILE).write_text(json.dumps(metrics, indent=2, default=float) + "\n")
    return ModelDir(out, version, list(classes), full_config, metrics)


def read_model_dir(path: str | os.PathLike) -> ModelDir:
    """Read config.json and metrics.json (not the weights)."""
    path = Path(path)
    if not (path / CONFIG_FILE).is_file():
        raise FileNotFoundError(f"{path} is not a model directory (no {CONFIG_FILE})")
    config = json.loads((path / CONFIG_FILE).read_text())
    metrics_path = path / METRICS_FILE
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    return ModelDir(path, config["version"], config["classes"], config, metrics)


def load_model(path: str | os.PathLike) -> tuple[Classifier | Ensemble, ModelDir]:
    """Rebuild the trained network (an Ensemble for several members) from a model directory
    (weights_only=True)."""
    info = read_model_dir(path)
    state = torch.load(Path(path) / WEIGHTS_FILE, map_location="cpu", weights_only=True)
    model = _classifier(path, state, info)
    if state.get("members"):
        model = Ensemble([model] + [_classifier(path, dict(state, **member), info)
                                    for member in state["members"]],
                         info.config["train_config"]["top_blocks"])
    # Directories written before calibration existed carry no temperature: T = 1 (raw softmax).
    info.config["temperature"] = float(state.get("temperature", info.temperature))
    return model, info


def read_temperature(path: str | os.PathLike) -> float:
    """The temperature load_model() gives the model: model.pt's, else config.json's, else 1."""
    state = torch.load(Path(path) / WEIGHTS_FILE, map_location="cpu", weights_only=True)
    return float(state.get("temperature", read_model_dir(path).temperature))


def _classifier(path: str | os.PathLike, state: dict, info: ModelDir) -> Classifier:
    """The classifier of one member's tensors ("backbone", "head") over its backbone."""
    train = info.config["train_config"]
    if state["backbone"] is None:
        backbone = load_backbone(train["backbone"], train.get("weights"))
    elif state.get("backbone_partial"):
        backbone = load_backbone(train["backbone"], train.get("weights"))
        unknown = set(state["backbone"]) - set(backbone.state_dict())
        if unknown:
            raise ValueError(f"{path}: weights for {len(unknown)} tensors this backbone does not "
                             f"have, e.g. {sorted(unknown)[0]}")
        backbone.load_state_dict(state["backbone"], strict=False)
    else:
        backbone = build_backbone(train["backbone"])
        backbone.load_state_dict(state["backbone"], strict=True)
    head = build_head(backbone.feature_dim, len(state["classes"]), train["head"],
                      info.config.get("head_dropout", 0.0))
    head.load_state_dict(state["head"], strict=True)
    return Classifier(backbone, head).to(memory_format=torch.channels_last).eval()
