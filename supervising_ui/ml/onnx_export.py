"""The serving model as ONNX: the whole inference graph of a model directory, and its int8 copy.

The graph takes what the decoding threads make of the images, the stretched channels as
floats 0-255 (N, 1 or 3, H, W) (Preprocessing.stretched: the percentile stretch stays in torch,
whose quantile ONNX lacks), and runs the rest: the normalisation, the three channels, the
network. A quick model (head mode) is exported whole, the frozen blocks, the retrained last
blocks and the head (and every member of an ensemble); its graph also hands out the frozen
part's output ("features"), which the embedding cache keeps, so that a later retrain and its
predictions need not decode the image again (ml/serving.py).

The files live in the model directory beside model.pt (``model.onnx``, ``model.int8.onnx``); a
directory without one is exported on first use. Model directories never change once written,
so a file present is current; it is written to a temporary name and renamed, so two workers
exporting at once both leave a whole file.
"""
from __future__ import annotations

import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch import nn

from .backbones import frozen_and_trained
from .data import Preprocessing
from .model_dir import ModelDir, load_model, read_model_dir

log = logging.getLogger(__name__)

ONNX_FILES = {"fp32": "model.onnx", "int8": "model.int8.onnx"}
PRECISIONS = tuple(ONNX_FILES)
INPUT, LOGITS, FEATURES = "pixels", "logits", "features"
OPSET = 17


class ServingGraph(nn.Module):
    """Stretched channels (N, 1 or 3, H, W), floats 0-255 -> (N, C) logits [and the frozen
    part's features, for a head-mode model]."""

    def __init__(self, model: nn.Module, preprocessing: Preprocessing, top_blocks: int | None):
        super().__init__()
        self.preprocessing = preprocessing
        self.with_features = top_blocks is not None
        if self.with_features:
            self.frozen, self.trained = frozen_and_trained(model, top_blocks)
        else:
            self.model = model

    def forward(self, pixels: torch.Tensor):
        """Normalise, make three channels, run the network."""
        x = self.preprocessing.normalized(pixels)
        if not self.with_features:
            return self.model(x)
        features = self.frozen(x)
        return self.trained(features), features


def onnx_path(model_dir: str | os.PathLike, precision: str = "fp32") -> Path:
    """Where a model directory keeps its ONNX graph of this precision."""
    if precision not in ONNX_FILES:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    return Path(model_dir) / ONNX_FILES[precision]


def has_features(info: ModelDir) -> bool:
    """Whether the model's graph hands out features for the embedding cache (head mode)."""
    return info.config["train_config"]["mode"] == "head"


def input_channels(preprocessing: Preprocessing) -> int:
    """Channels of the graph's input: 3 for mixed and colour, else 1 (the graph repeats it)."""
    return 3 if preprocessing.stretch in ("mixed", "color") else 1


def export_onnx(model_dir: str | os.PathLike) -> Path:
    """Export the model directory's network to model.onnx (fp32, any batch size); return its path."""
    model, info = load_model(model_dir)
    train = info.config["train_config"]
    top_blocks = (train.get("top_blocks") or 0) if has_features(info) else None
    graph = ServingGraph(model, info.preprocessing, top_blocks).eval()
    size = info.preprocessing.image_size
    example = torch.full((2, input_channels(info.preprocessing), size, size), 127.0)
    outputs = [LOGITS, FEATURES] if top_blocks is not None else [LOGITS]
    target = onnx_path(model_dir)
    with _temporary_beside(target) as temporary, torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(graph, (example,), str(temporary), input_names=[INPUT],
                          output_names=outputs, opset_version=OPSET, dynamo=False,
                          dynamic_axes={name: {0: "batch"} for name in [INPUT, *outputs]})
        os.replace(temporary, target)
    log.info("exported %s (%d bytes)", target, target.stat().st_size)
    return target


def quantize_int8(model_dir: str | os.PathLike, batches: Iterator[np.ndarray]) -> Path:
    """ONNX Runtime's static int8 quantization of model.onnx (QDQ, weights per channel),
    calibrated on the given input batches (a few hundred images); return its path."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def get_next(self):
            batch = next(batches, None)
            return None if batch is None else {INPUT: batch}

    source, target = ensure_onnx(model_dir), onnx_path(model_dir, "int8")
    with _temporary_beside(target) as prepared, _temporary_beside(target) as temporary:
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        quantize_static(str(prepared), str(temporary), Reader(), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax)
        os.replace(temporary, target)
    return target


def ensure_onnx(model_dir: str | os.PathLike, precision: str = "fp32") -> Path:
    """The model directory's ONNX graph, exported now if it has none (fp32; int8 is made by
    quantize_int8, which needs calibration images)."""
    path = onnx_path(model_dir, precision)
    if path.is_file():
        return path
    if precision != "fp32":
        raise FileNotFoundError(f"{path} does not exist: quantize_int8() makes it from "
                                "calibration images")
    read_model_dir(model_dir)  # a clear error for a folder that is no model directory
    return export_onnx(model_dir)


class _temporary_beside:
    """A temporary file name in the target's folder (renamed over the target when whole),
    removed on exit if it is still there."""

    def __init__(self, target: Path):
        self.target = target

    def __enter__(self) -> Path:
        descriptor, name = tempfile.mkstemp(dir=self.target.parent, prefix=".incoming-",
                                            suffix=".onnx")
        os.close(descriptor)
        self.path = Path(name)
        return self.path

    def __exit__(self, *exc) -> None:
        self.path.unlink(missing_ok=True)
