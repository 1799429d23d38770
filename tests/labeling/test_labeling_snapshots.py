"""A process remembers projects' labeling settings for SETTINGS_CACHE_SECONDS and the images
that next handed out (labeling/snapshots.py): changes made here count at once, changes made
elsewhere within the window, and access is still checked on every request."""
import uuid

import pytest
from sqlalchemy import event, update

from supervising_ui import timed_cache
from supervising_ui.accounts import membership
from supervising_ui.accounts.users import create_api_token
from supervising_ui.extensions import db
from supervising_ui.labeling import access
from supervising_ui.labeling.snapshots import ImageCache
from supervising_ui.models import Project, User

from ..helpers import add_images, add_stored_images, make_project, project_of


@pytest.fixture
def clock(monkeypatch):
    """The caches' clock, moved by hand."""
    now = [1000.0]
    monkeypatch.setattr(timed_cache.time, "monotonic", lambda: now[0])
    return now


@pytest.fixture
def statements(app):
    """The SQL statements run while the test runs (their first words)."""
    seen = []
    with app.app_context():
        engine = db.engine

    def note(connection, cursor, statement, *rest):
        seen.append(" ".join(statement.split()[:3]))
    event.listen(engine, "before_cursor_execute", note)
    yield seen
    event.remove(engine, "before_cursor_execute", note)


def lee_headers(app, users) -> dict:
    with app.app_context():
        return {"Authorization": f"Bearer {create_api_token(db.session.get(User, users['lee']))}"}


def settings_of(app, users, project_id):
    with app.app_context():
        return access.labelable_project(db.session.get(User, users["lee"]), project_id)


def test_settings_are_read_once_then_remembered(app, users, statements):
    with app.app_context():
        project_id = make_project()
    assert settings_of(app, users, project_id).labels_per_image == 1
    statements.clear()
    for _ in range(3):
        assert settings_of(app, users, project_id).labels_per_image == 1
    assert not [s for s in statements if "project" in s], statements


def test_a_change_made_here_counts_at_once(app, users):
    with app.app_context():
        project_id = make_project()
    assert settings_of(app, users, project_id).labels_per_image == 1
    with app.app_context():  # through the ORM's unit of work, as the admin form does
        project_of(project_id).labels_per_image = 3
        db.session.commit()
    assert settings_of(app, users, project_id).labels_per_image == 3
    with app.app_context():  # an ORM UPDATE statement, as the job worker's serving switch
        db.session.execute(update(Project).where(Project.id == project_id)
                           .values(serving_order="uncertainty"))
        db.session.commit()
    assert settings_of(app, users, project_id).serving_order == "uncertainty"


def test_a_change_made_elsewhere_counts_within_the_window(app, users, clock):
    with app.app_context():
        project_id = make_project()
    assert settings_of(app, users, project_id).labels_per_image == 1
    with app.app_context():  # another process: a plain connection, nothing tells this one
        with db.engine.begin() as connection:
            connection.execute(update(Project.__table__).values(labels_per_image=2))
    clock[0] += app.config["SETTINGS_CACHE_SECONDS"] - 0.5
    assert settings_of(app, users, project_id).labels_per_image == 1, "still remembered"
    clock[0] += 1
    assert settings_of(app, users, project_id).labels_per_image == 2


def test_zero_seconds_reads_them_every_time(app, users, statements):
    app.extensions["settings_cache"].seconds = 0
    with app.app_context():
        project_id = make_project()
    for _ in range(2):
        statements.clear()
        assert settings_of(app, users, project_id) is not None
        assert [s for s in statements if "project" in s], "read again"


def test_the_image_next_hands_out_needs_no_query_for_its_file_and_submit(app, client, users,
                                                                       statements):
    with app.app_context():
        project_id = make_project()
        add_stored_images(app, project_id, 2)
    headers = lee_headers(app, users)
    given = client.get(f"/api/projects/{project_id}/next", headers=headers).get_json()
    statements.clear()
    response = client.get(given["image_url"], headers=headers)
    assert response.status_code == 200 and response.data
    assert statements == [], "the file of the image just handed out: no query"
    posted = client.post(f"/api/images/{given['image_id']}/labels", headers=headers,
                         json={"label": "crater", "request_id": str(uuid.uuid4())})
    assert posted.status_code == 201
    assert not [s for s in statements if s.startswith("SELECT image.id")], statements


def test_a_remembered_image_still_checks_who_asks(app, client, users):
    with app.app_context():
        project_id = make_project()
        add_stored_images(app, project_id, 2)
        membership.change_members(project_of(project_id), add=["lee"], members_only=True)
    headers = lee_headers(app, users)
    given = client.get(f"/api/projects/{project_id}/next", headers=headers).get_json()
    assert client.get(given["image_url"], headers=headers).status_code == 200
    with app.app_context():
        membership.change_members(project_of(project_id), remove=["lee"])
    assert client.get(given["image_url"], headers=headers).status_code == 404
    posted = client.post(f"/api/images/{given['image_id']}/labels", headers=headers,
                         json={"label": "crater", "request_id": str(uuid.uuid4())})
    assert posted.status_code == 404


def test_an_image_not_handed_out_here_is_read_with_its_project(app, users):
    with app.app_context():
        project_id = make_project()
        image_id = add_images(project_id, 1)[0]
        lee = db.session.get(User, users["lee"])
        image, project = access.visible_image(lee, image_id)
        assert (image.id, image.project_id, project.id) == (image_id, project_id, project_id)
        assert access.visible_image(lee, 10**6) is None


def test_the_image_cache_keeps_the_most_recent_images():
    class Row:
        def __init__(self, id):
            self.id = id
    cache = ImageCache(size=2)
    for image_id in (1, 2):
        cache.keep(Row(image_id))
    assert cache.get(1).id == 1  # 1 is now the most recently used
    cache.keep(Row(3))
    assert cache.get(2) is None and cache.get(1).id == 1 and cache.get(3).id == 3
