"""A reviewer's fix of a landmark settles its crop (an image of the project) to the fixed
class, through the review domain's hook; a repeat writes no second review."""
from sqlalchemy import select

from supervising_ui.consensus import consensus_details
from supervising_ui.extensions import db
from supervising_ui.models import LabelClass, Landmark, Observation, Review

from ..helpers import add_images
from ..review.helpers import make_reviewer, vote
from .helpers import make_observation


def test_a_fix_settles_the_crop(app, client, auth, users):
    with app.app_context():
        observation_id, _ = make_observation()
        project_id = db.session.get(Observation, observation_id).project_id
        crop = add_images(project_id, 1)[0]
        for name in ("lee", "liu"):
            vote(project_id, crop, users[name], "crater")
        crater = db.session.scalar(select(LabelClass.id).where(LabelClass.name == "crater"))
        landmark = Landmark(observation_id=observation_id, x_min=10, y_min=10, x_max=30,
                            y_max=30, label_class_id=crater, votes=2, annotators="2,3",
                            image_id=crop)
        db.session.add(landmark)
        db.session.commit()
        landmark_id = landmark.id
        make_reviewer("rae")
    auth.login("rae")
    answer = client.post(f"/api/landmarks/{landmark_id}/review",
                         json={"decision": "fix", "label": "other"},
                         headers={"X-CSRFToken": auth.csrf_token})
    assert answer.status_code == 200
    client.post(f"/api/landmarks/{landmark_id}/review", json={"decision": "accept"},
                headers={"X-CSRFToken": auth.csrf_token})
    with app.app_context():
        reviews = db.session.execute(select(Review.decision, LabelClass.name).join(
            LabelClass, LabelClass.id == Review.label_class_id)).all()
        assert reviews == [("fix", "other")]  # the accept kept the class: nothing new
        _method, details = consensus_details(project_id, [crop])
        other = db.session.scalar(select(LabelClass.id).where(LabelClass.name == "other"))
        assert details[crop][0] == other  # the reviewer's class beats the two labels
