"""The label-error finder: which consensus classes are likely wrong.

Every image with a consensus class gets out-of-sample class probabilities: a logistic
regression (scikit-learn's) over the frozen backbone's pooled embeddings, L2-normalized (cached by content hash, the quick
model's features, ml.embeddings), FOLDS-fold, each image predicted by a model that did not
train on it. cleanlab's ``find_label_issues`` ranks the images whose class those
probabilities doubt (by self-confidence, the probability of the given class); the ranking is
stored (label_issue) and the review queue shows it as "likely label errors" after the
disagreements and the model's. A job (JOB_KIND) runs it: from the review page, and from the
worker's minutely check after a retrain made a newer model.

``rank_issues`` is a pure function over arrays: benchmarks/label_quality.py measures it.
"""
from __future__ import annotations

from flask import current_app
from sqlalchemy import delete, func, insert, select

from .. import storage
from ..consensus import consensus_details
from ..extensions import db
from ..jobs import queue as jobs
from ..models import Image, LabelIssue, ModelVersion, Project, utcnow

JOB_KIND = "label_issues"
FOLDS = 5
# A project needs this many images with a consensus class, in at least two classes.
MIN_IMAGES = 20
# The logistic regression's C over L2-normalized embeddings: on HiRISE's 5% flipped train
# labels (seed 0) it found 0.83 of random flips and 0.74 of flips toward the nearest class at
# k, against 0.80 / 0.68 with standardized features at C 0.005 and 0.74 / 0.59 at C 1 unscaled.
REGULARIZATION = 1.0


def rank_issues(features, labels, n_classes: int, folds: int = FOLDS, seed: int = 0):
    """(indices of likely label errors, most likely first; out-of-sample probabilities (N, C))
    for features (N, D) and class indices labels (N,)."""
    import numpy as np
    from cleanlab.filter import find_label_issues
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.preprocessing import normalize
    labels, features = np.asarray(labels), normalize(np.asarray(features, dtype=np.float64))
    smallest = int(np.bincount(labels, minlength=n_classes)[np.unique(labels)].min())
    splits = StratifiedKFold(n_splits=max(2, min(folds, smallest)), shuffle=True,
                             random_state=seed)
    probabilities = np.zeros((len(labels), n_classes))
    for train, held_out in splits.split(features, labels):
        model = LogisticRegression(max_iter=1000, C=REGULARIZATION)
        model.fit(features[train], labels[train])
        probabilities[np.ix_(held_out, model.classes_)] = model.predict_proba(features[held_out])
    probabilities = np.clip(probabilities, 1e-6, None)
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    ranked = find_label_issues(labels, probabilities, return_indices_ranked_by="self_confidence")
    return ranked, probabilities


def find_project_issues(project_id: int, progress=None) -> dict:
    """Rank the project's likely label errors and store them (replacing the last ranking)."""
    import numpy as np
    details = consensus_details(project_id)[1]
    project = db.session.get(Project, project_id)
    class_ids = [label_class.id for label_class in project.classes]
    rows = db.session.execute(select(Image.id, Image.storage_key, Image.content_hash).where(
        Image.project_id == project_id).order_by(Image.id)).all()
    db.session.commit()  # no transaction while embedding
    labeled = [(image_id, key, digest) for image_id, key, digest in rows
               if details.get(image_id, (None,))[0] in class_ids]
    if len(labeled) < MIN_IMAGES or len({details[i][0] for i, _k, _d in labeled}) < 2:
        raise jobs.JobRefused(f"the finder needs {MIN_IMAGES} images with a consensus class "
                              f"in two classes or more (has {len(labeled)})")
    features = _features([(key, digest) for _i, key, digest in labeled], progress)
    labels = np.array([class_ids.index(details[image_id][0]) for image_id, _k, _d in labeled])
    ranked, probabilities = rank_issues(features, labels, len(class_ids))
    now = utcnow()
    issues = [{"project_id": project_id, "image_id": labeled[index][0], "rank": rank,
               "given_class_id": class_ids[labels[index]],
               "suggested_class_id": class_ids[int(probabilities[index].argmax())],
               "self_confidence": float(probabilities[index, labels[index]]),
               "computed_at": now} for rank, index in enumerate(ranked.tolist(), start=1)]
    db.session.execute(delete(LabelIssue).where(LabelIssue.project_id == project_id))
    if issues:
        db.session.execute(insert(LabelIssue), issues)
    db.session.commit()
    return {"images": len(labeled), "issues": len(issues)}


def _features(images: list[tuple[str, str]], progress=None):
    """Pooled embeddings (N, D) of (storage key, content hash) pairs, cached by content."""
    from ..learning.predictions import embedding_cache_dir
    from ..ml import Record, load_backbone
    from ..ml.backbones import backbone_spec
    from ..ml.data import Preprocessing
    from ..ml.embeddings import embed_records, feature_cache
    name = current_app.config["RETRAIN_BACKBONE"]
    spec = backbone_spec(name)
    preprocessing = Preprocessing(spec.image_size, spec.normalization)
    store = current_app.config["IMAGE_STORE"]
    records = [Record(str(storage.path_for_key(store, key)), content_hash=digest)
               for key, digest in images]
    cache = feature_cache(embedding_cache_dir(), name, preprocessing)
    return embed_records(load_backbone(name), records, preprocessing, [0], cache, 8,
                         progress)[0].numpy()


def run_finder(job, reporter) -> dict:
    """Job handler: rank the job's project's likely label errors."""
    def progress(stage: str, done: int, total: int) -> None:
        reporter.progress(0.9 * done / max(total, 1), f"{stage} {done}/{total}")
    return find_project_issues(job.project_id, progress)


def request_finder(project_id: int) -> bool:
    """Queue the finder job of a project; False when one is queued or running already."""
    try:
        jobs.submit(JOB_KIND, project_id, {})
    except jobs.JobBusy:
        return False
    return True


def queue_finder_after_retrains() -> list[int]:
    """Minutely check: queue the finder of every project whose serving model is newer than
    its last ranking (a retrain since), where the project has a ranking or reviews to do."""
    newest = dict(db.session.execute(select(ModelVersion.project_id, func.max(
        ModelVersion.created_at)).where(ModelVersion.is_serving.is_(True))
        .group_by(ModelVersion.project_id)).all())
    ranked = dict(db.session.execute(select(LabelIssue.project_id, func.max(
        LabelIssue.computed_at)).group_by(LabelIssue.project_id)).all())
    db.session.commit()
    queued = [project_id for project_id, made in newest.items()
              if project_id in ranked and ranked[project_id] < made
              and request_finder(project_id)]
    return queued
