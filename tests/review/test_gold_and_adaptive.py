"""Gold images served at the project's share and hidden from labelers; adaptive redundancy:
an image stays in the pool while its consensus is unsettled, up to labels_max (both engines)."""
import uuid
from datetime import timedelta

from sqlalchemy import func, select

from supervising_ui.extensions import db
from supervising_ui.labeling import counts, decisions, picking, settings
from supervising_ui.models import Image, Label, User, utcnow
from supervising_ui.review import agreement, consensus_jobs, gold

from ..helpers import add_images, make_project, project_of
from .helpers import vote


def ask(project_id, user_id, now=None):
    """The labeler's next image through the picker: (image id, pick) or None."""
    given = picking.next_image(settings.project_settings(project_id),
                               db.session.get(User, user_id), now or utcnow())
    return None if given is None else (given.image_id, given.pick)


def label(project_id, user_id, image_id, class_name="crater"):
    """Submit a label through the labeling service."""
    return decisions.submit_label(image_id, settings.project_settings(project_id),
                                  db.session.get(User, user_id), class_name, uuid.uuid4().hex,
                                  1.0, utcnow())


def test_gold_images_come_first_at_share_one_to_every_labeler_once(app, users):
    with app.app_context():
        project_id = make_project(gold_share=1.0)
        golden = add_images(project_id, 2)
        plain = add_images(project_id, 2, start=10)
        project = project_of(project_id)
        for image_id in golden:
            gold.set_gold(project, image_id, "crater")
        for user in ("lee", "liu"):  # every labeler gets both, whatever their label count
            seen = []
            for _ in range(2):
                image_id, pick = ask(project_id, users[user])
                assert pick == "gold" and image_id in golden
                label(project_id, users[user], image_id)
                seen.append(image_id)
            assert sorted(seen) == sorted(golden)
        image_id, pick = ask(project_id, users["lee"])
        assert image_id in plain and pick == "random"
        assert counts.labeling_counts(settings.project_settings(project_id), users["lee"],
                                      utcnow())["total"] == 2, "gold images count in no progress"


def test_gold_share_zero_never_serves_gold_not_even_when_nothing_else_is_left(app, users):
    with app.app_context():
        project_id = make_project(gold_share=0.0)
        [golden] = add_images(project_id, 1)
        [plain] = add_images(project_id, 1, start=5)
        gold.set_gold(project_of(project_id), golden, "other")
        assert ask(project_id, users["lee"])[0] == plain
        label(project_id, users["lee"], plain)
        assert ask(project_id, users["lee"]) is None


def test_gold_accuracy_per_labeler_and_gold_as_known_truth(app, users):
    with app.app_context():
        project_id = make_project(gold_share=0.5)
        images = add_images(project_id, 2)
        project = project_of(project_id)
        gold.set_gold(project, images[0], "crater")
        vote(project_id, images[0], users["lee"], "crater")
        vote(project_id, images[0], users["liu"], "other")
        vote(project_id, images[1], users["liu"], "other")
        rows = {row["labeler"]: row for row in agreement.agreement_report(project)["labelers"]}
        assert (rows["lee"]["gold_accuracy"], rows["lee"]["gold_answered"]) == (1.0, 1)
        assert (rows["liu"]["gold_accuracy"], rows["liu"]["gold_answered"]) == (0.0, 1)
        hidden = agreement.agreement_report(project, users["lee"], show_gold=False)
        assert hidden["labelers"][0]["gold_accuracy"] is None
        from supervising_ui.consensus import consensus_details
        assert consensus_details(project_id)[1][images[0]][:2] == (project.classes[0].id, 1.0)


def test_gold_api_is_for_admins_and_labelers_never_see_an_answer(app, client, auth, users):
    with app.app_context():
        project_id = make_project(gold_share=1.0)
        [golden] = add_images(project_id, 1)
    auth.login("lee")
    assert client.get(f"/api/projects/{project_id}/gold").status_code == 403
    headers = {"X-CSRFToken": auth.csrf_token}
    assert client.put(f"/api/images/{golden}/gold", json={"label": "crater"},
                      headers=headers).status_code == 403
    auth.logout()
    auth.login("ada")
    headers = {"X-CSRFToken": auth.csrf_token}
    marked = client.put(f"/api/images/{golden}/gold", json={"label": "crater"}, headers=headers)
    assert marked.status_code == 200 and marked.get_json()["gold"] == "crater"
    assert client.put(f"/api/images/{golden}/gold", json={"label": "nope"},
                      headers=headers).status_code == 400
    assert client.put("/api/images/99999/gold", json={"label": "crater"},
                      headers=headers).status_code == 404
    listed = client.get(f"/api/projects/{project_id}/gold").get_json()["images"]
    assert listed == [{"image_id": golden, "filename": "img_00000.jpg", "gold": "crater"}]
    csv_body = "filename,gold\nimg_00000.jpg,other\n"
    assert client.post(f"/api/projects/{project_id}/gold", data=csv_body, headers=headers,
                       content_type="text/csv").get_json() == {"marked": 1, "unmarked": 0}
    assert client.post(f"/api/projects/{project_id}/gold", data="filename,gold\nnone.jpg,x\n",
                       headers=headers, content_type="text/csv").status_code == 400
    auth.logout()
    auth.login("lee")
    given = client.get(f"/api/projects/{project_id}/next")
    assert given.status_code == 200 and given.get_json()["image_id"] == golden
    payload = given.get_json()
    assert "gold" not in given.get_data(as_text=True) and payload["pick"] == "random"
    assert payload["suggestion"] is None, "no model: nothing that could carry the answer"
    agreement_json = client.get(f"/api/projects/{project_id}/agreement").get_json()
    assert all(row["gold_accuracy"] is None for row in agreement_json["labelers"])


def adaptive_project(users, **extra):
    """Two labels per image, up to 4 while the majority's share is below 0.9: image 0 tied,
    image 1 agreed; return the project id and the images."""
    project_id = make_project(labels_per_image=2, labels_max=4, target_posterior=0.9, **extra)
    images = add_images(project_id, 2)
    vote(project_id, images[0], users["lee"], "crater")
    vote(project_id, images[0], users["liu"], "other")
    vote(project_id, images[1], users["lee"], "crater")
    vote(project_id, images[1], users["liu"], "crater")
    return project_id, images


def test_adaptive_asks_for_another_label_only_while_unsettled(app, users):
    with app.app_context():
        project_id, images = adaptive_project(users)
        ada = users["ada"]
        assert ask(project_id, ada) is None, "both have their 2 labels: nothing before the job"
        assert consensus_jobs.recompute(project_id)["wanting_more_labels"] == 1
        assert db.session.get(Image, images[0]).labels_wanted == 3
        assert db.session.get(Image, images[1]).labels_wanted is None
        image_id, pick = ask(project_id, ada)
        assert (image_id, pick) == (images[0], "settle")
        assert label(project_id, ada, image_id).created
        # 2 crater : 1 other = 0.67 < 0.9: the next run wants a 4th, then labels_max stops it.
        assert consensus_jobs.recompute(project_id)["wanting_more_labels"] == 1
        [fourth] = db.session.scalars(select(User.id).where(User.username == "ada")).all()
        assert fourth == ada
        assert db.session.get(Image, images[0]).labels_wanted == 4
        assert ask(project_id, ada) is None, "ada labeled it already"


def test_adaptive_marks_clear_when_turned_off_and_leases_hold(app, users):
    with app.app_context():
        project_id, images = adaptive_project(users)
        consensus_jobs.recompute(project_id)
        now = utcnow()
        assert ask(project_id, users["ada"], now)[0] == images[0]
        from supervising_ui.accounts.users import create_user
        other = create_user("ola", role="labeler", password="correct horse battery")[0].id
        assert ask(project_id, other, now + timedelta(seconds=1)) is None, "ada holds the lease"
        project = project_of(project_id)
        project.labels_max = None
        db.session.commit()
        consensus_jobs.settings_changed(project)
        assert db.session.scalar(select(func.count()).select_from(Image).where(
            Image.labels_wanted.is_not(None))) == 0
        assert db.session.scalar(select(func.count(Label.id))) == 4


def test_concurrent_labelers_with_gold_and_adaptive_marks_lose_nothing(app, users):
    """Ten labelers in threads claim and label until nothing is left, with gold images served
    and half the images wanting a second label: no image handed out twice at once, every
    claim labeled, no count above what an image wants."""
    import threading

    from supervising_ui.accounts.users import create_user

    from ..conftest import cheap_password_hashes
    with app.app_context():
        project_id = make_project(labels_per_image=1, labels_max=3, gold_share=0.3)
        images = add_images(project_id, 30)
        project = project_of(project_id)
        for image_id in images[:4]:
            gold.set_gold(project, image_id, "crater")
        for image_id in images[4:17]:
            db.session.get(Image, image_id).labels_wanted = 2  # as the consensus job marks
        db.session.commit()
        with cheap_password_hashes():
            labelers = [create_user(f"worker{i}", password="long enough password")[0].id
                        for i in range(10)]
    claims, errors = [], []

    def work(user_id):
        with app.app_context():
            try:
                while True:
                    given = ask(project_id, user_id)
                    if given is None:
                        return
                    claims.append((given[0], user_id))
                    assert label(project_id, user_id, given[0]).created
            except Exception as error:  # reported below with the thread's user
                errors.append((user_id, repr(error)))
            finally:
                db.session.remove()

    threads = [threading.Thread(target=work, args=(user_id,)) for user_id in labelers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
        assert not thread.is_alive()
    assert errors == []
    assert len(claims) == len(set(claims)), "no labeler got an image twice"
    with app.app_context():
        assert db.session.scalar(select(func.count(Label.id))) == len(claims), "none lost"
        counts = dict(db.session.execute(select(Image.id, Image.label_count)).all())
        assert all(counts[i] == 2 for i in images[4:17]) and all(counts[i] == 1
                                                                 for i in images[17:])
        assert all(counts[i] <= len(labelers) for i in images[:4])


def test_a_mark_stays_while_its_image_is_leased(app, users):
    """The job may find an image settled while a labeler holds it for its extra label (the
    Dawid-Skene estimates move with every label): the labeler's submit must still count."""
    from types import SimpleNamespace
    with app.app_context():
        project_id, images = adaptive_project(users)
        consensus_jobs.recompute(project_id)
        now = utcnow()
        assert ask(project_id, users["ada"], now)[0] == images[0]
        settled = SimpleNamespace(counts={images[0]: 2, images[1]: 2},
                                  posteriors={images[0]: 1.0, images[1]: 1.0})
        consensus_jobs._want_more_labels(project_id, settled)
        db.session.commit()
        assert db.session.get(Image, images[0]).labels_wanted == 3, "ada holds its lease"
        assert label(project_id, users["ada"], images[0]).created
        consensus_jobs._want_more_labels(project_id, settled)
        db.session.commit()
        assert db.session.get(Image, images[0]).labels_wanted is None, "no lease: cleared"
