"""Machine learning for Supervising UI: backbones, data, training, prediction, metrics.

No Flask here: the app's learning loop calls :func:`fit` and :func:`predict_proba`.
"""
from .backbones import MissingWeightsError, load_backbone
from .data import (
    Record,
    read_manifest,
    records_from_frame,
    split_by_column,
    split_by_group,
    split_by_sol,
)
from .model_dir import ModelDir, load_model, read_model_dir
from .predict import predict_proba
from .train import TrainConfig, fit
from .uncertainty import confidence, entropy, margin, uncertainty

__all__ = [
    "MissingWeightsError", "load_backbone", "Record", "read_manifest", "records_from_frame",
    "split_by_column", "split_by_group", "split_by_sol", "ModelDir", "load_model", "read_model_dir",
    "predict_proba", "TrainConfig", "fit", "confidence", "entropy", "margin", "uncertainty",
]
