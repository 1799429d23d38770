"""What the serving path predicts with: how many test-time views, in which precision.

No torch here (nor numpy): the model page reads it in the web process. The measurements behind
the choice are in docs/classify-speed.md (benchmarks/classify_speed.py on the HiRISE val split).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

# Test-time views the serving path averages, at most (a model trained on fewer uses its own).
# The quick model on the 581 HiRISE val crops (docs/classify-speed.md): 1 view 88.8%, ECE
# 0.025; 2 views 89.5%, 0.022; 4 views 89.2%, 0.026 (torch's 4 views: 89.2%): views beyond two
# did not pay for themselves, and one fell 0.3 points short of torch's four.
SERVING_VIEWS = 2


def serving_views(config: dict, views: int | None = None) -> list[int]:
    """The dihedral views a model's predictions average: the trained ones, up to views (None:
    SERVING_VIEWS); a model trained on one view keeps it."""
    if views is not None and not 1 <= views <= 8:
        raise ValueError(f"views must be 1 to 8, not {views}")
    return list(range(min(int(config["tta_views"]), views or SERVING_VIEWS)))


def serving_summary(model_dir: str | os.PathLike, precision: str,
                    views: int | None = None) -> dict | None:
    """The views the serving path averages for a model directory (views: the configured
    number), the views it trained on, and the precision; None without a config.json."""
    try:
        config = json.loads((Path(model_dir) / "config.json").read_text())
    except (OSError, ValueError):
        return None
    return {"views": len(serving_views(config, views)), "trained_views": int(config["tta_views"]),
            "precision": precision}
