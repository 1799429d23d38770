"""The inference path made for throughput: a model directory's ONNX graph in ONNX Runtime.

Threads decode and stretch the next batches (Pillow, with its draft mode for JPEGs larger
than needed, and torch's percentile stretch release the GIL) while ONNX Runtime runs the
current one, all test-time views of a batch in one call. Every probability goes through
predict.combine_views with the model's temperature, as on the torch path.

A head-mode (quick) model with an embedding cache: images whose features are cached skip the
frozen blocks (their trained part runs over the cache, as training does), and the graph's
features of the others are cached, so that a retrain and its predictions after a classify
job decode no image again.
"""
from __future__ import annotations

import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from .data import Preprocessing, Record, as_records, dihedral, with_hashes
from .embeddings import EmbeddingCache, Progress, embed_records, feature_cache, run_features
from .model_dir import read_model_dir, read_temperature
from .onnx_export import FEATURES, INPUT, LOGITS, ensure_onnx, has_features
from .predict import combine_views
from .serving_choice import serving_views

# Images per ONNX Runtime call (times the views).
BATCH_SIZE = 32
# Threads that decode and stretch images while ONNX Runtime runs.
DECODE_THREADS = 2


def network_input(paths: Sequence[str], preprocessing: Preprocessing, views: Sequence[int]) -> np.ndarray:
    """Decode and stretch images, every view of each: (V * N, 1 or 3, H, W) float32, view-major."""
    stretched = preprocessing.stretched(preprocessing.load_images(paths))
    return torch.cat([dihedral(stretched, view) for view in views]).contiguous().numpy()


def prefetched(paths: Sequence[str], preprocessing: Preprocessing, views: Sequence[int],
               batch_size: int = BATCH_SIZE, threads: int = DECODE_THREADS) -> Iterator[np.ndarray]:
    """network_input() of successive batches, decoded by threads ahead of the consumer."""
    starts = range(0, len(paths), batch_size)
    with ThreadPoolExecutor(max(1, threads), thread_name_prefix="decode") as pool:
        pending: deque = deque()
        for start in starts:
            pending.append(pool.submit(network_input, paths[start:start + batch_size],
                                       preprocessing, views))
            if len(pending) > threads:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


class OnnxPredictor:
    """A model directory's graph in ONNX Runtime: images -> calibrated class probabilities.

    precision: "fp32" (exported on first use) or "int8" (onnx_export.quantize_int8);
    views: test-time views (None: serving_views); threads: ONNX Runtime's threads (0: one per
    core; give fewer where several workers share the cores).
    """

    def __init__(self, model_dir: str | os.PathLike, precision: str = "fp32",
                 views: int | None = None, threads: int = 0, batch_size: int = BATCH_SIZE,
                 decode_threads: int = DECODE_THREADS):
        self.model_dir = Path(model_dir)
        self.info = read_model_dir(model_dir)
        self.info.config["temperature"] = read_temperature(model_dir)  # as load_model() has it
        self.preprocessing = self.info.preprocessing
        self.views = serving_views(self.info.config, views)
        self.batch_size, self.decode_threads, self.precision = batch_size, decode_threads, precision
        self.threads = threads
        # The graph's outputs (a head-mode model's graph also hands out its features); the
        # session itself is made on first use: images whose features are all cached need none,
        # and exporting the graph takes seconds.
        self.outputs = [LOGITS, FEATURES] if has_features(self.info) else [LOGITS]
        self._session = None
        self._trained = None

    @property
    def session(self):
        """The ONNX Runtime session of the model's graph (exported on first use)."""
        if self._session is None:
            import onnxruntime
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
            # Spinning threads would take the cores from the decoding threads between calls.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            self._session = onnxruntime.InferenceSession(
                str(ensure_onnx(self.model_dir, self.precision)), options,
                providers=["CPUExecutionProvider"])
            self.outputs = [output.name for output in self._session.get_outputs()]
        return self._session

    @property
    def classes(self) -> list[str]:
        """The model's classes, the columns of proba()."""
        return self.info.classes

    def proba(self, images: Sequence[str | Record], cache_dir: str | os.PathLike | None = None,
              progress: Progress | None = None) -> np.ndarray:
        """(N, C) probabilities (rows sum to 1) after the model's temperature, columns in
        the model's class order."""
        logits = self.logits(images, cache_dir, progress)
        return combine_views(torch.from_numpy(logits), self.info.temperature,
                             self.info.config["tta_combine"])

    def logits(self, images: Sequence[str | Record], cache_dir: str | os.PathLike | None = None,
               progress: Progress | None = None) -> np.ndarray:
        """(V, N, C) float32 logits of every serving view; a cache_dir serves and keeps a
        head-mode model's features."""
        records = as_records(images)
        out = np.zeros((len(self.views), len(records), len(self.classes)), dtype=np.float32)
        cache = self._cache(cache_dir)
        todo = list(range(len(records)))
        if cache is not None and records:
            records = with_hashes(records)
            cached = [i for i in todo if all(cache.path(records[i].content_hash, view).is_file()
                                              for view in self.views)]
            if cached:
                out[:, cached] = self._logits_from_cache([records[i] for i in cached], cache)
                todo = sorted(set(todo) - set(cached))
        done = len(records) - len(todo)
        paths = [records[i].path for i in todo]
        for start, batch in zip(range(0, len(todo), self.batch_size),
                                prefetched(paths, self.preprocessing, self.views, self.batch_size,
                                           self.decode_threads), strict=True):
            indices = todo[start:start + self.batch_size]
            session = self.session  # made on first use: it settles self.outputs
            results = dict(zip(self.outputs, session.run(None, {INPUT: batch}), strict=True))
            out[:, indices] = results[LOGITS].reshape(len(self.views), len(indices), -1)
            if cache is not None and self.precision == "fp32":  # int8 features: not for training
                self._keep(cache, [records[i] for i in indices], results[FEATURES])
            done += len(indices)
            if progress:
                progress("predict", done, len(records))
        return out

    def _cache(self, cache_dir: str | os.PathLike | None) -> EmbeddingCache | None:
        """The embedding cache of this model's frozen part, where it has one and one is given."""
        if cache_dir is None or not has_features(self.info) or FEATURES not in self.outputs:
            return None
        train = self.info.config["train_config"]
        return feature_cache(cache_dir, train["backbone"], self.preprocessing, train.get("weights"),
                             train.get("top_blocks") or 0)

    def _keep(self, cache: EmbeddingCache, records: list[Record], features: np.ndarray) -> None:
        """Store the graph's (V * B, ...) features of a batch, per image and view."""
        features = features.reshape(len(self.views), len(records), *features.shape[1:])
        for view_position, view in enumerate(self.views):
            for position, record in enumerate(records):
                cache.put(record.content_hash, view, features[view_position, position])

    def _logits_from_cache(self, records: list[Record], cache: EmbeddingCache) -> np.ndarray:
        """(V, N, C) logits of the trained part (torch) over cached features."""
        from .backbones import frozen_and_trained
        from .model_dir import load_model
        if self._trained is None:
            model, info = load_model(self.model_dir)
            top_blocks = info.config["train_config"].get("top_blocks") or 0
            self._trained = frozen_and_trained(model, top_blocks)[1]
        features = embed_records(None, records, self.preprocessing, self.views, cache)
        return run_features(self._trained, features).numpy()
