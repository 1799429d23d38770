"""Agreement: how far a project's labels agree, per labeler, per class and between labelers.

Per labeler: labels given, agreement and Cohen's kappa against the consensus of the OTHER
labels of the same images (leave-one-out: the majority of the others, or the known class where
a reviewer settled the image or it is gold), accuracy on gold images (known answers), median
seconds per label, review outcomes, and the
confusion matrix Dawid-Skene estimated (stored by the consensus job; none under majority).
Per project and per class: Krippendorff's alpha (nominal; per class, that class against the
rest) over images with at least two labels. Pairwise: Cohen's kappa of every two labelers
with at least PAIR_MIN_SHARED shared images. Every figure carries its sample size.
"""
from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from itertools import combinations

from sqlalchemy import func, select

from ..consensus import gold_class_ids, known_class_ids, majority
from ..extensions import db
from ..models import ConsensusRun, Label, Project, Review, User

PAIR_MIN_SHARED = 20


def cohen_kappa(first: list, second: list) -> float | None:
    """Cohen's kappa of two equally long label lists (scikit-learn's); None where undefined."""
    from sklearn.metrics import cohen_kappa_score
    if not first or len(set(first) | set(second)) < 2:
        return None
    kappa = cohen_kappa_score(first, second)
    return None if kappa != kappa else round(float(kappa), 4)  # NaN: one class only


def krippendorff_alpha(by_image: dict[int, dict[int, object]], labelers: list[int],
                       of_class=None) -> float | None:
    """Nominal Krippendorff's alpha over images with at least two labels (krippendorff's)."""
    import krippendorff
    import numpy as np
    images = [image for image, labels in by_image.items() if len(labels) >= 2]
    if len(images) < 2:
        return None
    data = np.full((len(labelers), len(images)), np.nan)
    row_of = {labeler: row for row, labeler in enumerate(labelers)}
    for column, image in enumerate(images):
        for labeler, label in by_image[image].items():
            data[row_of[labeler], column] = (label == of_class) if of_class is not None else label
    if len(np.unique(data[~np.isnan(data)])) < 2:
        return None  # one value everywhere: alpha is undefined
    return round(float(krippendorff.alpha(reliability_data=data,
                                          level_of_measurement="nominal")), 4)


def agreement_report(project: Project, only_user_id: int | None = None,
                     show_gold: bool = True) -> dict:
    """The project's agreement figures; only_user_id keeps that labeler's own row alone;
    show_gold=False leaves out the gold figures (for labelers: a count that moves after a
    label would tell them which image was gold)."""
    labels = db.session.execute(select(Label.image_id, Label.user_id, Label.label_class_id,
                                       Label.seconds_spent).where(
        Label.project_id == project.id)).all()
    names = {label_class.id: label_class.name for label_class in project.classes}
    by_image: dict[int, dict[int, int]] = defaultdict(dict)
    for image_id, user_id, class_id, _seconds in labels:
        by_image[image_id][user_id] = class_id
    labelers = sorted({user_id for _image, user_id, _class, _seconds in labels})
    usernames = dict(db.session.execute(select(User.id, User.username).where(
        User.id.in_(labelers))).all()) if labelers else {}
    rows = _labeler_rows(project, labels, by_image, names, usernames)
    report = {"project_id": project.id, "consensus_method": project.consensus_method,
              "labels": len(labels), "images": len(by_image),
              "images_with_two_or_more": sum(len(v) >= 2 for v in by_image.values()),
              "alpha": krippendorff_alpha(by_image, labelers),
              "alpha_by_class": {name: krippendorff_alpha(by_image, labelers, class_id)
                                 for class_id, name in names.items()},
              "labelers": rows, "pairwise_kappa": [], "pair_min_shared": PAIR_MIN_SHARED}
    if not show_gold:
        for row in rows:
            row["gold_answered"] = row["gold_accuracy"] = None
    if only_user_id is not None:
        report["labelers"] = [row for row in rows if row["user_id"] == only_user_id]
    else:
        report["pairwise_kappa"] = _pairwise(by_image, labelers, usernames)
    db.session.commit()  # end the read
    return report


def _labeler_rows(project, labels, by_image, names, usernames) -> list[dict]:
    """One dict per labeler: counts, leave-one-out agreement and kappa, time, reviews, confusions."""
    settled, gold = known_class_ids(project.id), gold_class_ids(project.id)
    outcomes = defaultdict(Counter)
    for labeler_id, decision, count in db.session.execute(
            select(Review.labeler_id, Review.decision, func.count(Review.id)).where(
                Review.project_id == project.id, Review.labeler_id.is_not(None))
            .group_by(Review.labeler_id, Review.decision)):
        outcomes[labeler_id][decision] = count
    run = db.session.scalar(select(ConsensusRun).where(ConsensusRun.project_id == project.id))
    confusions = (run.confusions or {}) if run is not None and run.method == project.consensus_method \
        else {}
    given, reference, seconds = defaultdict(list), defaultdict(list), defaultdict(list)
    gold_answered, gold_right = Counter(), Counter()
    for image_id, user_id, class_id, spent in labels:
        if image_id in gold:
            gold_answered[user_id] += 1
            gold_right[user_id] += class_id == gold[image_id]
        if spent is not None:
            seconds[user_id].append(spent)
        others = Counter(c for other, c in by_image[image_id].items() if other != user_id)
        truth = settled.get(image_id, majority(others))
        if truth is not None:
            given[user_id].append(class_id)
            reference[user_id].append(truth)
    given_count = Counter(user_id for _image, user_id, _class, _seconds in labels)
    rows = []
    for user_id in sorted(usernames, key=lambda uid: usernames[uid]):
        compared = len(given[user_id])
        agreed = sum(a == b for a, b in zip(given[user_id], reference[user_id], strict=True))
        rows.append({
            "user_id": user_id, "labeler": usernames[user_id],
            "labels": given_count[user_id],
            "compared": compared, "agreement": round(agreed / compared, 4) if compared else None,
            "kappa": cohen_kappa(given[user_id], reference[user_id]),
            "gold_answered": gold_answered[user_id],
            "gold_accuracy": round(gold_right[user_id] / gold_answered[user_id], 4)
            if gold_answered[user_id] else None,
            "timed": len(seconds[user_id]),
            "median_seconds": round(statistics.median(seconds[user_id]), 2)
            if seconds[user_id] else None,
            "reviews": {decision: outcomes[user_id][decision]
                        for decision in ("accept", "fix", "reject")},
            "confusion": _named_confusion(confusions.get(str(user_id)), names)})
    return rows


def _named_confusion(confusion: dict | None, names: dict[int, str]) -> dict | None:
    """A stored confusion matrix {true id: {given id: p}} with class names for ids."""
    if not confusion:
        return None
    return {names.get(int(true), str(true)): {names.get(int(given), str(given)): probability
                                              for given, probability in row.items()}
            for true, row in confusion.items()}


def _pairwise(by_image, labelers, usernames) -> list[dict]:
    """Cohen's kappa of every pair of labelers who share at least PAIR_MIN_SHARED images."""
    pairs = []
    for first, second in combinations(labelers, 2):
        shared = [labels for labels in by_image.values() if first in labels and second in labels]
        if len(shared) >= PAIR_MIN_SHARED:
            pairs.append({"first": usernames[first], "second": usernames[second],
                          "shared": len(shared),
                          "kappa": cohen_kappa([s[first] for s in shared],
                                               [s[second] for s in shared])})
    return pairs


CSV_COLUMNS = ["labeler", "labels", "compared", "agreement", "kappa", "gold_answered",
               "gold_accuracy", "timed", "median_seconds", "accepted", "fixed", "rejected"]


def agreement_csv(report: dict) -> str:
    """The report's per-labeler rows as CSV (through downloads.frame_csv)."""
    import pandas as pd

    from ..downloads import frame_csv
    frame = pd.DataFrame([[row["labeler"], row["labels"], row["compared"], row["agreement"],
                           row["kappa"], row["gold_answered"], row["gold_accuracy"],
                           row["timed"], row["median_seconds"],
                           row["reviews"]["accept"], row["reviews"]["fix"],
                           row["reviews"]["reject"]] for row in report["labelers"]],
                         columns=CSV_COLUMNS)
    return frame_csv(frame)
