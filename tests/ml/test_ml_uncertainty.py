"""The uncertainty scores are those the Prediction table stores; the ranking is built on them."""
import math

import numpy as np
import pytest

from supervising_ui.ml.uncertainty import confidence, entropy, margin, scores, uncertainty

PROBA = np.array([[0.7, 0.2, 0.1],   # sure
                  [0.4, 0.35, 0.25],  # unsure
                  [0.5, 0.5, 0.0]])   # a tie at the top


def test_stored_scores_are_p1_p1_minus_p2_and_entropy_in_nats():
    assert confidence(PROBA).tolist() == pytest.approx([0.7, 0.4, 0.5])
    assert margin(PROBA).tolist() == pytest.approx([0.5, 0.05, 0.0])
    expected = [-sum(p * math.log(p) for p in row if p > 0) for row in PROBA]
    assert entropy(PROBA).tolist() == pytest.approx(expected, abs=1e-9)
    stored = scores(PROBA)
    assert set(stored) == {"confidence", "margin", "entropy"}, "the Prediction columns"
    assert stored["confidence"].tolist() == pytest.approx([0.7, 0.4, 0.5])
    assert stored["margin"].tolist() == pytest.approx([0.5, 0.05, 0.0])
    assert stored["entropy"].tolist() == pytest.approx(expected, abs=1e-9)


def test_a_single_class_has_full_confidence_and_margin():
    assert margin(np.array([[1.0]])).tolist() == [1.0]
    assert entropy(np.array([[1.0]])).tolist() == pytest.approx([0.0])


@pytest.mark.parametrize("method, least_certain_first", [
    ("least_confidence", [1, 2, 0]), ("margin", [2, 1, 0]), ("entropy", [1, 0, 2])])
def test_ranking_puts_the_least_certain_first_as_labeling_orders_them(method, least_certain_first):
    ranked = np.argsort(-uncertainty(PROBA, method), kind="stable").tolist()
    assert ranked == least_certain_first


def test_unknown_ranking_is_refused():
    with pytest.raises(ValueError, match="unknown uncertainty"):
        uncertainty(PROBA, "vibes")
