"""The merge job's bookkeeping: one queued merge per observation, proposals as a voter that
never settles a landmark alone, reviewed landmarks kept when their boxes go."""
from sqlalchemy import func, select

from supervising_ui.boxes import merging, proposals
from supervising_ui.extensions import db
from supervising_ui.landmarks.geometry import Box as GeometryBox
from supervising_ui.landmarks.merge import PROPOSAL_ANNOTATOR
from supervising_ui.models import Box, Job, Landmark, Observation

from .helpers import make_observation


def _box(observation_id, user_id, x, label_class_id=None, source="drawn"):
    return Box(observation_id=observation_id, user_id=user_id, x_min=x, y_min=10, x_max=x + 20,
               y_max=30, label_class_id=label_class_id, source=source)


def test_a_queued_merge_is_enough(app, held_queue):
    with app.app_context():
        observation_id, _ = make_observation()
        project_id = db.session.get(Observation, observation_id).project_id
        for _ in range(3):
            merging.request_merge(project_id, observation_id)
        assert db.session.scalar(select(func.count(Job.id)).where(
            Job.kind == merging.JOB_KIND)) == 1
        assert len(held_queue) == 1


def test_proposals_vote_but_never_settle_alone(app, users):
    with app.app_context():
        observation_id, _ = make_observation()
        observation = db.session.get(Observation, observation_id)
        found = [GeometryBox(10, 10, 30, 30, label="crater", annotator=PROPOSAL_ANNOTATOR),
                 GeometryBox(100, 10, 120, 30, label="crater", annotator=PROPOSAL_ANNOTATOR)]
        assert proposals.store_proposals(observation, found) == 2
        assert set(db.session.scalars(select(Box.source))) == {"proposal"}
        db.session.add_all([_box(observation_id, users["lee"], 11),
                            _box(observation_id, users["liu"], 12)])
        db.session.commit()
        merging.merge_observation(observation_id)
        stored = db.session.scalars(select(Landmark)).all()
        # Two people and the machine on the first; the machine alone on the second: nothing.
        assert [(mark.votes, mark.annotators.split(",")[-1]) for mark in stored] == [
            (3, PROPOSAL_ANNOTATOR)]
        assert merging.human_votes(stored[0]) == 2
        # Running the proposals again replaces them.
        assert proposals.store_proposals(observation, found[:1]) == 1
        assert db.session.scalar(select(func.count(Box.id)).where(Box.source == "proposal")) == 1


def test_a_rerun_keeps_ids_and_reviewed_landmarks(app, users):
    with app.app_context():
        observation_id, _ = make_observation()
        db.session.add_all([_box(observation_id, users["lee"], 10),
                            _box(observation_id, users["liu"], 11),
                            _box(observation_id, users["lee"], 200),
                            _box(observation_id, users["liu"], 201)])
        db.session.commit()
        merging.merge_observation(observation_id)
        first = {mark.x_min: mark.id for mark in db.session.scalars(select(Landmark))}
        assert sorted(first) == [10.5, 200.5]
        accepted = db.session.get(Landmark, first[200.5])
        accepted.status = "accepted"
        db.session.execute(Box.__table__.delete().where(Box.x_min >= 200))
        db.session.commit()
        result = merging.merge_observation(observation_id)
        again = {mark.x_min: (mark.id, mark.status) for mark in db.session.scalars(select(Landmark))}
        assert again == {10.5: (first[10.5], "pending"), 200.5: (first[200.5], "accepted")}
        assert (result["updated"], result["added"], result["removed"]) == (1, 0, 0)


def _fake_propose(gray):
    """Two proposals in the picture's own pixels: one near its corner, one at (100, 20)."""
    assert gray.ndim == 2 and gray.dtype.name == "uint8"
    return [GeometryBox(0, 0, 10, 10, annotator=PROPOSAL_ANNOTATOR, score=0.5),
            GeometryBox(100, 20, 110, 30, annotator=PROPOSAL_ANNOTATOR, score=0.9)]


def test_proposals_are_made_tile_by_tile(app, client, auth, monkeypatch):
    """The job's wiring (with a stand-in for landmarks.proposals.propose): each tile sees its
    margin, keeps the boxes centred in it, and the admin's API call stores them."""
    import sys
    import types
    fake = types.ModuleType("supervising_ui.landmarks.proposals")
    fake.propose = _fake_propose
    monkeypatch.setitem(sys.modules, "supervising_ui.landmarks.proposals", fake)
    with app.app_context():
        observation_id, tiles = make_observation()  # 300 x 200, tiles of 150
    auth.login("ada")
    answer = client.post(f"/api/observations/{observation_id}/proposals",
                         headers={"X-CSRFToken": auth.csrf_token})
    assert answer.status_code == 202
    with app.app_context():
        stored = sorted((box.x_min, box.y_min) for box in db.session.scalars(
            select(Box).where(Box.source == "proposal")))
        job = db.session.get(Job, answer.get_json()["job_id"])
        assert job.state == "done", job.error
    # Tile (0, 0) sees from (0, 0): both boxes are centred in it. Tile (150, 0) sees from
    # x 86: (86, 0) is centred in tile (0, 0), so only (186, 20) is its own. The lower tiles
    # see from y 86: their boxes are centred above y 150, in no tile of theirs: dropped.
    assert stored == [(0.0, 0.0), (100.0, 20.0), (186.0, 20.0)]


def test_the_minutely_check_merges_again_after_the_minimum_changes(app, users):
    with app.app_context():
        observation_id, _ = make_observation()
        project_id = db.session.get(Observation, observation_id).project_id
        assert merging.queue_stale_merges() == []  # no boxes, no merge
        db.session.add_all([_box(observation_id, users["lee"], 10),
                            _box(observation_id, users["liu"], 11),
                            _box(observation_id, users["lee"], 200)])
        db.session.commit()
        assert merging.queue_stale_merges() == [observation_id]  # boxes no merge has seen
        assert merging.queue_stale_merges() == []  # that merge saw them
        assert db.session.scalar(select(func.count(Landmark.id))) == 1
        project = db.session.get(Observation, observation_id).project
        project.landmark_min_votes = 1
        db.session.commit()
        assert merging.queue_stale_merges() == [observation_id]
        assert db.session.scalar(select(func.count(Landmark.id))) == 2
        assert project_id == project.id


def test_the_default_minimum_is_never_above_the_labelers_per_tile(app):
    with app.app_context():
        observation_id, _ = make_observation()
        project = db.session.get(Observation, observation_id).project
        project.labelers_per_tile = 1
        assert merging.min_votes_of(project) == 1
        project.labelers_per_tile = 50
        assert merging.min_votes_of(project) == merging.DEFAULT_MIN_VOTES
        project.landmark_min_votes = 4
        assert merging.min_votes_of(project) == 4
        db.session.rollback()
