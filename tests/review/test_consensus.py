"""The consensus method: majority or Dawid-Skene, stored by the consensus job, reviews as truth."""
import random

from sqlalchemy import func, select

from supervising_ui.consensus import consensus_class_ids, consensus_details, consensus_labels
from supervising_ui.extensions import db
from supervising_ui.models import ConsensusRun, ImageConsensus, Job, Review
from supervising_ui.projects import export
from supervising_ui.review import aggregate, consensus_jobs

from ..helpers import add_images, make_project, project_of
from .helpers import vote


def simulated_votes(images=400, seed=0):
    """Votes of 3 careful labelers (95%), 2 poor ones (60%) and a spammer, 3 per image."""
    rng = random.Random(seed)
    classes = ["a", "b", "c", "d"]
    truth = {image: rng.choice(classes) for image in range(images)}
    accuracy = {0: 0.95, 1: 0.95, 2: 0.95, 3: 0.6, 4: 0.6, 5: None}
    votes = []
    for image, true_class in truth.items():
        for worker in rng.sample(sorted(accuracy), 3):
            if accuracy[worker] is None:
                given = "a"
            elif rng.random() < accuracy[worker]:
                given = true_class
            else:
                given = rng.choice([c for c in classes if c != true_class])
            votes.append((image, worker, given))
    return truth, votes


def test_dawid_skene_beats_majority_and_finds_the_spammer():
    truth, votes = simulated_votes()
    by_method = {method: aggregate.aggregate(method, votes) for method in ("majority", "dawid-skene")}
    accuracy = {method: sum(result.classes[i] == truth[i] for i in truth) / len(truth)
                for method, result in by_method.items()}
    assert accuracy["dawid-skene"] > accuracy["majority"]
    ds = by_method["dawid-skene"]
    assert all(0 < p <= 1 for p in ds.posteriors.values())
    # The spammer says "a" whatever the truth: its estimated row for true "b" puts ~all on "a".
    assert ds.confusions[5]["b"]["a"] > 0.9
    assert ds.confusions[0]["b"].get("b", 0) > 0.8


def test_a_settled_image_is_known_truth():
    votes = [(1, 10, "a"), (1, 11, "a"), (1, 12, "b"), (2, 10, "b")]
    for method in ("majority", "dawid-skene"):
        result = aggregate.aggregate(method, votes, {1: "b", 3: "c"})
        assert result.classes[1] == "b" and result.posteriors[1] == 1.0
        assert result.classes[3] == "c" and result.counts[3] == 0


def test_majority_project_keeps_todays_rule_with_vote_share(app, users):
    with app.app_context():
        project_id = make_project()
        tied, won = add_images(project_id, 2)
        vote(project_id, tied, users["lee"], "crater")
        vote(project_id, tied, users["liu"], "other")
        for user, name in ((users["lee"], "crater"), (users["liu"], "crater"), (users["ada"], "other")):
            vote(project_id, won, user, name)
        assert set(consensus_labels(project_id)) == {won}
        method, details = consensus_details(project_id)
        assert method == "majority"
        assert details[tied][0] is None
        assert abs(details[won][1] - 2 / 3) < 1e-9 and details[won][2] == 3


def test_dawid_skene_project_reads_the_stored_job_result_and_exports_it(app, users):
    with app.app_context():
        project_id = make_project(consensus_method="dawid-skene")
        images = add_images(project_id, 3)
        for image in images:
            vote(project_id, image, users["lee"], "crater")
            vote(project_id, image, users["liu"], "crater" if image != images[2] else "other")
        assert db.session.scalar(select(func.count(ImageConsensus.id))) == 0
        done = consensus_jobs.recompute(project_id)
        assert done == {"method": "dawid-skene", "images": 3, "labels": 6, "wanting_more_labels": 0}
        stored = {row.image_id: row for row in db.session.scalars(select(ImageConsensus))}
        assert all(row.method == "dawid-skene" and row.n_labels == 2 for row in stored.values())
        assert consensus_class_ids(project_id) == {
            image: row.label_class_id for image, row in stored.items()}
        run = db.session.scalar(select(ConsensusRun))
        assert set(run.confusions) == {str(users["lee"]), str(users["liu"])}
        frame = export.consensus_frame(project_of(project_id))
        assert {"class", "posterior", "n_labels", "method"} <= set(frame.columns)
        assert set(frame["method"]) == {"dawid-skene"}
        row = frame.set_index("image_id").loc[images[0]]
        assert row["class"] == "crater" and row["n_labels"] == 2
        assert abs(row["posterior"] - round(stored[images[0]].posterior, 4)) < 1e-9
        # A label after the run: that image falls back to the majority until the next run.
        vote(project_id, images[2], users["ada"], "other")
        assert consensus_details(project_id)[1][images[2]] == (
            project_of(project_id).classes[2].id, 2 / 3, 3)
        assert consensus_jobs.is_stale(project_id)


def test_a_reviewers_class_settles_the_image(app, users):
    with app.app_context():
        project_id = make_project()
        image = add_images(project_id, 1)[0]
        vote(project_id, image, users["lee"], "crater")
        vote(project_id, image, users["liu"], "crater")
        other = project_of(project_id).classes[2]
        db.session.add(Review(project_id=project_id, image_id=image, reviewer_id=users["ada"],
                              decision="fix", label_class_id=other.id))
        db.session.commit()
        assert consensus_labels(project_id) == {image: "other"}
        assert consensus_details(project_id)[1][image] == (other.id, 1.0, 2)
        assert consensus_details(project_id, [image]) == consensus_details(project_id)
        assert consensus_details(project_id, [image + 1]) == ("majority", {})


def test_labels_queue_the_consensus_job_debounced(app, client, auth, monkeypatch):
    with app.app_context():
        project_id = make_project(consensus_method="dawid-skene", labels_per_image=2)
        add_images(project_id, 3)
    monkeypatch.setattr(consensus_jobs, "_last_queued", {})
    auth.login("lee")
    headers = {"X-CSRFToken": auth.csrf_token}
    for number in range(2):
        given = client.get(f"/api/projects/{project_id}/next").get_json()
        stored = client.post(f"/api/images/{given['image_id']}/labels", headers=headers,
                             json={"label": "crater", "request_id": f"r{number}"})
        assert stored.status_code == 201
    with app.app_context():
        jobs = db.session.scalars(select(Job).where(Job.kind == "consensus")).all()
        # The first label queued it (the memory queue runs it at once); the second came
        # inside the debounce window.
        assert [job.state for job in jobs] == ["done"]
        assert jobs[0].result["labels"] == 1
        assert consensus_jobs.is_stale(project_id)
        assert consensus_jobs.queue_stale_consensus() == [project_id]
        assert not consensus_jobs.is_stale(project_id)


def test_a_majority_project_queues_no_consensus_job(app, client, auth, monkeypatch):
    with app.app_context():
        project_id = make_project()
        add_images(project_id, 1)
    monkeypatch.setattr(consensus_jobs, "_last_queued", {})
    auth.login("lee")
    given = client.get(f"/api/projects/{project_id}/next").get_json()
    assert client.post(f"/api/images/{given['image_id']}/labels", json={
        "label": "crater", "request_id": "x"}, headers={"X-CSRFToken": auth.csrf_token}).status_code == 201
    with app.app_context():
        assert db.session.scalar(select(func.count(Job.id)).where(Job.kind == "consensus")) == 0
        assert consensus_jobs.queue_stale_consensus() == []
