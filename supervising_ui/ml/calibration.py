"""Temperature scaling: one scalar T fitted by likelihood on held-out logits, and the ECE.

A temperature divides the logits before the softmax: it changes how confident the model says
it is, never which class it picks. It is fitted with L-BFGS on the negative log-likelihood of
held-out labels (Guo et al. 2017, "On Calibration of Modern Neural Networks").
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

ECE_BINS = 15
# Fewer held-out examples than this fit no temperature (T = 1): four right answers would
# otherwise make every later prediction near-certain.
MIN_CALIBRATION_EXAMPLES = 50


def view_log_proba(logits: torch.Tensor, temperature: torch.Tensor | float, how: str) -> torch.Tensor:
    """(V, N, C) logits -> (N, C) log-probabilities: softmax of mean logits, or mean of softmaxes."""
    if how == "logits":
        return F.log_softmax(logits.mean(0) / temperature, dim=-1)
    if how == "probs":
        return torch.logsumexp(F.log_softmax(logits / temperature, dim=-1), dim=0) - np.log(len(logits))
    raise ValueError(f"unknown view combination {how!r}; choose 'probs' or 'logits'")


def negative_log_likelihood(logits: torch.Tensor, labels: Sequence[int], temperature: float = 1.0,
                            how: str = "logits") -> float:
    """Mean NLL of the labels under the temperature-scaled probabilities."""
    logits = torch.as_tensor(logits, dtype=torch.float64)
    target = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    return float(F.nll_loss(view_log_proba(logits, temperature, how), target))


def calibration_refusal(logits: torch.Tensor, labels: Sequence[int], how: str = "logits",
                        min_examples: int = MIN_CALIBRATION_EXAMPLES) -> str | None:
    """Why no temperature should be fitted on these held-out logits, or None if one can be."""
    labels = np.asarray(labels, dtype=int)
    if len(labels) < min_examples:
        return f"{len(labels)} held-out examples, fewer than {min_examples}"
    logits = torch.as_tensor(logits, dtype=torch.float64)
    if bool((view_log_proba(logits, 1.0, how).argmax(-1).numpy() == labels).all()):
        return "no held-out errors: the likelihood has no finite best temperature"
    return None


def fit_temperature(logits: torch.Tensor, labels: Sequence[int], how: str = "logits") -> float:
    """The T > 0 minimising the NLL of held-out (V, N, C) logits (L-BFGS over log T); 1.0 if no labels."""
    labels = np.asarray(labels, dtype=np.int64)
    if not len(labels):
        return 1.0
    # Callers may be inside torch.inference_mode(): leave it, and copy its tensors out of it.
    with torch.inference_mode(False), torch.enable_grad():
        logits = torch.as_tensor(logits, dtype=torch.float64).detach().clone()
        target = torch.as_tensor(labels).clone()
        log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
        optimizer = torch.optim.LBFGS([log_t], lr=0.5, max_iter=100, line_search_fn="strong_wolfe")

        def closure():
            optimizer.zero_grad()
            loss = F.nll_loss(view_log_proba(logits, log_t.exp(), how), target)
            loss.backward()
            return loss

        optimizer.step(closure)
    # Perfectly separated held-out logits drive T towards 0; keep it in a sane range.
    return float(log_t.detach().exp().clamp(0.05, 20.0))


def expected_calibration_error(proba: np.ndarray, y_true: Sequence[int], bins: int = ECE_BINS) -> float:
    """ECE: over equal-width confidence bins, the share-weighted |accuracy - mean confidence|."""
    proba, y_true = np.asarray(proba, dtype=float), np.asarray(y_true, dtype=int)
    if not len(y_true):
        return float("nan")
    confidence = proba.max(axis=1)
    correct = proba.argmax(axis=1) == y_true
    # Bin b holds confidences in (b/bins, (b+1)/bins]; a confidence of 0 joins the first bin.
    which = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    error = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            error += members.mean() * abs(correct[members].mean() - confidence[members].mean())
    return float(error)


def calibration_summary(logits: torch.Tensor, labels: Sequence[int], temperature: float,
                        how: str = "logits", fitted_on: str = "val") -> dict:
    """What a temperature does on held-out logits: ECE and NLL before (T=1) and after."""
    labels = np.asarray(labels, dtype=int)
    logits = torch.as_tensor(logits, dtype=torch.float64)
    before = view_log_proba(logits, 1.0, how).exp().numpy()
    after = view_log_proba(logits, temperature, how).exp().numpy()
    return {"temperature": float(temperature), "fitted_on": fitted_on, "n": int(len(labels)),
            "ece_bins": ECE_BINS,
            "ece_before": expected_calibration_error(before, labels),
            "ece_after": expected_calibration_error(after, labels),
            "nll_before": negative_log_likelihood(logits, labels, 1.0, how),
            "nll_after": negative_log_likelihood(logits, labels, temperature, how)}
