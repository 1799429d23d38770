"""Managed files that no image row names: what an unfinished import wrote, and their sweep.

Whole observations' originals (observations/service.py) live in the same store; an
observation row names them as an image row names an image.

An import writes each file before its row and commits rows in batches (runner.py). A run
that fails or is stopped removes the files of its uncommitted batch at once
(remove_unreferenced). What a killed process could not remove, the sweep does: the worker
calls sweep_orphan_files from its minutely checks (at most every ORPHAN_SWEEP_EVERY_SECONDS,
the first time when it starts) and it deletes the files below IMAGE_STORE that no image row
names and that were written more than ORPHAN_FILE_GRACE_SECONDS ago, with the temporary
files of writes cut off midway. An import commits a batch at least every
runner.BATCH_SECONDS, so a running import's files are never that old without their rows;
storing bytes that exist already renews the file's time (storage.store_bytes).
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from flask import current_app
from sqlalchemy import select

from .. import storage
from ..extensions import db
from ..models import Image, Observation

log = logging.getLogger(__name__)

# Storage keys looked up per query.
LOOKUP_CHUNK = 500
# What write_atomically names a file before its rename.
TEMPORARY_PREFIX = ".incoming-"


def unreferenced(keys) -> set[str]:
    """The storage keys among keys that no image row (in any project) and no observation names."""
    keys = sorted(set(keys))
    named: set[str] = set()
    for start in range(0, len(keys), LOOKUP_CHUNK):
        chunk = keys[start:start + LOOKUP_CHUNK]
        digests = [key.rsplit("/", 1)[-1].split(".", 1)[0] for key in chunk]
        named.update(db.session.scalars(select(Image.storage_key).where(
            Image.content_hash.in_(digests), Image.storage_key.in_(chunk))))  # hashes are indexed
        named.update(db.session.scalars(select(Observation.image_key).where(
            Observation.image_key.in_(chunk))))  # a whole observation's original: few rows
    db.session.commit()
    return set(keys) - named


def remove_unreferenced(store: str | Path, keys, written_before: float | None = None) -> int:
    """Delete the files of those keys that no image row names (and, given written_before, whose
    time is still older than it: not stored again meanwhile); return how many went."""
    removed = 0
    for key in unreferenced(keys):
        path = storage.path_for_key(store, key)
        try:
            if written_before is None or path.stat().st_mtime <= written_before:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            pass
    return removed


def managed_files(store: str | Path):
    """Yield (path, storage key) of every file below store laid out as storage keys; the key is
    None for a temporary file of an unfinished write."""
    for first in _folders(Path(store)):
        for second in _folders(first):
            with os.scandir(second) as entries:
                for entry in entries:
                    if not entry.is_file(follow_symlinks=False):
                        continue
                    if entry.name.startswith(TEMPORARY_PREFIX):
                        yield Path(entry.path), None
                        continue
                    key = f"{first.name}/{second.name}/{entry.name}"
                    if storage.KEY_PATTERN.match(key):
                        yield Path(entry.path), key


def _folders(parent: Path):
    """The two-hex-digit folders of a storage level (nothing else is the store's)."""
    if not parent.is_dir():
        return []
    return sorted(Path(entry.path) for entry in os.scandir(parent)
                  if entry.is_dir(follow_symlinks=False) and len(entry.name) == 2
                  and all(c in "0123456789abcdef" for c in entry.name))


def sweep_store(store: str | Path, grace_seconds: float) -> int:
    """Delete the files below store that no image row names and that are older than
    grace_seconds (and old temporary files); return how many went."""
    cutoff = time.time() - grace_seconds
    removed, waiting = 0, []
    for path, key in managed_files(store):
        try:
            if path.stat().st_mtime > cutoff:
                continue
        except FileNotFoundError:
            continue
        if key is None:
            path.unlink(missing_ok=True)
            removed += 1
            continue
        waiting.append(key)
        if len(waiting) >= LOOKUP_CHUNK:
            removed += remove_unreferenced(store, waiting, cutoff)
            waiting = []
    return removed + (remove_unreferenced(store, waiting, cutoff) if waiting else 0)


def sweep_orphan_files(force: bool = False) -> int:
    """The minutely check: sweep IMAGE_STORE at most every ORPHAN_SWEEP_EVERY_SECONDS (force:
    now); return how many files went."""
    config = current_app.config
    last = current_app.extensions.setdefault("orphan_sweep", {"at": float("-inf")})
    if not force and time.monotonic() - last["at"] < config["ORPHAN_SWEEP_EVERY_SECONDS"]:
        return 0
    last["at"] = time.monotonic()
    removed = sweep_store(config["IMAGE_STORE"], config["ORPHAN_FILE_GRACE_SECONDS"])
    if removed:
        log.warning("removed %s managed files that no image row names (older than %s s)",
                    removed, config["ORPHAN_FILE_GRACE_SECONDS"])
    return removed
