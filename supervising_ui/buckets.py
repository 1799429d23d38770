"""Stable buckets: a deterministic number in [0, 1) per key, the same in every process and run.

Used wherever a share of things must be chosen the same way each time without storing the
choice: held-out groups of a retrain, suggestions hidden to measure anchoring.
"""
import hashlib


def stable_fraction(*parts) -> float:
    """Return a number in [0, 1) fixed by the parts (joined with ':'), uniform over keys."""
    digest = hashlib.sha256(":".join(str(part) for part in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def in_share(share: float, *parts) -> bool:
    """Return whether the key made of parts falls in the first `share` of the buckets."""
    return share > 0 and stable_fraction(*parts) < share
