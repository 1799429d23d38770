"""The frozen part's features of many images, computed ahead of training, by ONNX Runtime.

A quick (head-mode) model trains and predicts over what its frozen part computes, cached by
image content hash (embeddings.EmbeddingCache). precompute_features fills that cache for a set
of images (those already there are skipped) on the serving path's fast inference: the frozen
part alone (the normalisation, the pretrained network below what the recipe trains) is
exported once per cache key to ``frozen.onnx`` in the key's folder, and threads decode the
next batches while ONNX Runtime runs the current one (serving.prefetched). The app runs it when
images are imported and at the start of a quick retrain, so that training and predicting then
read features only.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from .backbones import Classifier, backbone_spec, build_head, frozen_and_trained, load_backbone
from .data import Preprocessing, Record, with_hashes
from .embeddings import EmbeddingCache, Progress, feature_cache
from .onnx_export import INPUT, OPSET, _temporary_beside, input_channels
from .recipe import TrainConfig
from .serving import BATCH_SIZE, DECODE_THREADS, prefetched

FROZEN_FILE = "frozen.onnx"
FEATURES_OUTPUT = "features"


class FrozenGraph(nn.Module):
    """Stretched channels (N, 1 or 3, H, W), floats 0-255 -> the frozen part's features."""

    def __init__(self, frozen: nn.Module, preprocessing: Preprocessing):
        super().__init__()
        self.frozen, self.preprocessing = frozen, preprocessing

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """Normalise, make three channels, run the frozen part."""
        return self.frozen(self.preprocessing.normalized(pixels))


def head_config(config: TrainConfig) -> tuple[TrainConfig, Preprocessing]:
    """The resolved head-mode config and its preprocessing (refuses a fine-tune's config)."""
    config = config.resolved()
    if config.mode != "head":
        raise ValueError("features are precomputed for head mode (the quick model) only")
    spec = backbone_spec(config.backbone)
    return config, Preprocessing(spec.image_size, spec.normalization, config.stretch)


def frozen_graph_path(cache: EmbeddingCache, config: TrainConfig,
                      preprocessing: Preprocessing) -> Path:
    """The cache key's ONNX graph of the frozen part, exported now if missing (atomically)."""
    target = cache.root / FROZEN_FILE
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    backbone = load_backbone(config.backbone, config.weights)
    model = Classifier(backbone, build_head(backbone.feature_dim, 2))
    frozen, _ = frozen_and_trained(model, config.top_blocks)
    graph = FrozenGraph(frozen, preprocessing).eval()
    size = preprocessing.image_size
    example = torch.full((2, input_channels(preprocessing), size, size), 127.0)
    with _temporary_beside(target) as temporary, torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(graph, (example,), str(temporary), input_names=[INPUT],
                          output_names=[FEATURES_OUTPUT], opset_version=OPSET, dynamo=False,
                          dynamic_axes={name: {0: "batch"} for name in (INPUT, FEATURES_OUTPUT)})
        os.replace(temporary, target)
    return target


def missing_features(records: Sequence[Record], cache: EmbeddingCache,
                     views: Sequence[int]) -> list[Record]:
    """The records (with content hashes) that lack the cached features of some view."""
    return [record for record in with_hashes(records)
            if not all(cache.path(record.content_hash, view).is_file() for view in views)]


def precompute_features(records: Sequence[Record], config: TrainConfig,
                        cache_dir: str | os.PathLike, progress: Progress | None = None,
                        threads: int = 0, batch_size: int = BATCH_SIZE) -> int:
    """Cache the frozen part's features of every view that config trains on, for the records
    that lack them; return how many images were computed (0: all were cached).

    progress hears ("embed", done, to do) per batch; threads: ONNX Runtime's (0: one per core).
    """
    import onnxruntime

    config, preprocessing = head_config(config)
    cache = feature_cache(cache_dir, config.backbone, preprocessing, config.weights,
                          config.top_blocks)
    views = list(range(config.tta_views))
    todo = missing_features(records, cache, views)
    if not todo:
        return 0
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = onnxruntime.InferenceSession(str(frozen_graph_path(cache, config, preprocessing)),
                                           options, providers=["CPUExecutionProvider"])
    done = 0
    for start, batch in zip(range(0, len(todo), batch_size),
                            prefetched([r.path for r in todo], preprocessing, views, batch_size,
                                       DECODE_THREADS), strict=True):
        chunk = todo[start:start + batch_size]
        (features,) = session.run([FEATURES_OUTPUT], {INPUT: batch})
        features = features.reshape(len(views), len(chunk), *features.shape[1:])
        for view_position, view in enumerate(views):
            for position, record in enumerate(chunk):
                cache.put(record.content_hash, view, np.asarray(features[view_position, position]))
        done += len(chunk)
        if progress:
            progress("embed", done, len(todo))
    return done
