"""The review queue: its order and filters, accept/fix/reject, who may use it (API)."""
from sqlalchemy import select

from supervising_ui.consensus import consensus_labels
from supervising_ui.extensions import db
from supervising_ui.models import Image, Label, Review, Skip
from supervising_ui.review import queue

from ..helpers import add_images, add_serving_model, make_project, project_of
from .helpers import make_reviewer, vote


def setup_queue(users):
    """Images: 0 disagrees, 1 agreed but the model says otherwise at 0.95, 2 agreed (lee's
    label only), 3 agreed (liu's only) and 4 unlabeled; return the project id and image ids."""
    project_id = make_project()
    images = add_images(project_id, 5)
    vote(project_id, images[0], users["lee"], "crater")
    vote(project_id, images[0], users["liu"], "other")
    vote(project_id, images[1], users["lee"], "crater")
    vote(project_id, images[1], users["liu"], "crater")
    vote(project_id, images[2], users["lee"], "dark_dune")
    vote(project_id, images[3], users["liu"], "other")
    add_serving_model(project_id, {images[1]: [0.02, 0.95, 0.03], images[2]: [0.1, 0.8, 0.1]})
    return project_id, images


def test_queue_order_disagreement_then_model_then_spot_checks(app, users):
    with app.app_context():
        project_id, images = setup_queue(users)
        project = project_of(project_id)
        everything = queue.QueueFilter()
        first = queue.next_item(project, everything)
        assert (first["image_id"], first["reason"]) == (images[0], "disagreement")
        assert {label["labeler"] for label in first["labels"]} == {"lee", "liu"}
        second = queue.next_item(project, queue.QueueFilter(exclude=(images[0],)))
        assert (second["image_id"], second["reason"]) == (images[1], "model")
        assert second["prediction"] == {"label": "dark_dune", "confidence": 0.95}
        assert second["consensus"]["label"] == "crater"
        third = queue.next_item(project, queue.QueueFilter(exclude=(images[0], images[1])))
        assert third["reason"] == "spot_check" and third["image_id"] in images[1:4]
        # Filters: liu's images only; the class dark_dune only.
        liu = queue.parse_filter(project, "liu", None, f"{images[0]},{images[1]}")
        assert queue.next_item(project, liu)["image_id"] == images[3]
        dune = queue.parse_filter(project, None, "dark_dune", None)
        assert queue.next_item(project, dune)["image_id"] == images[2]


def test_unknown_filters_are_refused(app, users):
    with app.app_context():
        project = project_of(make_project())
        for labeler, class_name in (("nobody", None), (None, "volcano")):
            try:
                queue.parse_filter(project, labeler, class_name, None)
            except queue.ReviewError as error:
                assert error.status == 400
            else:
                raise AssertionError("an unknown filter was accepted")


def post_review(client, auth, image_id, **body):
    """POST a review with the session's CSRF token."""
    return client.post(f"/api/images/{image_id}/review", json=body,
                       headers={"X-CSRFToken": auth.csrf_token})


def test_accept_fix_and_reject_through_the_api(app, client, auth, users):
    with app.app_context():
        project_id, images = setup_queue(users)
        make_reviewer()
        lee_label = db.session.scalar(select(Label.id).where(
            Label.image_id == images[0], Label.user_id == users["lee"]))
    auth.login("rae")
    item = client.get(f"/api/projects/{project_id}/review/next").get_json()["item"]
    assert item["image_id"] == images[0]
    accepted = post_review(client, auth, images[0], decision="accept", label_id=lee_label)
    assert accepted.status_code == 201 and accepted.get_json()["label"] == "crater"
    fixed = post_review(client, auth, images[1], decision="fix", label="dark_dune")
    assert fixed.status_code == 201
    rejected = post_review(client, auth, images[2], decision="reject", reason="a smudge, not a dune")
    assert rejected.status_code == 201 and rejected.get_json()["labeler_label"] == "dark_dune"
    with app.app_context():
        labels = consensus_labels(project_id)
        assert labels[images[0]] == "crater" and labels[images[1]] == "dark_dune"
        assert images[2] not in labels  # the label stopped counting
        assert db.session.get(Image, images[2]).label_count == 0  # back in the pool
        assert db.session.scalar(select(Skip.user_id).where(Skip.image_id == images[2])) == users["lee"]
        reviews = db.session.scalars(select(Review).order_by(Review.id)).all()
        assert [r.decision for r in reviews] == ["accept", "fix", "reject"]
        assert reviews[2].reason == "a smudge, not a dune" and reviews[2].labeler_id == users["lee"]
        assert all(r.reviewer_id == reviews[0].reviewer_id and r.created_at for r in reviews)
    # Settled images left the first two steps: what remains is a spot check.
    after = client.get(f"/api/projects/{project_id}/review/next").get_json()["item"]
    assert after["reason"] == "spot_check" and after["image_id"] == images[3]


def test_bad_reviews_get_json_errors(app, client, auth, users):
    with app.app_context():
        project_id, images = setup_queue(users)
    auth.login("ada")
    cases = [({"decision": "maybe"}, 400), ({"decision": "fix", "label": "volcano"}, 400),
             ({"decision": "reject", "reason": "no"}, 400),  # two labels: which one?
             ({"decision": "reject", "label_id": 99999, "reason": "x"}, 404),
             ({"decision": "reject", "label_id": "1", "reason": "x"}, 400)]
    for body, status in cases:
        response = post_review(client, auth, images[0], **body)
        assert response.status_code == status and "error" in response.get_json(), body
    no_reason = post_review(client, auth, images[2], decision="reject")
    assert no_reason.status_code == 400 and "reason" in no_reason.get_json()["error"]
    assert post_review(client, auth, 99999, decision="accept").status_code == 404
    assert client.post(f"/api/images/{images[0]}/review", data="x",
                       headers={"X-CSRFToken": auth.csrf_token}).status_code == 400
    assert client.get(f"/api/projects/{project_id}/review/next?labeler=nobody").status_code == 400
    assert client.get("/api/projects/99999/review/next").status_code == 404


def test_labelers_cannot_use_the_queue(app, client, auth, users):
    with app.app_context():
        project_id, images = setup_queue(users)
    auth.login("lee")
    assert client.get(f"/projects/{project_id}/review").status_code == 403
    denied = client.get(f"/api/projects/{project_id}/review/next")
    assert denied.status_code == 403 and "error" in denied.get_json()
    assert post_review(client, auth, images[0], decision="accept").status_code == 403
    with app.app_context():
        assert db.session.scalar(select(Review.id)) is None


def test_the_review_page_for_a_reviewer(app, client, auth, users):
    with app.app_context():
        project_id, _images = setup_queue(users)
        make_reviewer()
    auth.login("rae")
    page = client.get(f"/projects/{project_id}/review")
    assert page.status_code == 200 and b"review.js" in page.data
    assert client.get("/projects/99999/review").status_code == 404


def test_home_links_the_queue_for_reviewers_only(app, client, auth, users):
    with app.app_context():
        project_id = make_project()
        make_reviewer()
    queue_link = f'href="/projects/{project_id}/review"'.encode()
    auth.login("rae")
    home = client.get("/").data
    assert queue_link in home and f"/projects/{project_id}/agreement".encode() in home
    auth.logout()
    auth.login("lee")
    home = client.get("/").data
    assert queue_link not in home and f"/projects/{project_id}/agreement".encode() in home


def test_a_disagreement_puts_the_dissenting_label_under_review(app, users):
    with app.app_context():
        project_id = make_project()
        image = add_images(project_id, 1)[0]
        dissent = vote(project_id, image, users["lee"], "other")
        vote(project_id, image, users["liu"], "crater")
        vote(project_id, image, users["ada"], "crater")
        item = queue.next_item(project_of(project_id), queue.QueueFilter())
        assert item["focus_label_id"] == dissent and item["accept_settles_to"] == "other"
        assert item["consensus"]["label"] == "crater" and item["consensus"]["n_labels"] == 3
