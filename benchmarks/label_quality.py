"""Label quality on HiRISE: simulated labelers, majority against Dawid-Skene, kappa ranking,
adaptive redundancy, and the label-error finder, through the app's own service functions.

The truth is the shared HiRISE labels (../shared/data/hirise/manifest.csv). Seven simulated
labelers: 4 careful (CAREFUL_ACCURACY right; three in four of their errors go to the visually
nearest class, NEAR below), 2 hasty (HASTY_ACCURACY right, half their errors to the nearest
class), 1 spammer (always SPAM_CLASS, or uniform with --uniform-spammer). Each image gets
labels from distinct labelers drawn at random.

What runs through the app: a project in a temporary SQLite instance, image rows and user
accounts, the simulated labels written as label rows (bulk: the labeling request path is
measured by benchmarks/load.py), then review.consensus_jobs.recompute (the consensus job) with
each method, consensus.consensus_class_ids (what training and the export read) and
review.agreement.agreement_report (kappa per labeler). Adaptive redundancy calls
review.aggregate.aggregate (the consensus job's function) round by round. The finder uses
cleanlab's find_label_issues over out-of-sample probabilities (k-fold linear heads over the
EfficientNet-Lite0 embeddings of benchmarks/active_learning.py, cached under the system's
temporary folder); --skip-finder leaves it out.

Adaptive redundancy runs twice: as a simulation over the aggregation function (rounds), and
through the app's picker and submit with the consensus job between rounds (--skip-picker leaves
it out, --picker-images N keeps it to the first N images). --top N prints the finder's top N on
the unflipped labels of --data and of each --also data set (e.g. ../shared/data/msl).

    python benchmarks/label_quality.py [--data DIR] [--seed 0] [--uniform-spammer] [--skip-finder]
        [--skip-picker] [--picker-images N] [--top 30 --also ../shared/data/msl]
"""
from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "hirise"
CAREFUL_ACCURACY, HASTY_ACCURACY = 0.92, 0.70
SPAM_CLASS = "other"
# The class each class is most often mistaken for (what a glance confuses).
NEAR = {"bright_dune": "dark_dune", "dark_dune": "bright_dune", "crater": "other",
        "edge": "other", "other": "crater", "streak": "dark_dune"}
LABELERS = [("careful", CAREFUL_ACCURACY, 0.75)] * 4 + [("hasty", HASTY_ACCURACY, 0.5)] * 2 + \
    [("spammer", None, None)]
TARGET_ACCURACY = 0.98


def simulated_label(kind, accuracy, near_share, truth, classes, rng, uniform_spammer):
    """One simulated labeler's answer for an image whose true class is truth."""
    if kind == "spammer":
        return rng.choice(classes) if uniform_spammer else SPAM_CLASS
    if rng.random() < accuracy:
        return truth
    if truth in NEAR and rng.random() < near_share:
        return NEAR[truth]
    return rng.choice([c for c in classes if c != truth])


def draw_votes(truth: dict, per_image: int, seed: int, uniform_spammer: bool) -> dict:
    """image -> list of (labeler index, class): per_image distinct labelers in a random order."""
    rng, classes = random.Random(seed), sorted(set(truth.values()))
    votes = {}
    for image, true_class in truth.items():
        order = rng.sample(range(len(LABELERS)), len(LABELERS))[:per_image]
        votes[image] = [(worker, simulated_label(*LABELERS[worker], true_class, classes, rng,
                                                 uniform_spammer)) for worker in order]
    return votes


def build_app(instance: Path):
    """An app on a fresh SQLite instance (the memory queue runs jobs at once)."""
    from supervising_ui import create_app
    from supervising_ui.database import create_or_migrate
    app = create_app({"TESTING": True, "SECRET_KEY": "benchmark", "JOB_QUEUE": "memory",
                      "DATABASE_URL": f"sqlite:///{instance / 'bench.sqlite3'}"})
    with app.app_context():
        create_or_migrate()
    return app


def through_the_app(app, truth: dict, votes: dict) -> dict:
    """Store the votes, run the consensus job with each method, return accuracies and kappas."""
    from sqlalchemy import insert

    from supervising_ui.accounts.users import create_user
    from supervising_ui.consensus import consensus_class_ids
    from supervising_ui.extensions import db
    from supervising_ui.models import Image, Label
    from supervising_ui.projects.service import create_project
    from supervising_ui.review import agreement, consensus_jobs
    with app.app_context():
        project = create_project(f"hirise-{time.monotonic_ns()}", classes=sorted(set(truth.values())))
        class_ids = {c.name: c.id for c in project.classes}
        users = [create_user(f"{kind}{i}-{project.id}", password="benchmark password 1")[0].id
                 for i, (kind, _a, _n) in enumerate(LABELERS)]
        images = [Image(project_id=project.id, storage_key=f"k{n}", original_name=name,
                        content_hash=f"{n:064x}", width=227, height=227, meta={},
                        label_count=len(votes[name])) for n, name in enumerate(truth)]
        db.session.add_all(images)
        db.session.commit()
        ids = {image.original_name: image.id for image in images}
        db.session.execute(insert(Label), [
            {"project_id": project.id, "image_id": ids[name], "user_id": users[worker],
             "label_class_id": class_ids[label]} for name, pairs in votes.items()
            for worker, label in pairs])
        db.session.commit()
        names = {class_id: name for name, class_id in class_ids.items()}
        truth_by_id = {ids[name]: label for name, label in truth.items()}
        figures = {}
        for method in ("majority", "dawid-skene"):
            project.consensus_method = method
            db.session.commit()
            started = time.perf_counter()
            consensus_jobs.recompute(project.id)
            figures[f"{method}_seconds"] = time.perf_counter() - started
            found = consensus_class_ids(project.id)
            figures[method] = sum(names.get(found.get(i)) == label
                                  for i, label in truth_by_id.items()) / len(truth_by_id)
        report = agreement.agreement_report(project)
        figures["kappa"] = {row["labeler"].rsplit("-", 1)[0]: row["kappa"] for row in report["labelers"]}
        figures["compared"] = {row["labeler"].rsplit("-", 1)[0]: row["compared"]
                               for row in report["labelers"]}
    return figures


def accuracy_of(result, truth: dict) -> float:
    """Share of images whose aggregated class is the truth."""
    return sum(result.classes.get(image) == label for image, label in truth.items()) / len(truth)


def fixed_count_needed(truth: dict, seed: int, uniform_spammer: bool) -> list[tuple]:
    """Dawid-Skene accuracy with every image labeled n times, n = 1..7: (n, labels, accuracy)."""
    from supervising_ui.review.aggregate import aggregate
    rows = []
    for per_image in range(1, len(LABELERS) + 1):
        votes = draw_votes(truth, per_image, seed, uniform_spammer)
        result = aggregate("dawid-skene", _triples(votes))
        rows.append((per_image, per_image * len(truth), accuracy_of(result, truth)))
        if rows[-1][2] >= TARGET_ACCURACY:
            break
    return rows


def adaptive(truth: dict, seed: int, uniform_spammer: bool, labels_min: int, labels_max: int,
             target_posterior: float) -> tuple[int, float]:
    """Label in rounds: each round one more label for every image whose Dawid-Skene posterior
    is below target and that has fewer than labels_max; return (labels used, accuracy)."""
    from supervising_ui.review.aggregate import aggregate
    full = draw_votes(truth, len(LABELERS), seed, uniform_spammer)  # each image's labeler order
    given = {image: labels_min for image in truth}
    while True:
        result = aggregate("dawid-skene", _triples({i: full[i][:n] for i, n in given.items()}))
        wanting = [image for image, n in given.items()
                   if n < labels_max and result.posteriors[image] < target_posterior]
        if not wanting:
            return sum(given.values()), accuracy_of(result, truth)
        for image in wanting:
            given[image] += 1


def _triples(votes: dict) -> list[tuple]:
    """{image: [(worker, class)]} as (image, worker, class) triples."""
    return [(image, worker, label) for image, pairs in votes.items() for worker, label in pairs]


def finder(data_dir: Path, seed: int) -> list[tuple]:
    """Flip 5% of the train labels (at random, and toward the nearest class); rank the likely
    label errors with the app's finder (review.finder.rank_issues: 5-fold out-of-sample
    probabilities, cleanlab); (how, flipped, precision, recall at k = flipped)."""
    import numpy as np

    from supervising_ui.review.finder import rank_issues
    data = cached_embeddings(data_dir)
    train = np.flatnonzero(data["split"] == "train")
    features = data["embeddings"][train]
    truth, classes = data["labels"][train], data["classes"]
    rows = []
    for how in ("random", "nearest"):
        rng = np.random.default_rng(seed)
        flipped = rng.choice(len(truth), int(round(0.05 * len(truth))), replace=False)
        noisy = truth.copy()
        for index in flipped:
            if how == "nearest":
                noisy[index] = classes.index(NEAR[classes[truth[index]]])
            else:
                noisy[index] = rng.choice([c for c in range(len(classes)) if c != truth[index]])
        ranked, _probabilities = rank_issues(features, noisy, len(classes), seed=seed)
        top = set(ranked[:len(flipped)].tolist())
        hits = len(top & set(flipped.tolist()))
        rows.append((how, len(flipped), hits / max(len(top), 1), hits / len(flipped)))
    return rows


def cached_embeddings(data_dir: Path) -> dict:
    """The EfficientNet-Lite0 embeddings of every manifest image (benchmarks/active_learning.py's,
    computed once and cached under the system's temporary folder)."""
    from active_learning import load_embeddings
    return load_embeddings(data_dir, Path(tempfile.gettempdir()) / "supervising_ui_embeddings")


def print_top_issues(data_dir: Path, count: int, seed: int) -> None:
    """Run the finder on a data set's unflipped labels and print its top `count` (to look at)."""
    import numpy as np

    from supervising_ui.review.finder import rank_issues
    data = cached_embeddings(data_dir)
    frame = pd.read_csv(data_dir / "manifest.csv")
    ranked, probabilities = rank_issues(data["embeddings"], data["labels"], len(data["classes"]),
                                        seed=seed)
    print(f"finder on {data_dir.name} ({len(frame)} images, labels as shared): "
          f"{len(ranked)} flagged; top {count}:")
    for rank, index in enumerate(ranked[:count].tolist(), start=1):
        given, suggested = data["labels"][index], int(np.argmax(probabilities[index]))
        print(f"  {rank:2d}. {frame['filename'][index]}  given {data['classes'][given]} "
              f"(p {probabilities[index, given]:.3f}), suggested {data['classes'][suggested]} "
              f"(p {probabilities[index, suggested]:.3f})")


def main() -> int:
    """Run the simulation and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--uniform-spammer", action="store_true")
    parser.add_argument("--skip-finder", action="store_true")
    parser.add_argument("--skip-adaptive", action="store_true")
    parser.add_argument("--skip-picker", action="store_true",
                        help="leave out adaptive redundancy through the app's picker")
    parser.add_argument("--picker-images", type=int, default=0,
                        help="images of the picker run (0: all; fewer for a quick check)")
    parser.add_argument("--top", type=int, default=0,
                        help="print the finder's top N on the unflipped labels of --data and "
                             "of each --also data set")
    parser.add_argument("--also", type=Path, action="append", default=[],
                        help="another data set for --top (e.g. ../shared/data/msl)")
    arguments = parser.parse_args()
    manifest = arguments.data / "manifest.csv"
    if not manifest.exists():
        print(f"skipped: {manifest} is not present")
        return 0
    frame = pd.read_csv(manifest)
    truth = dict(zip(frame["filename"], frame["label"], strict=True))
    spammer = "uniform" if arguments.uniform_spammer else f"always {SPAM_CLASS!r}"
    print(f"HiRISE: {len(truth)} images, {frame['label'].nunique()} classes; labelers: 4 careful "
          f"({CAREFUL_ACCURACY:.0%}), 2 hasty ({HASTY_ACCURACY:.0%}), 1 spammer ({spammer}); seed {arguments.seed}")
    votes = draw_votes(truth, 3, arguments.seed, arguments.uniform_spammer)
    with tempfile.TemporaryDirectory() as instance:
        figures = through_the_app(build_app(Path(instance)), truth, votes)
    print(f"3 labels per image ({3 * len(truth)} labels): majority {figures['majority']:.2%}, "
          f"Dawid-Skene {figures['dawid-skene']:.2%} "
          f"({100 * (figures['dawid-skene'] - figures['majority']):+.1f} points; consensus job "
          f"{figures['dawid-skene_seconds']:.1f} s)")
    ranking = sorted(figures["kappa"].items(), key=lambda item: (item[1] is None, -(item[1] or 0)))
    print("kappa against the leave-one-out consensus, best first:")
    for place, (name, kappa) in enumerate(ranking, start=1):
        print(f"  {place}. {name:9s} kappa {kappa:.3f} (n = {figures['compared'][name]})")
    print(f"spammer last by kappa: {ranking[-1][0].startswith('spammer')}; hasty at places "
          f"{[place for place, (name, _k) in enumerate(ranking, 1) if name.startswith('hasty')]}")
    if not arguments.skip_adaptive:
        print_redundancy(truth, arguments)
    if not arguments.skip_picker:
        print_picker(truth, arguments)
    if not arguments.skip_finder:
        for how, flipped, precision, recall in finder(arguments.data, arguments.seed):
            print(f"finder, {flipped} train labels flipped {how}: precision {precision:.2f}, "
                  f"recall {recall:.2f} at k = {flipped}")
    if arguments.top:
        for data_dir in [arguments.data, *arguments.also]:
            print_top_issues(data_dir, arguments.top, arguments.seed)
    return 0


def print_redundancy(truth: dict, arguments) -> None:
    """Print the labels a fixed count and adaptive redundancy need for TARGET_ACCURACY."""
    rows = fixed_count_needed(truth, arguments.seed, arguments.uniform_spammer)
    for per_image, labels, accuracy in rows:
        print(f"fixed {per_image} per image: {labels} labels, Dawid-Skene {accuracy:.2%}")
    fixed = next((labels for _n, labels, accuracy in rows if accuracy >= TARGET_ACCURACY), None)
    for labels_min, labels_max, target in ((2, 7, 0.95), (2, 7, 0.99), (2, 7, 0.999), (3, 7, 0.999)):
        used, accuracy = adaptive(truth, arguments.seed, arguments.uniform_spammer, labels_min,
                                  labels_max, target)
        share = f", {used / fixed:.0%} of the fixed count's" if fixed else ""
        print(f"adaptive (min {labels_min}, max {labels_max}, target {target}): {used} labels "
              f"({used / len(truth):.2f} per image{share}), Dawid-Skene {accuracy:.2%}")


def adaptive_through_picker(app, truth: dict, classes: list[str], seed: int,
                            uniform_spammer: bool, labels_min: int, labels_max: int,
                            target: float) -> dict:
    """Adaptive redundancy through the app: the seven simulated labelers ask the picker
    (labeling.picking.next_image) in turn and submit through labeling.decisions.submit_label;
    whenever nobody gets an image, the consensus job runs (review.consensus_jobs.recompute,
    which marks the images that want another label); it ends when a run leaves nothing to
    hand out. Returns labels used, Dawid-Skene accuracy, job runs and seconds."""
    import uuid

    from supervising_ui.accounts.users import create_user
    from supervising_ui.consensus import consensus_class_ids
    from supervising_ui.extensions import db
    from supervising_ui.labeling import decisions, picking, settings
    from supervising_ui.models import Image, User, utcnow
    from supervising_ui.projects.service import create_project
    from supervising_ui.review import consensus_jobs
    rng = random.Random(seed)
    started = time.perf_counter()
    with app.app_context():
        project = create_project(f"picker-{time.monotonic_ns()}", classes=classes,
                                 labels_per_image=labels_min)
        project.consensus_method, project.labels_max = "dawid-skene", labels_max
        project.target_posterior, project.gold_share = target, 0.0
        users = [db.session.get(User, create_user(f"{kind}{i}-{project.id}",
                                                  password="benchmark password 1")[0].id)
                 for i, (kind, _a, _n) in enumerate(LABELERS)]
        images = [Image(project_id=project.id, storage_key=f"k{n}", original_name=name,
                        content_hash=f"{n:064x}", width=227, height=227, meta={})
                  for n, name in enumerate(truth)]
        db.session.add_all(images)
        db.session.commit()
        name_of = {image.id: image.original_name for image in images}
        project_id, labels, runs = project.id, 0, 0
        while True:
            handed = 0
            for worker, user in enumerate(users):
                given = picking.next_image(settings.project_settings(project_id), user, utcnow())
                if given is None:
                    continue
                answer = simulated_label(*LABELERS[worker], truth[name_of[given.image_id]],
                                         classes, rng, uniform_spammer)
                decisions.submit_label(given.image_id, settings.project_settings(project_id),
                                       user, answer, uuid.uuid4().hex, 3.0, utcnow())
                handed += 1
            labels += handed
            if handed:
                continue
            runs += 1
            if not consensus_jobs.recompute(project_id)["wanting_more_labels"]:
                break
        names = {c.id: c.name for c in project.classes}
        found = consensus_class_ids(project_id)
        accuracy = sum(names.get(found.get(image_id)) == truth[name]
                       for image_id, name in name_of.items()) / len(name_of)
    return {"labels": labels, "accuracy": accuracy, "runs": runs,
            "seconds": time.perf_counter() - started}


def print_picker(truth: dict, arguments) -> None:
    """Print adaptive redundancy through the app's picker beside the fixed count it needs."""
    classes = sorted(set(truth.values()))
    if arguments.picker_images:  # a random sample of the images
        kept = random.Random(arguments.seed).sample(sorted(truth), arguments.picker_images)
        truth = {name: truth[name] for name in sorted(kept)}
    rows = fixed_count_needed(truth, arguments.seed, arguments.uniform_spammer)
    fixed = next(((n, labels) for n, labels, accuracy in rows if accuracy >= TARGET_ACCURACY),
                 None)
    for per_image, labels, accuracy in rows:
        print(f"[{len(truth)} images] fixed {per_image} per image: {labels} labels, "
              f"Dawid-Skene {accuracy:.2%}")
    for labels_min, labels_max, target in ((2, 7, 0.95), (2, 7, 0.99)):
        with tempfile.TemporaryDirectory() as instance:
            done = adaptive_through_picker(build_app(Path(instance)), truth, classes,
                                           arguments.seed,
                                           arguments.uniform_spammer, labels_min, labels_max,
                                           target)
        share = f", {done['labels'] / fixed[1]:.0%} of fixed {fixed[0]}'s" if fixed else ""
        print(f"[{len(truth)} images] picker, adaptive (min {labels_min}, max {labels_max}, "
              f"target {target}): {done['labels']} labels ({done['labels'] / len(truth):.2f} per "
              f"image{share}), Dawid-Skene {done['accuracy']:.2%}; {done['runs']} consensus "
              f"runs, {done['seconds']:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
