"""Values remembered for a few seconds in one process: what login_cache.py and
labeling/snapshots.py keep between requests, each in a TimedCache of the app's extensions."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Hashable

from flask import current_app, has_app_context


@dataclass
class _Entry:
    value: Any
    until: float


class TimedCache:
    """Values by key for a few seconds; forget() drops them all, also loads in flight."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self._entries: dict[Hashable, _Entry] = {}
        self._generation = 0
        self._lock = threading.Lock()

    def remembered(self, key: Hashable, load: Callable[[], Any]) -> Any:
        """Return the value under key, calling load() when it is missing or too old.

        A None from load() is not kept (an unknown token may become valid any time).
        """
        entry = self._entries.get(key)
        now = time.monotonic()
        if entry is not None and entry.until > now:
            return entry.value
        generation = self._generation
        value = load()
        if value is not None:
            with self._lock:
                if generation == self._generation:  # no forget() since the read began
                    self._entries[key] = _Entry(value, now + self.seconds)
        return value

    def forget(self) -> None:
        """Drop everything remembered, and keep loads now in flight from storing theirs."""
        with self._lock:
            self._generation += 1
            self._entries.clear()


def remembered_in_app(name: str, key: Hashable, load: Callable[[], Any]) -> Any:
    """Return load()'s value for key from the current app's cache called name (load() when
    the app has none or it is off)."""
    cache = current_app.extensions.get(name)
    if cache is None or cache.seconds <= 0:
        return load()
    return cache.remembered(key, load)


def forget_in_app(name: str) -> None:
    """Forget everything in the current app's cache called name, if there is one."""
    if has_app_context():
        cache = current_app.extensions.get(name)
        if cache is not None:
            cache.forget()
