"""Where the project's consensus goes: retraining leaves out low posteriors, the search's
class follows the method and known answers, and the consensus job may run twice."""
from sqlalchemy import select

from supervising_ui.consensus import consensus_details, consensus_labels, training_labels
from supervising_ui.extensions import db
from supervising_ui.jobs import queue as jobs
from supervising_ui.learning import dataset
from supervising_ui.models import ImageConsensus, Project, SearchImage
from supervising_ui.projects import export
from supervising_ui.review import consensus_jobs, gold

from ..helpers import add_images, make_project, project_of
from .helpers import vote


def test_a_retrain_leaves_out_images_whose_posterior_is_low(app, users):
    with app.app_context():
        project_id = make_project(consensus_method="dawid-skene", retrain_min_posterior=0.7)
        images = add_images(project_id, 4)
        for image in images[:3]:
            vote(project_id, image, users["lee"], "crater")
            vote(project_id, image, users["liu"], "crater")
        vote(project_id, images[3], users["lee"], "crater")
        vote(project_id, images[3], users["liu"], "other")
        consensus_jobs.recompute(project_id)
        posteriors = {image: posterior for image, (_c, posterior, _n)
                      in consensus_details(project_id)[1].items()}
        low = {image for image, posterior in posteriors.items() if posterior < 0.7}
        assert low, posteriors
        assert set(training_labels(project_id)) == set(consensus_labels(project_id)) - low
        project = project_of(project_id)
        assert {row.image_id for row in dataset.labeled_images(project)}.isdisjoint(low)
        manifest = export.manifest_frame(project)
        assert set(manifest["image_id"]).isdisjoint(low)
        project.retrain_min_posterior = 0.0
        db.session.commit()
        assert set(training_labels(project_id)) == set(consensus_labels(project_id))
        project.consensus_method = "majority"  # a vote share is no probability: nothing left out
        project.retrain_min_posterior = 0.99
        db.session.commit()
        assert set(training_labels(project_id)) == set(consensus_labels(project_id))


def test_the_search_class_follows_the_consensus_job(app, users):
    with app.app_context():
        project_id = make_project(consensus_method="dawid-skene")
        tied, agreed = add_images(project_id, 2)
        vote(project_id, tied, users["lee"], "crater")
        vote(project_id, tied, users["liu"], "other")
        vote(project_id, agreed, users["lee"], "crater")
        row = db.session.get(SearchImage, tied)
        assert row.label_class_id is None, "a tie: no majority class"
        project = project_of(project_id)
        gold.set_gold(project, tied, "other")
        consensus_jobs.recompute(project_id)
        db.session.expire_all()
        other = project.classes[2].id
        assert db.session.get(SearchImage, tied).label_class_id == other
        stored = db.session.scalar(select(ImageConsensus.label_class_id).where(
            ImageConsensus.image_id == agreed))
        assert db.session.get(SearchImage, agreed).label_class_id == stored


def test_the_consensus_job_may_run_twice_with_the_same_result(app, users):
    with app.app_context():
        assert consensus_jobs.JOB_KIND in jobs.RERUNNABLE_KINDS
        project_id = make_project(consensus_method="dawid-skene", labels_per_image=1,
                                  labels_max=3, target_posterior=0.9)
        images = add_images(project_id, 3)
        vote(project_id, images[0], users["lee"], "crater")
        vote(project_id, images[0], users["liu"], "other")
        vote(project_id, images[1], users["lee"], "crater")

        def stored():
            return sorted(db.session.execute(select(
                ImageConsensus.image_id, ImageConsensus.label_class_id,
                ImageConsensus.posterior)).all())
        first = consensus_jobs.recompute(project_id), stored()
        second = consensus_jobs.recompute(project_id), stored()
        assert first == second
        assert db.session.get(Project, project_id).labels_max == 3
