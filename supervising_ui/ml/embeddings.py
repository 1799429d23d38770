"""Running a network over images in dihedral views, and the on-disk embedding cache."""
from __future__ import annotations

import hashlib
import io
import os
import re
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from ..storage import write_atomically
from .data import Preprocessing, Record, dihedral, with_hashes

Progress = Callable[[str, int, int], None]


def module_device(module: nn.Module) -> torch.device:
    """Where a module's parameters are (the CPU for a module without any)."""
    return next(module.parameters(), torch.empty(0)).device


def run_views(module: nn.Module, pixels: torch.Tensor, preprocessing: Preprocessing,
              views: Sequence[int] = (0,), batch_size: int = 8,
              progress: Progress | None = None, stage: str = "predict") -> torch.Tensor:
    """Eval-mode outputs for each dihedral view: uint8 pixels (N, [3,] H, W) -> (V, N, D) float32 on the CPU.

    The images are moved a batch at a time to wherever the module is (a GPU, say).
    """
    module.eval()
    device = module_device(module)
    outputs = []
    total, done = len(views) * len(pixels), 0
    with torch.inference_mode():
        for view in views:
            chunks = []
            for start in range(0, len(pixels), batch_size):
                batch = dihedral(pixels[start:start + batch_size], view).to(device)
                chunks.append(module(preprocessing.to_input(batch)).float().cpu())
                done += len(batch)
                if progress:
                    progress(stage, done, total)
            outputs.append(torch.cat(chunks) if chunks else torch.empty(0))
    return torch.stack(outputs)


def run_features(trained: nn.Module, features: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Eval-mode outputs of the trained part over cached features: (V, N, ...) -> (V, N, C) on the CPU.

    batch_size 64: the last block's 1152-channel expansion of a batch then stays in the CPU's
    cache; 256 took twice as long on 2 cores (18.3 s against 8.7 s for 4 x 3245 HiRISE crops).
    """
    trained.eval()
    device = module_device(trained)
    views, count = features.shape[:2]
    flat = features.reshape(views * count, *features.shape[2:])
    with torch.inference_mode():
        chunks = [trained(flat[start:start + batch_size].to(device).float()).float().cpu()
                  for start in range(0, len(flat), batch_size)]
    logits = torch.cat(chunks) if chunks else torch.empty(0)
    return logits.reshape(views, count, -1)


def cache_key(backbone: str, preprocessing: Preprocessing, weights: str | None = None,
              top_blocks: int = 0) -> str:
    """Directory name for one backbone + weights + preprocessing + cut combination
    (top_blocks > 0: the activations before the last top_blocks blocks, not embeddings)."""
    text = f"{backbone}|{weights or 'default'}|{preprocessing.image_size}|{preprocessing.normalization}"
    if preprocessing.stretch != "none":  # keys of caches made before the option stay valid
        text += f"|stretch={preprocessing.stretch}"
    if top_blocks:
        text += f"|below_top_blocks={top_blocks}"
    return f"{backbone}-{hashlib.sha1(text.encode()).hexdigest()[:10]}"


class EmbeddingCache:
    """Embeddings on disk, one .npy per (image content hash, view), under a backbone key.

    dtype: how values are stored (and handed back); activation maps go as float16, half the
    disk and memory of float32 for about three significant digits.
    """

    def __init__(self, directory: str | os.PathLike, key: str, dtype=np.float32):
        self.root = Path(directory) / key
        self.dtype = np.dtype(dtype)

    def path(self, digest: str, view: int) -> Path:
        """File holding one embedding."""
        return self.root / digest[:2] / f"{digest}-v{view}.npy"

    def get(self, digest: str, view: int) -> np.ndarray | None:
        """A cached embedding (read-only), or None."""
        try:
            raw = self.path(digest, view).read_bytes()
        except FileNotFoundError:
            return None
        return read_npy(raw)

    def put(self, digest: str, view: int, embedding: np.ndarray) -> None:
        """Store one embedding atomically (write to a temp file, then rename)."""
        buffer = io.BytesIO()
        np.save(buffer, embedding.astype(self.dtype))
        write_atomically(self.path(digest, view), buffer.getvalue())


# The header np.save writes for a plain array: {'descr': '<f4', 'fortran_order': False, 'shape': (1280,), }
_NPY_HEADER = re.compile(r"\{'descr': '([<>|][a-z]\d+)', 'fortran_order': False, 'shape': \(([\d, ]*)\), \}")


def read_npy(raw: bytes) -> np.ndarray:
    """np.load of a .npy file's bytes, without np.load's parsing of the header as Python (a
    millisecond a file, seconds over a project's images); other headers go to np.load."""
    if raw[:6] == b"\x93NUMPY" and raw[6] in (1, 2):
        size = 2 if raw[6] == 1 else 4
        length = int.from_bytes(raw[8:8 + size], "little")
        start = 8 + size
        match = _NPY_HEADER.match(raw[start:start + length].decode("latin1"))
        if match:
            shape = tuple(int(part) for part in match.group(2).split(",") if part.strip())
            return np.frombuffer(raw, np.dtype(match.group(1)), offset=start + length).reshape(shape)
    return np.load(io.BytesIO(raw))


def feature_cache(directory: str | os.PathLike, backbone: str, preprocessing: Preprocessing,
                  weights: str | None = None, top_blocks: int = 0) -> EmbeddingCache:
    """The cache of what head mode's frozen part computes: pooled embeddings (float32), or the
    activations below the last top_blocks blocks (float16)."""
    return EmbeddingCache(directory, cache_key(backbone, preprocessing, weights, top_blocks),
                          np.float16 if top_blocks else np.float32)


def embed_records(backbone: nn.Module, records: Sequence[Record], preprocessing: Preprocessing,
                  views: Sequence[int] = (0,), cache: EmbeddingCache | None = None,
                  batch_size: int = 8, progress: Progress | None = None) -> torch.Tensor:
    """(V, N, D) embeddings of records, computing only those not yet in the cache."""
    records = with_hashes(records) if cache else list(records)
    found: dict[tuple[int, int], np.ndarray] = {}
    if cache:
        for index, record in enumerate(records):
            for view in views:
                value = cache.get(record.content_hash, view)
                if value is not None:
                    found[(index, view)] = value
    missing = [i for i in range(len(records)) if any((i, v) not in found for v in views)]
    if missing:
        pixels = preprocessing.load_images([records[i].path for i in missing])
        computed = run_views(backbone, pixels, preprocessing, views, batch_size, progress, "embed")
        for position, index in enumerate(missing):
            for view_position, view in enumerate(views):
                value = computed[view_position, position].numpy()
                if cache:
                    value = value.astype(cache.dtype)
                    cache.put(records[index].content_hash, view, value)
                found[(index, view)] = value
    if not records:
        return torch.empty((len(views), 0, 0))
    return torch.stack([torch.from_numpy(np.stack([found[(i, v)] for i in range(len(records))]))
                        for v in views])
