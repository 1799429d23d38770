"""Manifests, records, leak-free splits, the image loader and the transform presets."""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
import torch
from torch.nn import functional

from ..images import color_pixels, gray_pixels
from ..manifests import FILENAME_COLUMN, read_table
from ..storage import file_content_hash

# MSL sol ranges used by the Deep Mars paper (inclusive).
MSL_SOL_RANGES = {"train": (3, 181), "val": (182, 564), "test": (565, 1060)}


@dataclass(frozen=True)
class Record:
    """One image: where it is, its label (None if unlabelled), its group and content hash."""

    path: str
    label: str | None = None
    group: str | None = None
    content_hash: str | None = None


def as_records(images: Iterable[str | os.PathLike | Record]) -> list[Record]:
    """Records of images given as paths or Records (a Record keeps its content hash)."""
    return [image if isinstance(image, Record) else Record(str(image)) for image in images]


def with_hashes(records: Sequence[Record]) -> list[Record]:
    """Fill in missing content hashes (the storage's SHA-256: the key of cached embeddings)."""
    return [r if r.content_hash else Record(r.path, r.label, r.group, file_content_hash(r.path))
            for r in records]


def read_manifest(manifest: str | os.PathLike, image_root: str | os.PathLike) -> pd.DataFrame:
    """Read a CSV manifest (every value as text) and add the absolute `path` of each image.

    The file is read by the importer's reader (manifests.read_table), so both accept
    and refuse the same files; a row whose field count differs from the header is refused here.
    """
    header, body = read_table(Path(manifest).read_bytes())
    bad = [line for line, values in body if len(values) != len(header)]
    if bad:
        raise ValueError(f"{manifest}: line {bad[0]} has a different number of fields than the "
                         f"header ({len(bad)} such lines)")
    columns = [FILENAME_COLUMN if name.lower() == FILENAME_COLUMN else name for name in header]
    frame = pd.DataFrame([values for _, values in body], columns=columns, dtype=str)
    root = Path(image_root)
    frame["path"] = [str(root / name.strip()) for name in frame[FILENAME_COLUMN]]
    missing = [p for p in frame["path"] if not os.path.isfile(p)]
    if missing:
        raise FileNotFoundError(f"{len(missing)} images of {manifest} are missing under "
                                f"{image_root}, e.g. {missing[0]}")
    return frame


def records_from_frame(frame: pd.DataFrame, label_column: str = "label",
                       group_column: str | None = None) -> list[Record]:
    """Turn manifest rows into records; empty labels become None."""
    labels = frame[label_column] if label_column in frame.columns else [""] * len(frame)
    groups = frame[group_column] if group_column else [None] * len(frame)
    return [Record(path, label or None, group) for path, label, group
            in zip(frame["path"], labels, groups, strict=True)]


# --------------------------------------------------------------------------- splits


def split_by_column(values: Sequence[str]) -> dict[str, np.ndarray]:
    """Indices per value of a given split column (e.g. train/val/test)."""
    values = np.asarray(values, dtype=object)
    return {str(name): np.flatnonzero(values == name) for name in pd.unique(values) if name}


def split_by_group(groups: Sequence[str], val_fraction: float = 0.2,
                   seed: int = 0) -> dict[str, np.ndarray]:
    """Train/val indices such that no group (e.g. HiRISE source_id) is on both sides."""
    groups = np.asarray(groups, dtype=object)
    names, counts = np.unique(groups, return_counts=True)
    order = np.random.default_rng(seed).permutation(len(names))
    target, taken, val_groups = val_fraction * len(groups), 0, set()
    for index in order:
        if taken >= target:
            break
        val_groups.add(names[index])
        taken += counts[index]
    in_val = np.array([g in val_groups for g in groups], dtype=bool)
    return {"train": np.flatnonzero(~in_val), "val": np.flatnonzero(in_val)}


def split_by_sol(sols: Sequence[int | float | str],
                 ranges: dict[str, tuple[int, int]] = MSL_SOL_RANGES) -> dict[str, np.ndarray]:
    """Indices per named inclusive sol range (MSL default: train 3-181, val 182-564, test 565-1060)."""
    sols = np.asarray(pd.to_numeric(pd.Series(list(sols)), errors="coerce"), dtype=float)
    return {name: np.flatnonzero((sols >= low) & (sols <= high))
            for name, (low, high) in ranges.items()}


def assert_no_leakage(groups: Sequence, splits: dict[str, np.ndarray]) -> None:
    """Raise ValueError if any group appears in more than one split."""
    groups = np.asarray(groups, dtype=object)
    seen: dict = {}
    for name, indices in splits.items():
        for group in set(groups[indices]) - {None, ""}:
            if group in seen and seen[group] != name:
                raise ValueError(f"group {group!r} is in both {seen[group]!r} and {name!r}")
            seen[group] = name


# --------------------------------------------------------------------------- images


def load_image(path: str | os.PathLike, size: int, color: bool = False) -> torch.Tensor:
    """Any image -> what images.py shows people, resized: a (size, size) uint8 tensor in
    grayscale, or (3, size, size) in colour."""
    return torch.from_numpy(color_pixels(path, size) if color else gray_pixels(path, size))


def load_images(paths: Iterable[str], size: int, color: bool = False) -> torch.Tensor:
    """Stack images into an (N, size, size) uint8 tensor, (N, 3, size, size) in colour (a 224px
    image takes 50 KB in grayscale, 150 KB in colour)."""
    paths = list(paths)
    stack = torch.empty((len(paths), *((3,) if color else ()), size, size), dtype=torch.uint8)
    for index, path in enumerate(paths):
        stack[index] = load_image(path, size, color)
    return stack


STRETCHES = ("none", "percentile", "mixed", "color")


@dataclass(frozen=True)
class Preprocessing:
    """How raw pixels become network input: size, per-image contrast stretch and normalisation.

    stretch: "none" (the raw brightness in all three channels), "percentile" (each image's
    1st-99th percentile spread over 0-255, so that differently exposed observations look alike,
    but albedo is lost: bright and dark dunes of equal texture become the same input) or
    "mixed" (channels raw, percentile-stretched, raw: texture at full contrast and the absolute
    brightness side by side) for the grayscale image; or "color" (the image's own red, green
    and blue, as the ImageNet networks saw them in training; a grayscale image gives three equal
    channels, as "none"). normalization: "tf" or "imagenet".
    """

    image_size: int = 224
    normalization: str = "tf"
    stretch: str = "none"

    @property
    def color(self) -> bool:
        """Whether the network sees the images in colour (else in grayscale)."""
        return self.stretch == "color"

    def load_images(self, paths: Iterable[str]) -> torch.Tensor:
        """The images as to_input() takes them: (N, H, W) uint8, (N, 3, H, W) in colour."""
        return load_images(paths, self.image_size, self.color)

    def to_input(self, pixels: torch.Tensor) -> torch.Tensor:
        """load_images()'s uint8 pixels, (N, H, W) or (N, 3, H, W) -> (N, 3, H, W) float32
        network input, channels_last."""
        return self.normalized(self.stretched(pixels))

    def stretched(self, pixels: torch.Tensor) -> torch.Tensor:
        """load_images()'s uint8 pixels -> the stretch's float channels 0-255, (N, 1 or 3, H, W)."""
        x = pixels.float()
        return stretch_channels(x.unsqueeze(1) if x.dim() == 3 else x, self.stretch)

    def normalized(self, x: torch.Tensor) -> torch.Tensor:
        """stretched() channels -> (N, 3, H, W) float32 network input, channels_last (the serving
        graph runs this part, ml/onnx_export.py)."""
        if self.normalization == "tf":
            x = (x - 127.0) / 128.0
        elif self.normalization == "imagenet":
            mean = torch.tensor([0.485, 0.456, 0.406], device=x.device).view(1, 3, 1, 1) * 255.0
            std = torch.tensor([0.229, 0.224, 0.225], device=x.device).view(1, 3, 1, 1) * 255.0
            x = (x - mean) / std
        else:
            raise ValueError(f"unknown normalization {self.normalization!r}")
        return x.expand(-1, 3, -1, -1).contiguous(memory_format=torch.channels_last)


def stretch_channels(x: torch.Tensor, stretch: str) -> torch.Tensor:
    """(N, 1, H, W) floats 0-255 -> the stretch's channels: (N, 1, H, W), or (N, 3, H, W) for mixed;
    "color" takes and returns (N, 3, H, W) red, green and blue."""
    if stretch not in STRETCHES:
        raise ValueError(f"unknown stretch {stretch!r}; choose one of {', '.join(STRETCHES)}")
    if (x.shape[1] == 3) != (stretch == "color"):
        raise ValueError(f"stretch {stretch!r} takes {'colour' if stretch == 'color' else 'grayscale'} "
                         f"pixels, not {x.shape[1]} channels")
    if stretch in ("none", "color"):
        return x
    if stretch == "percentile":
        return percentile_stretch(x)
    return torch.cat([x, percentile_stretch(x), x], dim=1)


def percentile_stretch(x: torch.Tensor, low: float = 0.01, high: float = 0.99) -> torch.Tensor:
    """Map each image's [low, high] quantiles of (N, 1, H, W) floats to 0-255, clipped."""
    flat = x.flatten(1)
    if _whole_bytes(flat):
        bounds = byte_quantiles(flat, (low, high))
    else:
        bounds = torch.quantile(flat, torch.tensor([low, high], device=x.device), dim=1)  # (2, N)
    lo = bounds[0].view(-1, 1, 1, 1)
    spread = (bounds[1] - bounds[0]).clamp_min(1.0).view(-1, 1, 1, 1)
    return ((x - lo) * (255.0 / spread)).clamp_(0.0, 255.0)


def _whole_bytes(flat: torch.Tensor) -> bool:
    """Whether every value is a whole number 0-255 (pixels of load_images, as floats)."""
    return bool(flat.numel()) and float(flat.min()) >= 0 and float(flat.max()) <= 255 \
        and bool(torch.equal(flat, flat.round()))


def byte_quantiles(flat: torch.Tensor, quantiles) -> torch.Tensor:
    """torch.quantile's (linear) quantiles of each row of whole numbers 0-255, (N, L) -> (Q, N),
    from a 256-bin histogram per row: a sort of 50,000 values per 224px image took most of
    the serving path's preprocessing time."""
    count, length = flat.shape
    bins = flat.long() + 256 * torch.arange(count, device=flat.device).unsqueeze(1)
    cumulative = torch.bincount(bins.flatten(), minlength=256 * count).view(count, 256).cumsum(1)
    rows = []
    for quantile in quantiles:
        rank = quantile * (length - 1)
        lower = int(rank)
        ranks = torch.tensor([[lower, min(lower + 1, length - 1)]], device=flat.device)
        # The value at sorted position k: the first byte whose cumulative count exceeds k.
        values = torch.searchsorted(cumulative, ranks.expand(count, 2).contiguous(), right=True)
        values = values.to(flat.dtype)
        rows.append(torch.lerp(values[:, 0], values[:, 1], torch.tensor(rank - lower, dtype=flat.dtype)))
    return torch.stack(rows)


def dihedral(pixels: torch.Tensor, view: int) -> torch.Tensor:
    """View 0-7 of the square images' dihedral group: rot90 by view%4, mirrored if view>=4."""
    out = torch.rot90(pixels, view % 4, dims=(-2, -1))
    return torch.flip(out, dims=(-1,)) if view >= 4 else out


def augment(pixels: torch.Tensor, labels: Sequence[str | None], generator: torch.Generator,
            views: int = 8, fixed_classes: Iterable[str] = ()) -> torch.Tensor:
    """Random dihedral view per image (of the first `views`), except classes with a fixed orientation."""
    fixed = set(fixed_classes)
    choice = torch.randint(0, views, (len(pixels),), generator=generator)
    out = pixels.clone()
    for index in range(len(pixels)):
        if labels[index] not in fixed and int(choice[index]):
            out[index] = dihedral(pixels[index], int(choice[index]))
    return out


def random_resized_crops(x: torch.Tensor, min_scale: float, generator: torch.Generator) -> torch.Tensor:
    """(N, C, H, W) float inputs -> each image's random square crop of min_scale to all of its
    area (at a random place), resized back to H x W bilinearly; the layout of x is kept."""
    count, _, height, width = x.shape
    scales = min_scale + (1.0 - min_scale) * torch.rand(count, generator=generator)
    out = torch.empty_like(x)
    for index in range(count):
        side = max(1, round(min(height, width) * math.sqrt(float(scales[index]))))
        top = int(torch.randint(0, height - side + 1, (1,), generator=generator))
        left = int(torch.randint(0, width - side + 1, (1,), generator=generator))
        crop = x[index:index + 1, :, top:top + side, left:left + side]
        out[index] = functional.interpolate(crop, size=(height, width), mode="bilinear",
                                            align_corners=False)[0]
    return out
