"""Machine learning for Supervising UI: backbones, data, training, prediction, metrics.

No Flask here: the app's learning loop calls :func:`fit` and :func:`predict_proba`. The names
below load their module (and so torch) on first use, so that the web processes can import
``ml.uncertainty`` (numpy only) without paying for torch.
"""
from __future__ import annotations

import importlib

# Each public name and the module of this package that defines it.
_EXPORTS = {
    "MissingWeightsError": "backbones", "load_backbone": "backbones",
    "Record": "data", "read_manifest": "data", "records_from_frame": "data",
    "split_by_column": "data", "split_by_group": "data", "split_by_sol": "data",
    "ModelDir": "model_dir", "load_model": "model_dir", "read_model_dir": "model_dir",
    "predict_proba": "predict", "TrainConfig": "train", "fit": "train",
    "confidence": "uncertainty", "entropy": "uncertainty", "margin": "uncertainty",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    """Import the module that defines name on first use (PEP 562) and return the name."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
