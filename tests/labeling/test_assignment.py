"""Assignment: leases, Later, labels per image, idempotent submit, concurrency, serving orders."""
import random
import threading
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from supervising_ui.accounts.users import create_user
from supervising_ui.extensions import db
from supervising_ui.labeling import decisions
from supervising_ui.labeling.decisions import put_off, submit_label
from supervising_ui.labeling.picking import next_image
from supervising_ui.labeling.settings import LabelingError
from supervising_ui.models import Image, Label, Skip, User, utcnow

from ..conftest import cheap_password_hashes
from ..helpers import add_images, add_serving_model, make_project, project_of


def user(user_id):
    return db.session.get(User, user_id)


def label(image_id, project_id, user_id, class_name="crater", request_id=None, now=None):
    """Submit a label through the labeling service (decisions.submit_label)."""
    return submit_label(image_id, project_of(project_id), user(user_id),
                        class_name, request_id or f"r-{image_id}-{user_id}", 3.0, now or utcnow())


def test_next_hands_an_open_image_and_the_same_one_again_on_reask(app, users):
    with app.app_context():
        project_id = make_project()
        ids = add_images(project_id, 20)
        now = utcnow()
        first = next_image(project_of(project_id), user(users["lee"]), now)
        assert first.image_id in ids and first.pick == "random"
        assert first.lease_expires_at == now + timedelta(seconds=app.config["LEASE_SECONDS"])
        again = next_image(project_of(project_id), user(users["lee"]), now + timedelta(seconds=5))
        assert again.image_id == first.image_id and again.pick == "held"
        other = next_image(project_of(project_id), user(users["liu"]), now)
        assert other.image_id != first.image_id
        prefetched = next_image(project_of(project_id), user(users["lee"]), now,
                                after_image_id=first.image_id)
        assert prefetched.image_id not in (first.image_id, other.image_id)


def test_lease_expiry_frees_the_image(app, users):
    with app.app_context():
        project_id = make_project()
        [image_id] = add_images(project_id, 1)
        now = utcnow()
        assert next_image(project_of(project_id), user(users["lee"]), now).image_id == image_id
        assert next_image(project_of(project_id), user(users["liu"]), now) is None
        later = now + timedelta(seconds=app.config["LEASE_SECONDS"] + 1)
        taken = next_image(project_of(project_id), user(users["liu"]), later)
        assert taken.image_id == image_id
        # lee's lease expired and liu holds the image now: lee's late label is refused (409),
        # so liu's work is not thrown away...
        with pytest.raises(LabelingError, match="held by another labeler") as late:
            label(image_id, project_id, users["lee"], now=later)
        assert late.value.status == 409
        assert label(image_id, project_id, users["liu"], now=later).created
        # ...and the label that completes the image ends liu's lease.
        assert db.session.get(Image, image_id).leased_to_id is None


def test_a_label_for_an_image_someone_else_holds_is_refused(app, users):
    with app.app_context():
        project_id = make_project(labels_per_image=2)
        [image_id] = add_images(project_id, 1)
        now = utcnow()
        assert next_image(project_of(project_id), user(users["lee"]), now).image_id == image_id
        with pytest.raises(LabelingError, match="held by another labeler") as refused:
            label(image_id, project_id, users["liu"], now=now)
        assert refused.value.status == 409
        assert db.session.scalar(select(func.count(Label.id))) == 0
        assert label(image_id, project_id, users["lee"], now=now).created
        # lee's label ended lee's lease: liu may label the image's second slot directly.
        assert label(image_id, project_id, users["liu"], now=now).created


def test_later_gives_the_image_to_others_first_and_back_only_at_the_end(app, users):
    with app.app_context():
        project_id = make_project()
        first, second = add_images(project_id, 2)
        now = utcnow()
        lee, liu = user(users["lee"]), user(users["liu"])
        given = next_image(project_of(project_id), lee, now)
        put_off(given.image_id, lee, now)
        put_off(given.image_id, lee, now)  # twice is harmless
        assert db.session.get(Image, given.image_id).leased_to_id is None
        other_id = second if given.image_id == first else first
        assert next_image(project_of(project_id), lee, now).image_id == other_id
        label(other_id, project_id, lee.id)
        # Only the put-off image is left: it goes to liu as a normal pick...
        taken = next_image(project_of(project_id), liu, now)
        assert (taken.image_id, taken.pick) == (given.image_id, "random")
        # ...and comes back to lee only when liu lets it go and nothing else is left.
        assert next_image(project_of(project_id), lee, now) is None
        put_off(given.image_id, liu, now)
        back = next_image(project_of(project_id), lee, now)
        assert (back.image_id, back.pick) == (given.image_id, "put_off")


def test_several_labels_per_image_from_different_labelers_never_more(app, users):
    with app.app_context():
        project_id = make_project(labels_per_image=2)
        [image_id] = add_images(project_id, 1)
        now = utcnow()
        for name in ("lee", "liu"):
            given = next_image(project_of(project_id), user(users[name]), now)
            assert given.image_id == image_id
            assert label(image_id, project_id, users[name]).created
        assert next_image(project_of(project_id), user(users["ada"]), now) is None
        with pytest.raises(LabelingError, match="already has all its labels"):
            label(image_id, project_id, users["ada"])
        with pytest.raises(LabelingError, match="already labeled this image"):
            label(image_id, project_id, users["lee"], request_id="another decision")
        assert db.session.get(Image, image_id).label_count == 2
        assert db.session.scalar(select(func.count(Label.id))) == 2


def test_images_closest_to_their_quota_come_first(app, users):
    with app.app_context():
        project_id = make_project(labels_per_image=3)
        ids = add_images(project_id, 30)
        label(ids[7], project_id, users["lee"])
        given = next_image(project_of(project_id), user(users["liu"]), utcnow())
        assert given.image_id == ids[7]


def test_submit_is_idempotent_per_request_id(app, users):
    with app.app_context():
        project_id = make_project(labels_per_image=2)
        first, second = add_images(project_id, 2)
        stored = label(first, project_id, users["lee"], request_id="abc")
        repeat = label(first, project_id, users["lee"], "dark_dune", request_id="abc")
        assert stored.created and not repeat.created
        assert repeat.label["id"] == stored.label["id"] and repeat.label["label"] == "crater"
        assert db.session.get(Image, first).label_count == 1
        with pytest.raises(LabelingError, match="already used for image") as reused:
            label(second, project_id, users["lee"], request_id="abc")
        assert reused.value.status == 409
        with pytest.raises(LabelingError, match="request_id is required"):
            label(second, project_id, users["lee"], request_id="  ")


def test_unknown_class_names_the_valid_ones(app, users):
    with app.app_context():
        project_id = make_project()
        [image_id] = add_images(project_id, 1)
        with pytest.raises(LabelingError, match="use one of crater, dark_dune, other"):
            label(image_id, project_id, users["lee"], "volcano")
        assert db.session.get(Image, image_id).label_count == 0


def test_seconds_spent_is_clamped():
    assert decisions.clamp_seconds(-4) == 0.0
    assert decisions.clamp_seconds(1e9) == decisions.MAX_SECONDS_SPENT
    assert decisions.clamp_seconds("2.5") == 2.5
    assert decisions.clamp_seconds("soon") is None
    assert decisions.clamp_seconds(float("nan")) is None


def test_undo_deletes_my_last_label_and_hands_the_image_back(app, users):
    with app.app_context():
        project_id = make_project()
        ids = add_images(project_id, 5)
        lee = user(users["lee"])
        now = utcnow()
        done = []
        for _ in range(2):
            given = next_image(project_of(project_id), lee, now)
            label(given.image_id, project_id, lee.id, "other")
            done.append(given.image_id)
        given, previous = decisions.undo_last_label(project_of(project_id), lee, now)
        assert (given.image_id, previous, given.pick) == (done[1], "other", "undo")
        assert db.session.get(Image, done[1]).label_count == 0
        assert db.session.get(Image, done[1]).leased_to_id == lee.id
        assert next_image(project_of(project_id), lee, now).image_id == done[1]
        assert label(done[1], project_id, lee.id, "crater", request_id="changed").created
        with pytest.raises(LabelingError, match="no label in this project"):
            decisions.undo_last_label(project_of(project_id), user(users["liu"]), now)
        assert set(ids) >= set(done)


def _serving_project(users, order, audit_share, count=12):
    """A project whose serving model is least sure about images in a known order."""
    project_id = make_project(serving_order=order, audit_share=audit_share)
    ids = add_images(project_id, count)
    # Image k gets top probability 0.95 - 0.02 k: later images are less certain.
    probabilities = {}
    for k, image_id in enumerate(ids):
        top = 0.95 - 0.02 * k
        probabilities[image_id] = [top, (1 - top) * 0.75, (1 - top) * 0.25]
    add_serving_model(project_id, probabilities)
    return project_id, ids


@pytest.mark.parametrize("order", ["least_confidence", "margin", "entropy"])
def test_uncertainty_orders_hand_out_the_least_certain_images_first(app, users, order):
    with app.app_context():
        project_id, ids = _serving_project(users, order, audit_share=0.0)
        now = utcnow()
        handed = []
        for name in ("lee", "liu", "ada"):
            given = next_image(project_of(project_id), user(users[name]), now)
            assert given.pick == "uncertainty"
            handed.append(given.image_id)
        # Concurrent labelers get the first, second and third most uncertain, not one image.
        assert handed == ids[::-1][:3]


def test_uncertainty_order_falls_back_to_random_without_predictions(app, users):
    with app.app_context():
        project_id, ids = _serving_project(users, "entropy", audit_share=0.0, count=2)
        extra = add_images(project_id, 3, start=100)
        now = utcnow()
        for name in ("lee", "liu"):
            assert next_image(project_of(project_id), user(users[name]), now).image_id in ids
        given = next_image(project_of(project_id), user(users["ada"]), now)
        assert given.image_id in extra and given.pick == "random"


def test_audit_share_keeps_a_random_stream(app, users):
    with app.app_context():
        project_id, _ = _serving_project(users, "least_confidence", audit_share=0.3, count=5)
        random.seed(7)
        picks = Counter()
        for _ in range(400):
            given = next_image(project_of(project_id), user(users["lee"]), utcnow())
            picks[given.pick] += 1
            put_off(given.image_id, user(users["lee"]), utcnow())
            db.session.query(Skip).delete()
            db.session.commit()
        assert set(picks) == {"audit", "uncertainty"}
        assert 0.22 < picks["audit"] / 400 < 0.38, picks


def test_random_order_ignores_the_model(app, users):
    with app.app_context():
        project_id, _ = _serving_project(users, "random", audit_share=0.5)
        picks = {next_image(project_of(project_id), user(users[name]), utcnow()).pick
                 for name in ("lee", "liu", "ada")}
        assert picks == {"random"}


def test_concurrent_claims_never_hand_an_image_out_twice(app):
    """Many threads, each a labeler with its own session, claim and label until nothing is left."""
    with app.app_context():
        project_id = make_project(labels_per_image=1)
        add_images(project_id, 60)
        with cheap_password_hashes():
            labelers = [create_user(f"labeler{i}", password="long enough password")[0].id
                        for i in range(12)]
    claims, errors = [], []

    def work(user_id):
        with app.app_context():
            try:
                while True:
                    now = utcnow()
                    given = next_image(project_of(project_id), user(user_id), now)
                    if given is None:
                        return
                    claims.append((given.image_id, user_id))
                    label(given.image_id, project_id, user_id, now=now)
            except Exception as error:  # reported below with the thread's user
                errors.append((user_id, repr(error)))
            finally:
                db.session.remove()

    threads = [threading.Thread(target=work, args=(user_id,)) for user_id in labelers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
        assert not thread.is_alive()
    assert errors == []
    claimed_images = [image_id for image_id, _ in claims]
    assert len(claimed_images) == len(set(claimed_images)) == 60
    with app.app_context():
        assert db.session.scalar(select(func.count(Label.id))) == 60
        assert db.session.scalar(select(func.max(Image.label_count))) == 1


def test_concurrent_first_claims_are_all_different(app):
    """Labelers asking at the same instant for uncertainty picks get different images."""
    with app.app_context():
        project_id, ids = _serving_project({}, "least_confidence", audit_share=0.0, count=20)
        with cheap_password_hashes():
            labelers = [create_user(f"u{i}", password="long enough password")[0].id
                        for i in range(10)]
    barrier, handed = threading.Barrier(len(labelers)), []

    def work(user_id):
        with app.app_context():
            barrier.wait()
            handed.append(next_image(project_of(project_id), user(user_id), utcnow()).image_id)
            db.session.remove()

    threads = [threading.Thread(target=work, args=(user_id,)) for user_id in labelers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
        assert not thread.is_alive()
    assert len(handed) == len(set(handed)) == 10
    assert set(handed) == set(ids[::-1][:10])
