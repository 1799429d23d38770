"""Consensus: the one rule that turns several labels of an image into its class.

The majority class wins; a tie between the two most-voted classes leaves the image without
a consensus label. Training, export and search all take an image's class from here
(``majority``; ``majority_sql`` is the same rule for a statement, tested to agree).

A project whose consensus method is "dawid-skene" takes its classes from what the consensus
job stored (image_consensus, written by review/consensus_jobs.py); an image labeled since
that job ran falls back to the majority until the next one. An image a reviewer settled
(its latest accept or fix; a reject only removes a label) takes the reviewer's class under either
method, and a gold image its gold answer (known_class_ids), posterior 1.
A retrain leaves out Dawid-Skene images whose posterior is below the project's
retrain_min_posterior (training_labels). The search index's class follows the method too: the
consensus job writes its classes into the search rows (search/index.py), and a new label
writes the majority (majority_sql) until the job runs again.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from typing import Collection, Hashable, Mapping

from sqlalchemy import case, func, select

from .extensions import db
from .models import Image, ImageConsensus, Label, LabelClass, Project, Review


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
    return {image_id: class_id for image_id, (class_id, _posterior, _count)
            in consensus_details(project_id)[1].items() if class_id is not None}


def consensus_details(project_id: int, image_ids: Collection[int] | None = None) \
        -> tuple[str, dict[int, tuple[int | None, float, int]]]:
    """Return the project's method and, per labeled or settled image (of image_ids, if given),
    (class id or None, posterior, label count): stored by the consensus job where current,
    else the majority (posterior: the winner's vote share), and a reviewer's class
    (posterior 1) where settled."""
    method = db.session.scalar(select(Project.consensus_method).where(
        Project.id == project_id)) or "majority"
    votes = _votes(project_id, image_ids)
    details = {}
    for image_id, counts in votes.items():
        total, winner = sum(counts.values()), majority(counts)
        details[image_id] = (winner, max(counts.values()) / total, total)
    if method != "majority":
        for image_id, class_id, posterior, count in db.session.execute(_only(
                select(ImageConsensus.image_id, ImageConsensus.label_class_id,
                       ImageConsensus.posterior, ImageConsensus.n_labels).where(
                    ImageConsensus.project_id == project_id, ImageConsensus.method == method),
                ImageConsensus.image_id, image_ids)):
            # Only while its labels are the ones the job saw: a later label or reject falls back.
            if image_id in details and details[image_id][2] == count:
                details[image_id] = (class_id, posterior, count)
    for image_id, class_id in known_class_ids(project_id, image_ids).items():
        details[image_id] = (class_id, 1.0, details.get(image_id, (None, 0.0, 0))[2])
    return method, details


def known_class_ids(project_id: int, image_ids: Collection[int] | None = None) -> dict[int, int]:
    """Map image id -> its known class: a gold image's answer, else a reviewer's settled class
    (a review of a gold image wins: it is the later word)."""
    known = gold_class_ids(project_id, image_ids)
    known.update(settled_class_ids(project_id, image_ids))
    return known


def gold_class_ids(project_id: int, image_ids: Collection[int] | None = None) -> dict[int, int]:
    """Map image id -> the gold answer of each gold image of the project (of image_ids, if given)."""
    return dict(db.session.execute(_only(select(Image.id, Image.gold_class_id).where(
        Image.project_id == project_id, Image.gold_class_id.is_not(None)),
        Image.id, image_ids)).all())


def settled_class_ids(project_id: int, image_ids: Collection[int] | None = None) -> dict[int, int]:
    """Map image id -> the class a reviewer settled (the image's latest accept or fix)."""
    latest = _only(select(func.max(Review.id)).where(
        Review.project_id == project_id, Review.decision.in_(("accept", "fix"))),
        Review.image_id, image_ids).group_by(Review.image_id).scalar_subquery()
    return dict(db.session.execute(select(Review.image_id, Review.label_class_id).where(
        Review.id.in_(latest))).all())


def _only(query, column, image_ids: Collection[int] | None):
    """Narrow query to image_ids (all images for None)."""
    return query if image_ids is None else query.where(column.in_(list(image_ids)))


def _votes(project_id: int, image_ids: Collection[int] | None = None) -> dict[int, dict[int, int]]:
    """Map image id -> class id -> votes over the project's labels (of image_ids, if given)."""
    rows = db.session.execute(_only(select(Label.image_id, Label.label_class_id,
                                           func.count(Label.id))
                                    .where(Label.project_id == project_id),
                                    Label.image_id, image_ids)
                              .group_by(Label.image_id, Label.label_class_id)).all()
    votes: dict[int, dict[int, int]] = defaultdict(dict)
    for image_id, class_id, count in rows:
        votes[image_id][class_id] = count
    return votes


def training_labels(project_id: int) -> dict[int, str]:
    """What a retrain learns from: consensus_labels, less (under Dawid-Skene, whose posterior
    is a probability) the images whose posterior is below the project's retrain_min_posterior.
    Under majority the posterior is a vote share, and no image is left out for it."""
    min_posterior = db.session.scalar(select(Project.retrain_min_posterior).where(
        Project.id == project_id)) or 0.0
    method, details = consensus_details(project_id)
    names = dict(db.session.execute(select(LabelClass.id, LabelClass.name).where(
        LabelClass.project_id == project_id)).all())
    return {image_id: names[class_id] for image_id, (class_id, posterior, _count)
            in details.items() if class_id is not None
            and (method == "majority" or posterior >= min_posterior)}


def consensus_labels(project_id: int) -> dict[int, str]:
    """Map image id -> consensus class name; images whose vote is tied are left out."""
    names = dict(db.session.execute(select(LabelClass.id, LabelClass.name).where(
        LabelClass.project_id == project_id)).all())
    return {image_id: names[class_id]
            for image_id, class_id in consensus_class_ids(project_id).items()}
