"""Agreement figures: leave-one-out agreement and kappa, alpha, pairwise kappa; who sees what."""
import csv
import io
import random
from collections import Counter

import krippendorff
import numpy as np
from sklearn.metrics import cohen_kappa_score

from supervising_ui.consensus import majority
from supervising_ui.review import agreement, consensus_jobs

from ..helpers import add_images, make_project, project_of
from .helpers import make_reviewer, vote

CLASSES = ("crater", "dark_dune", "other")


def labeled_project(users, images=30, seed=1):
    """lee and kim always right, liu right 2 in 3 times, ada always 'other'; all label every image."""
    rng = random.Random(seed)
    project_id = make_project()
    kim = make_reviewer("kim", role="labeler")
    truth = {}
    for number, image in enumerate(add_images(project_id, images)):
        truth[image] = CLASSES[number % 3]
        vote(project_id, image, users["lee"], truth[image], seconds=2.0 + number % 3)
        vote(project_id, image, kim, truth[image])
        vote(project_id, image, users["liu"], truth[image] if rng.random() < 2 / 3
             else rng.choice(CLASSES), seconds=1.0)
        vote(project_id, image, users["ada"], "other")
    return project_id, truth


def test_leave_one_out_agreement_kappa_and_time(app, users):
    with app.app_context():
        project_id, truth = labeled_project(users)
        report = agreement.agreement_report(project_of(project_id))
        rows = {row["labeler"]: row for row in report["labelers"]}
        assert rows["lee"]["labels"] == 30 and rows["lee"]["timed"] == 30
        assert rows["lee"]["median_seconds"] == 3.0
        # lee's reference on each image is the majority of liu's and ada's labels (ties left out).
        reference = {}
        for row_image in truth:
            winner = majority(Counter(agreement_labels(project_id, row_image, skip=users["lee"])))
            if winner is not None:
                reference[row_image] = winner
        assert rows["lee"]["compared"] == len(reference)
        given = [truth[image] for image in reference]
        expected = [reference[image] for image in reference]
        assert rows["lee"]["agreement"] == round(
            sum(a == b for a, b in zip(given, expected, strict=True)) / len(reference), 4)
        assert abs(rows["lee"]["kappa"] - cohen_kappa_score(given, expected)) < 1e-3
        # The spammer (ada: always "other") agrees least by kappa.
        assert rows["ada"]["kappa"] < min(rows["lee"]["kappa"], rows["liu"]["kappa"])


def agreement_labels(project_id, image_id, skip):
    """The class names of an image's labels from everyone but skip."""
    from sqlalchemy import select

    from supervising_ui.extensions import db
    from supervising_ui.models import Label, LabelClass
    return db.session.scalars(select(LabelClass.name).join(Label, Label.label_class_id == LabelClass.id)
                              .where(Label.image_id == image_id, Label.user_id != skip)).all()


def test_alpha_and_pairwise_kappa_carry_their_sample_sizes(app, users):
    with app.app_context():
        project_id, _truth = labeled_project(users, images=25)
        project = project_of(project_id)
        report = agreement.agreement_report(project)
        assert report["images_with_two_or_more"] == 25
        order = [users["ada"], users["lee"], users["liu"], user_named("kim")]
        data = np.array([[[c.name for c in project.classes].index(name) for name in
                          agreement_labels_of(project_id, user)] for user in order], dtype=float)
        expected = krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
        assert abs(report["alpha"] - expected) < 1e-3
        assert set(report["alpha_by_class"]) == set(CLASSES)
        pairs = {(pair["first"], pair["second"]): pair for pair in report["pairwise_kappa"]}
        assert len(pairs) == 6 and all(pair["shared"] == 25 for pair in pairs.values())


def agreement_labels_of(project_id, user_id):
    """A user's class names on the project's images, by image id."""
    from sqlalchemy import select

    from supervising_ui.extensions import db
    from supervising_ui.models import Label, LabelClass
    return db.session.scalars(select(LabelClass.name).join(Label, Label.label_class_id == LabelClass.id)
                              .where(Label.project_id == project_id, Label.user_id == user_id)
                              .order_by(Label.image_id)).all()


def test_pairs_under_twenty_shared_images_are_left_out(app, users):
    with app.app_context():
        project_id, _truth = labeled_project(users, images=19)
        assert agreement.agreement_report(project_of(project_id))["pairwise_kappa"] == []


def test_dawid_skene_confusions_reach_the_report(app, users):
    with app.app_context():
        project_id, _truth = labeled_project(users)
        project = project_of(project_id)
        project.consensus_method = "dawid-skene"
        consensus_jobs.recompute(project_id)
        rows = {row["labeler"]: row for row in agreement.agreement_report(project)["labelers"]}
        assert rows["ada"]["confusion"]["crater"]["other"] > 0.9
        assert rows["lee"]["confusion"]["crater"]["crater"] > 0.9


def test_api_page_and_csv_for_admins_and_reviewers(app, client, auth, users):
    with app.app_context():
        project_id, _truth = labeled_project(users)
        make_reviewer("rae")
    for name in ("ada", "rae"):
        auth.login(name)
        report = client.get(f"/api/projects/{project_id}/agreement").get_json()
        assert {row["labeler"] for row in report["labelers"]} == {"ada", "kim", "lee", "liu"}
        assert len(report["pairwise_kappa"]) == 6
        one = client.get(f"/api/projects/{project_id}/agreement?labeler=liu").get_json()
        assert [row["labeler"] for row in one["labelers"]] == ["liu"]
        page = client.get(f"/projects/{project_id}/agreement")
        assert page.status_code == 200 and b"Krippendorff" in page.data
        download = client.get(f"/projects/{project_id}/agreement.csv")
        assert download.headers["Content-Disposition"].startswith("attachment")
        rows = list(csv.DictReader(io.StringIO(download.get_data(as_text=True))))
        assert {row["labeler"] for row in rows} == {"ada", "kim", "lee", "liu"}
        auth.logout()


def test_labelers_see_only_their_own_figures(app, client, auth, users):
    with app.app_context():
        project_id, _truth = labeled_project(users)
    auth.login("lee")
    report = client.get(f"/api/projects/{project_id}/agreement").get_json()
    assert [row["labeler"] for row in report["labelers"]] == ["lee"]
    assert report["pairwise_kappa"] == []
    page = client.get(f"/projects/{project_id}/agreement").get_data(as_text=True)
    assert "Your figures" in page and "liu" not in page
    rows = list(csv.DictReader(io.StringIO(
        client.get(f"/projects/{project_id}/agreement.csv").get_data(as_text=True))))
    assert [row["labeler"] for row in rows] == ["lee"]
    assert client.get("/api/projects/999/agreement").status_code == 404
    # Another labeler's figures are a 404, like a missing labeler's; one's own are there.
    for name in ("liu", "ada", "nobody"):
        other = client.get(f"/api/projects/{project_id}/agreement?labeler={name}")
        assert other.status_code == 404 and "error" in other.get_json()
        assert client.get(f"/projects/{project_id}/agreement.csv?labeler={name}").status_code == 404
    own = client.get(f"/api/projects/{project_id}/agreement?labeler=lee").get_json()
    assert [row["labeler"] for row in own["labelers"]] == ["lee"]
    form = client.post(f"/projects/{project_id}/consensus-method",
                       data={"method": "dawid-skene", "csrf_token": auth.csrf_token})
    assert form.status_code == 403


def test_admin_sets_the_consensus_method(app, client, auth, users):
    with app.app_context():
        project_id, _truth = labeled_project(users)
    auth.login("ada")
    url = f"/projects/{project_id}/consensus-method"
    assert client.post(url, data={"method": "dawid-skene", "csrf_token": auth.csrf_token}).status_code == 302
    with app.app_context():
        assert project_of(project_id).consensus_method == "dawid-skene"
        assert not consensus_jobs.is_stale(project_id)  # the job ran (memory queue)
    client.post(url, data={"method": "vote", "csrf_token": auth.csrf_token})
    with app.app_context():
        assert project_of(project_id).consensus_method == "dawid-skene"


def user_named(name):
    """The id of the user called name."""
    from sqlalchemy import select

    from supervising_ui.extensions import db
    from supervising_ui.models import User
    return db.session.scalar(select(User.id).where(User.username == name))
