"""Helpers of the boxes tests: a small observation stored like an imported one, with tiles."""
import io

import numpy as np
from flask import current_app
from PIL import Image as PILImage

from supervising_ui import storage
from supervising_ui.extensions import db
from supervising_ui.models import Observation, ObservationTile
from supervising_ui.observations import files

from ..helpers import make_project


def observation_png(width: int = 300, height: int = 200) -> bytes:
    """A gray PNG with two dark discs (craters) on a noisy background."""
    rng = np.random.default_rng(0)
    pixels = rng.normal(140, 10, (height, width))
    yy, xx = np.mgrid[0:height, 0:width]
    for x, y, r in ((60, 60, 15), (220, 120, 20)):
        pixels[(xx - x) ** 2 + (yy - y) ** 2 < r * r] = 50
    buffer = io.BytesIO()
    PILImage.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def make_observation(project_id: int | None = None, name: str = "obs-1", width: int = 300,
                     height: int = 200, tile_size: int = 150, projection=None) -> tuple[int, list[int]]:
    """Store an observation (ready, its tiles made); return its id and its tiles' ids."""
    if project_id is None:
        project_id = make_project()
    data = observation_png(width, height)
    key = storage.storage_key(storage.content_hash(data), "png")
    storage.store_bytes(files.observation_store(), key, data)
    observation = Observation(project_id=project_id, name=name, image_key=key, width=width,
                              height=height, status="ready", tile_size=tile_size,
                              projection=projection)
    db.session.add(observation)
    db.session.flush()
    tiles = [ObservationTile(observation_id=observation.id, x=x, y=y,
                             width=min(tile_size, width - x), height=min(tile_size, height - y))
             for y in range(0, height, tile_size) for x in range(0, width, tile_size)]
    db.session.add_all(tiles)
    db.session.commit()
    assert current_app  # inside an app context
    return observation.id, [tile.id for tile in tiles]


def box_body(x_min, y_min, x_max, y_max, label="crater", shape="box") -> dict:
    """A JSON body for the box API."""
    return {"x_min": x_min, "y_min": y_min, "x_max": x_max, "y_max": y_max, "label": label,
            "shape": shape}
