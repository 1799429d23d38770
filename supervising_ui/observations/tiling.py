"""The tiling job: an observation's original -> deep-zoom tiles (pyvips dzsave), status on the row.

The tiles are written into a temporary folder beside their final one and moved into place
when complete, so a reader never sees half a pyramid, and a second run (after a dead worker)
does what one run would: it writes the pyramid again.
"""
from __future__ import annotations

import logging
import shutil

from .. import storage
from ..extensions import db
from ..jobs.queue import JobRefused
from ..models import Observation
from . import files

log = logging.getLogger(__name__)

JOB_KIND = "observation_tiles"


def run_tiling(job, reporter) -> dict:
    """Make an observation's deep-zoom tiles; mark it ready, or failed with the reason."""
    observation = db.session.get(Observation, (job.params or {}).get("observation_id"))
    if observation is None:
        raise JobRefused("the observation no longer exists")
    observation_id, key = observation.id, observation.image_key
    observation.status, observation.error = "tiling", None
    db.session.commit()  # no transaction stays open while libvips works
    reporter.progress(0.0, f"tiling {observation.width} x {observation.height} pixels")
    try:
        levels = build_pyramid(observation_id, key)
    except Exception as error:
        log.exception("tiling observation %s failed", observation_id)
        _set_status(observation_id, "failed", f"tiling failed: {error}")
        raise JobRefused(f"tiling failed: {str(error)[:300]}") from error
    _set_status(observation_id, "ready", None)
    reporter.log(f"{levels} deep-zoom levels written")
    return {"observation_id": observation_id, "levels": levels}


def build_pyramid(observation_id: int, key: str) -> int:
    """Write the deep-zoom pyramid of the stored original under key; return its level count."""
    source = storage.path_for_key(files.observation_store(), key)
    image = files.open_for_tiling(source, key.rsplit(".", 1)[-1])
    final = files.deepzoom_folder(observation_id)
    incoming = final.with_name(f"{final.name}.incoming")
    shutil.rmtree(incoming, ignore_errors=True)
    incoming.mkdir(parents=True, mode=0o700)
    try:
        image.dzsave(str(incoming / "image"), tile_size=files.DEEPZOOM_TILE,
                     overlap=files.DEEPZOOM_OVERLAP, suffix=f".{files.DEEPZOOM_FORMAT}[Q=85]")
    except BaseException:
        shutil.rmtree(incoming, ignore_errors=True)  # no half pyramid left behind
        raise
    old = final.with_name(f"{final.name}.old")
    if final.exists():
        final.rename(old)
    incoming.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    return files.deepzoom_levels(image.width, image.height)


def _set_status(observation_id: int, status: str, error: str | None) -> None:
    """Record the observation's status (and error) in a transaction of its own."""
    db.session.rollback()
    observation = db.session.get(Observation, observation_id)
    if observation is not None:
        observation.status, observation.error = status, error
        db.session.commit()
