"""Column helpers shared by the tables: the stored time and the random sort key."""
from __future__ import annotations

import random
from datetime import datetime, timezone


def utcnow() -> datetime:
    """Return the current time as a naive UTC datetime (the form stored in every column)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def new_random_key() -> float:
    """Return the random sort key that lets assignment pick a random image through an index."""
    return random.random()
