"""How a metadata value is kept in the search index: its text form and, for numbers, its number."""
from __future__ import annotations

import json
import math

# Longest metadata key and value text the index keeps (longer ones are cut).
KEY_LENGTH, TEXT_LENGTH = 120, 512


def value_text(value) -> str | None:
    """Return the text form under which a metadata value is found, or None for no value."""
    if value is None:
        return None
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (int, float, str)):
        text = str(value).strip()
    else:
        text = json.dumps(value, sort_keys=True)
    return text[:TEXT_LENGTH] or None


def value_number(value) -> float | None:
    """Return a metadata value as a number where it is one (never for text or booleans)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None
