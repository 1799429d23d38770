"""Consensus: the one rule that turns several labels of an image into its class.

The majority class wins; a tie between the two most-voted classes leaves the image without
a consensus label. Training, export and search all take an image's class from here
(``majority``; ``majority_sql`` is the same rule for a statement, tested to agree).
"""
from __future__ import annotations

from collections import Counter, defaultdict
from typing import Hashable, Mapping

from sqlalchemy import case, func, select

from .extensions import db
from .models import Label, LabelClass


def majority(votes: Mapping[Hashable, int]):
    """Return the key with strictly the most votes, or None on a tie or without votes."""
    ranked = Counter(votes).most_common(2)
    if not ranked or (len(ranked) == 2 and ranked[0][1] == ranked[1][1]):
        return None
    return ranked[0][0]


def majority_sql(votes):
    """The same rule as majority(), as a one-row SQL select over votes, a selectable of rows
    (label_class_id, votes): the class with strictly the most votes, NULL on a tie or without
    votes. For statements that must decide inside the database (PostgreSQL's submit)."""
    top = votes.c.votes == select(func.max(votes.c.votes)).scalar_subquery()
    return select(case((func.count().filter(top) == 1,
                        func.max(votes.c.label_class_id).filter(top))).label("class_id")) \
        .select_from(votes)


def consensus_class_ids(project_id: int) -> dict[int, int]:
    """Map image id -> consensus class id for every image of the project that has one."""
    rows = db.session.execute(select(Label.image_id, Label.label_class_id, func.count(Label.id))
                              .where(Label.project_id == project_id)
                              .group_by(Label.image_id, Label.label_class_id)).all()
    votes: dict[int, dict[int, int]] = defaultdict(dict)
    for image_id, class_id, count in rows:
        votes[image_id][class_id] = count
    winners = {image_id: majority(counts) for image_id, counts in votes.items()}
    return {image_id: class_id for image_id, class_id in winners.items() if class_id is not None}


def consensus_labels(project_id: int) -> dict[int, str]:
    """Map image id -> consensus class name; images whose vote is tied are left out."""
    names = dict(db.session.execute(select(LabelClass.id, LabelClass.name).where(
        LabelClass.project_id == project_id)).all())
    return {image_id: names[class_id]
            for image_id, class_id in consensus_class_ids(project_id).items()}
