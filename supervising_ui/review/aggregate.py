"""Aggregation: many labelers' votes -> each image's class, its posterior and each labeler's
estimated confusion matrix. Pure functions over plain tuples (no database), so that the
consensus job and benchmarks/label_quality.py run the same code.

Dawid-Skene is crowd-kit's ``DawidSkene`` (EM over per-labeler confusion matrices); images a
reviewer settled go in as its ``true_labels``, so a review is known truth in the fit.
crowd-kit refits from scratch (it has no incremental update), which is why the fit runs in
the consensus job (review/consensus_jobs.py), never inside a labeling request: a fit of
9,000 labels took 2.4 s on a shared 2-core machine, the whole job on 9,735 about 9 s.
Majority is consensus.majority, the rule the rest of the app uses; its "posterior" is the
winning class's share of the votes.
"""
from __future__ import annotations

import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Hashable, Iterable

from ..consensus import majority

DS_ITERATIONS = 100


@dataclass
class Aggregate:
    """Per image: class (None on a majority tie), posterior and label count; per labeler: confusions."""

    classes: dict[Hashable, Hashable | None] = field(default_factory=dict)
    posteriors: dict[Hashable, float] = field(default_factory=dict)
    counts: dict[Hashable, int] = field(default_factory=dict)
    # worker -> true class -> given class -> probability (Dawid-Skene only).
    confusions: dict[Hashable, dict[Hashable, dict[Hashable, float]]] | None = None


def aggregate(method: str, votes: Iterable[tuple], truths: dict | None = None) -> Aggregate:
    """Aggregate (image, worker, class) votes with "majority" or "dawid-skene"; truths settle images."""
    votes, truths = list(votes), dict(truths or {})
    result = dawid_skene(votes, truths) if method == "dawid-skene" else majority_vote(votes)
    for image, settled in truths.items():  # a reviewer's decision settles the class
        result.classes[image], result.posteriors[image] = settled, 1.0
        result.counts.setdefault(image, 0)
    return result


def majority_vote(votes: list[tuple]) -> Aggregate:
    """The majority rule (ties give no class); the posterior is the winner's vote share."""
    tallies: dict[Hashable, dict[Hashable, int]] = defaultdict(lambda: defaultdict(int))
    for image, _worker, label in votes:
        tallies[image][label] += 1
    result = Aggregate()
    for image, counts in tallies.items():
        total, winner = sum(counts.values()), majority(counts)
        result.classes[image] = winner
        result.counts[image] = total
        result.posteriors[image] = (counts[winner] / total) if winner is not None else \
            max(counts.values()) / total
    return result


def dawid_skene(votes: list[tuple], truths: dict | None = None) -> Aggregate:
    """Crowd-kit's Dawid-Skene over the votes, with settled images as true labels."""
    import pandas as pd
    from crowdkit.aggregation import DawidSkene
    if not votes:
        return Aggregate(confusions={})
    data = pd.DataFrame(votes, columns=["task", "worker", "label"])
    known = {image: label for image, label in (truths or {}).items()
             if image in set(data["task"])}
    model = DawidSkene(n_iter=DS_ITERATIONS)
    with warnings.catch_warnings():  # crowd-kit 1.4 uses pandas keywords pandas 3 deprecates
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        model.fit(data, pd.Series(known, dtype=object) if known else None)
    probabilities = model.probas_
    winners = probabilities.idxmax(axis=1)
    result = Aggregate(confusions=_confusions(model.errors_))
    counts = data.groupby("task").size()
    for image in probabilities.index:
        result.classes[_plain(image)] = _plain(winners[image])
        result.posteriors[_plain(image)] = float(probabilities.loc[image, winners[image]])
        result.counts[_plain(image)] = int(counts[image])
    return result


def _plain(value):
    """A numpy scalar as the Python value it holds (ids go on to the database and JSON)."""
    return value.item() if hasattr(value, "item") else value


def _confusions(errors) -> dict:
    """crowd-kit's errors_ (rows (worker, given class), columns true class) as nested dicts."""
    confusions: dict = defaultdict(lambda: defaultdict(dict))
    for (worker, given), row in errors.iterrows():
        for true_class, probability in row.items():
            confusions[_plain(worker)][_plain(true_class)][_plain(given)] = \
                round(float(probability), 4)
    return {worker: dict(by_true) for worker, by_true in confusions.items()}
