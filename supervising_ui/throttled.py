"""Throttled progress reporting: long loops call often, the callback hears at most every N s.

No Flask here: the importer, the retrain job and the ``ml`` console commands share it.
"""
from __future__ import annotations

import time
from typing import Callable


def throttled(callback: Callable[..., None], every_seconds: float = 1.0) -> Callable[..., None]:
    """Wrap callback(*args, done, total) so it runs at most every `every_seconds`, and at the end.

    The wrapped function takes the same arguments; its last two must be (done, total).
    """
    last = [float("-inf")]

    def report(*args) -> None:
        done, total = args[-2], args[-1]
        now = time.monotonic()
        if now - last[0] >= every_seconds or done >= total:
            last[0] = now
            callback(*args)
    return report
