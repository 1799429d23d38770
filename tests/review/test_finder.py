"""The label-error finder: cleanlab over out-of-sample probabilities finds flipped labels; its
ranking is stored and joins the review queue after the model's disagreements."""
import numpy as np
import pytest

from supervising_ui.extensions import db
from supervising_ui.jobs import queue as jobs
from supervising_ui.models import Image, LabelIssue
from supervising_ui.review import finder, queue

from ..helpers import add_images, make_project, project_of
from .helpers import vote


def clusters(n_per_class=60, classes=3, seed=0):
    """Features in well-separated clusters, one per class, and their true classes."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 4, (classes, 16))
    truth = np.repeat(np.arange(classes), n_per_class)
    return centres[truth] + rng.normal(0, 1, (len(truth), 16)), truth


def test_rank_issues_puts_flipped_labels_first():
    features, truth = clusters()
    noisy = truth.copy()
    flipped = np.array([3, 70, 130, 150, 10])
    noisy[flipped] = (truth[flipped] + 1) % 3
    ranked, probabilities = finder.rank_issues(features, noisy, 3)
    assert probabilities.shape == (len(truth), 3)
    assert np.allclose(probabilities.sum(axis=1), 1)
    assert set(ranked[:len(flipped)].tolist()) == set(flipped.tolist())


def test_the_finder_job_stores_its_ranking_and_the_queue_shows_it(app, users, monkeypatch):
    with app.app_context():
        project_id = make_project()
        images = add_images(project_id, 45)
        features, truth = clusters(15)
        names = ["crater", "dark_dune", "other"]
        wrong = images[4]
        for index, image_id in enumerate(images):
            given = names[truth[index]] if image_id != wrong else names[(truth[index] + 1) % 3]
            vote(project_id, image_id, users["lee"], given)
        order = {image_id: index for index, image_id in enumerate(images)}
        monkeypatch.setattr(finder, "_features", lambda pairs, progress=None: features[
            [order[db.session.scalar(db.select(Image.id).where(Image.storage_key == key))]
             for key, _digest in pairs]])
        done = finder.find_project_issues(project_id)
        assert done["images"] == 45 and done["issues"] >= 1
        first = db.session.scalar(db.select(LabelIssue).order_by(LabelIssue.rank))
        assert first.image_id == wrong and first.rank == 1
        item = queue.next_item(project_of(project_id), queue.QueueFilter())
        assert (item["image_id"], item["reason"]) == (wrong, "finder")
        assert item["finder"]["suggested"] == names[truth[4]]
        assert item["accept_settles_to"] == names[(truth[4] + 1) % 3]


def test_the_finder_refuses_a_project_with_too_few_labels(app, users):
    with app.app_context():
        project_id = make_project()
        [image_id] = add_images(project_id, 1)
        vote(project_id, image_id, users["lee"], "crater")
        with pytest.raises(jobs.JobRefused):
            finder.find_project_issues(project_id)
        assert finder.JOB_KIND in jobs.RERUNNABLE_KINDS


def test_only_admins_start_the_finder(app, client, auth, users):
    with app.app_context():
        project_id = make_project()
    auth.login("lee")
    assert client.post(f"/projects/{project_id}/label-issues",
                       data={"csrf_token": auth.csrf_token}).status_code == 403
    auth.logout()
    auth.login("ada")
    response = client.post(f"/projects/{project_id}/label-issues",
                           data={"csrf_token": auth.csrf_token})
    assert response.status_code == 302
    with app.app_context():
        assert db.session.query(jobs.Job).filter_by(kind=finder.JOB_KIND).count() == 1
