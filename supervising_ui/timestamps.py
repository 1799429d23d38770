"""How stored times are written out: the one formatter of API, export and job views."""
from __future__ import annotations

from datetime import datetime


def iso_utc(moment: datetime | None) -> str | None:
    """Return a stored (naive UTC) time as ISO 8601 with a Z, or None."""
    return moment.isoformat(timespec="seconds") + "Z" if moment else None
