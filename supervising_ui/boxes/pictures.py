"""The picture of a tile that the tile labeling page shows: the tile and a margin around it,
cut from the stored observation once and kept in the cache folder (PNG, 8-bit)."""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from flask import current_app

from .. import storage
from ..models import Observation, ObservationTile
from . import originals

# Pixels of the observation shown around a tile, so that a crater on its edge is seen whole.
MARGIN = 64


@dataclass(frozen=True)
class Picture:
    """Where a tile's picture lies in the observation (pixels) and its cached file."""

    x: int
    y: int
    width: int
    height: int
    path: Path


def region(observation: Observation, tile: ObservationTile) -> tuple[int, int, int, int]:
    """The tile plus MARGIN, inside the observation: left, top, right, bottom."""
    return (max(tile.x - MARGIN, 0), max(tile.y - MARGIN, 0),
            min(tile.x + tile.width + MARGIN, observation.width),
            min(tile.y + tile.height + MARGIN, observation.height))


def tile_picture(observation: Observation, tile: ObservationTile, make: bool = True) -> Picture:
    """The tile's picture, cut and cached on first use (make=False only says where)."""
    left, top, right, bottom = region(observation, tile)
    digest = observation.image_key.rsplit("/", 1)[-1].split(".")[0]
    path = (Path(current_app.config["CACHE_DIR"]) / "tile-pictures" / digest[:2]
            / f"{digest}-{left}-{top}-{right}-{bottom}.png")
    if make and not path.is_file():
        part = originals.region_picture(originals.open_original(observation),
                                        left, top, right, bottom)
        buffer = io.BytesIO()
        part.save(buffer, format="PNG")
        storage.write_atomically(path, buffer.getvalue())
    return Picture(left, top, right - left, bottom - top, path)
