"""Project membership: members_only projects answer 404 to everyone but their members and
admins, on every labeling, image, search, model and job endpoint; the admin form and the
project-members command choose the members."""
import uuid

import pytest
from sqlalchemy import delete, event, func, select

from supervising_ui.accounts import membership
from supervising_ui.accounts.users import create_user
from supervising_ui.extensions import db
from supervising_ui.labeling import access
from supervising_ui.models import Job, Label, ModelVersion, ProjectMember, User
from supervising_ui.projects import service as projects

from ..helpers import add_stored_images, image_bytes, make_project, project_of


@pytest.fixture
def closed(app, users):
    """A members_only project 'closed' (lee its one member) and an open project 'open'."""
    with app.app_context():
        closed_id = make_project("closed", group_column="source_id")
        open_id = make_project("open")
        closed_images = add_stored_images(app, closed_id, 3)
        open_images = add_stored_images(app, open_id, 2)
        membership.change_members(project_of(closed_id), add=["lee"], members_only=True)
    return {"id": closed_id, "images": closed_images, "open_id": open_id,
            "open_images": open_images}


def closed_urls(closed) -> list[tuple[str, str]]:
    """Every (method, URL) of the closed project and its first image that a labeler may call."""
    project_id, image_id = closed["id"], closed["images"][0]
    return [("GET", f"/projects/{project_id}/label"), ("GET", f"/api/projects/{project_id}/next"),
            ("GET", f"/api/projects/{project_id}/progress"),
            ("POST", f"/api/projects/{project_id}/undo"),
            ("GET", f"/api/images/{image_id}/file"), ("GET", f"/api/images/{image_id}/thumbnail"),
            ("POST", f"/api/images/{image_id}/labels"), ("POST", f"/api/images/{image_id}/later"),
            ("GET", f"/projects/{project_id}/search"), ("GET", f"/projects/{project_id}/groups"),
            ("GET", f"/projects/{project_id}/search/images/{image_id}"),
            ("GET", f"/projects/{project_id}/search.csv"),
            ("GET", f"/api/projects/{project_id}/search"),
            ("GET", f"/api/projects/{project_id}/groups"),
            ("GET", f"/projects/{project_id}/models")]


def call(client, auth, method, url):
    """Send one request as the logged-in user (a fresh label for POSTs to /labels)."""
    if method == "GET":
        return client.get(url)
    body = {"label": "crater", "request_id": str(uuid.uuid4())} if url.endswith("/labels") else {}
    return client.post(url, json=body, headers={"X-CSRFToken": auth.csrf_token})


def test_new_projects_are_open_to_every_labeler(app, client, auth):
    with app.app_context():
        project_id = make_project("mars")
        add_stored_images(app, project_id, 1)
        assert project_of(project_id).members_only is False
        assert access.labelable_project(db.session.get(User, 3), project_id) is not None
    auth.login("liu")
    assert [p["name"] for p in client.get("/api/projects").get_json()["projects"]] == ["mars"]
    assert client.get(f"/api/projects/{project_id}/next").status_code == 200
    assert client.get(f"/api/projects/{project_id}/search").get_json()["total"] == 1


def test_a_labeler_who_is_not_a_member_gets_404_everywhere(app, client, auth, closed):
    auth.login("liu")
    for method, url in closed_urls(closed):
        assert call(client, auth, method, url).status_code == 404, (method, url)
    with app.app_context():
        assert db.session.scalar(select(func.count(Label.id))) == 0, "no label was stored"
    listed = client.get("/api/projects").get_json()["projects"]
    assert [project["name"] for project in listed] == ["open"]
    home = client.get("/").get_data(as_text=True)
    assert f"/projects/{closed['open_id']}/label" in home
    assert f"/projects/{closed['id']}/label" not in home and "closed" not in home
    # The open project's search lists only its own images, and a closed image stays closed
    # even under the open project's URL.
    found = client.get(f"/api/projects/{closed['open_id']}/search?per_page=500").get_json()
    assert sorted(item["image_id"] for item in found["items"]) == closed["open_images"]
    assert found["total"] == 2
    assert client.get(f"/projects/{closed['open_id']}/search/images/"
                      f"{closed['images'][0]}").status_code == 404


def test_members_and_admins_may_label_and_search(app, client, auth, closed):
    for name in ("lee", "ada"):  # ada is an admin and no member
        auth.login(name)
        for method, url in closed_urls(closed):
            if not url.endswith(("/labels", "/undo", "/later")):
                assert call(client, auth, method, url).status_code == 200, (name, url)
        given = client.get(f"/api/projects/{closed['id']}/next").get_json()
        submitted = client.post(f"/api/images/{given['image_id']}/labels",
                                json={"label": "crater", "request_id": str(uuid.uuid4())},
                                headers={"X-CSRFToken": auth.csrf_token})
        assert submitted.status_code == 201, name
        found = client.get(f"/api/projects/{closed['id']}/search").get_json()
        assert found["total"] == 3 and found["facets"]["status"]["labeled"] >= 1
        names = [project["name"] for project in client.get("/api/projects").get_json()["projects"]]
        assert names == ["closed", "open"]
        auth.logout()


def test_taking_a_member_off_closes_the_project_at_once(app, client, auth, closed):
    auth.login("lee")
    assert client.get(f"/api/projects/{closed['id']}/next").status_code == 200
    with app.app_context():
        membership.change_members(project_of(closed["id"]), remove=["lee"])
    assert client.get(f"/api/projects/{closed['id']}/next").status_code == 404
    with app.app_context():
        membership.change_members(project_of(closed["id"]), members_only=False)
    assert client.get(f"/api/projects/{closed['id']}/next").status_code == 200


def test_model_plots_follow_the_project(app, client, auth, closed, tmp_path):
    with app.app_context():
        version = ModelVersion(project_id=closed["id"], version=1, kind="quick",
                               path=str(tmp_path / "v1"))
        db.session.add(version)
        db.session.commit()
        version_id = version.id
    (tmp_path / "v1").mkdir()
    (tmp_path / "v1" / "threshold.png").write_bytes(image_bytes(1, image_format="PNG"))
    url = f"/projects/{closed['id']}/models/{version_id}/threshold.png"
    for name, status in (("liu", 404), ("lee", 200), ("ada", 200)):
        auth.login(name)
        assert client.get(url).status_code == status, name
        auth.logout()


def test_job_status_follows_the_project(app, client, auth, users, closed):
    with app.app_context():
        job = Job(kind="retrain", project_id=closed["id"], params={}, created_by_id=users["lee"])
        db.session.add(job)
        db.session.commit()
        job_id = job.id
    auth.login("lee")
    assert client.get(f"/api/jobs/{job_id}").status_code == 200
    with app.app_context():
        membership.change_members(project_of(closed["id"]), remove=["lee"])
    assert client.get(f"/api/jobs/{job_id}").status_code == 404


def test_the_hot_path_adds_one_lookup_only_on_members_only_projects(app, users, closed):
    statements = []

    def record(connection, cursor, statement, *arguments):
        statements.append(statement)

    with app.app_context():
        lee = db.session.get(User, users["lee"])
        event.listen(db.engine, "before_cursor_execute", record)
        try:
            for project_id, image_id, expected in ((closed["open_id"], closed["open_images"][0], 2),
                                                   (closed["id"], closed["images"][0], 4)):
                statements.clear()
                assert access.labelable_project(lee, project_id) is not None
                assert access.visible_image(lee, image_id) is not None
                # Open: the settings query and the image-with-settings query; members_only:
                # each followed by one member lookup.
                assert len(statements) == expected, statements
                lookups = [statement for statement in statements if "project_member" in statement]
                assert len(lookups) == expected - 2
        finally:
            event.remove(db.engine, "before_cursor_execute", record)


def test_admin_form_chooses_members_with_csrf(app, client, auth, users, closed):
    url = f"/admin/projects/{closed['open_id']}/members"
    auth.login("lee")
    assert client.post(url, data={"csrf_token": auth.csrf_token, "access": "members"}) \
        .status_code == 403
    auth.logout()
    auth.login("ada")
    page = client.get(f"/admin/projects/{closed['open_id']}").get_data(as_text=True)
    assert 'name="access" value="everyone" checked' in page and "Who may label" in page
    assert f'name="member" value="{users["liu"]}"' in page
    assert f'name="member" value="{users["ada"]}"' not in page, "admins see every project"
    assert client.post(url, data={"access": "members", "member": [users["liu"]]}) \
        .status_code == 400, "CSRF token required"
    with app.app_context():
        assert project_of(closed["open_id"]).members_only is False
    saved = client.post(url, data={"csrf_token": auth.csrf_token, "access": "members",
                                   "member": [str(users["liu"])]}, follow_redirects=True)
    assert "only its members and admins may label it; members: liu" in saved.get_data(as_text=True)
    assert "members only" in client.get("/admin/").get_data(as_text=True)
    for bad in ({"access": "some"}, {"access": "members", "member": "x" * 300},
                {"access": "members", "member": str(users["ada"])},
                {"access": "members", "member": str(2**63)}):
        refused = client.post(url, data={"csrf_token": auth.csrf_token, **bad},
                              follow_redirects=True)
        assert refused.status_code == 200 and "Members not saved" in refused.get_data(as_text=True)
    with app.app_context():
        access_now = membership.project_access(project_of(closed["open_id"]))
        assert access_now.members_only and [u.username for u in access_now.members] == ["liu"]
    auth.logout()
    auth.login("lee")
    assert client.get(f"/api/projects/{closed['open_id']}/next").status_code == 404
    auth.logout()
    auth.login("ada")
    # The browser sends the ticks it shows: opening the project keeps the list for later.
    client.post(url, data={"csrf_token": auth.csrf_token, "access": "everyone",
                           "member": str(users["liu"])})
    with app.app_context():
        access_now = membership.project_access(project_of(closed["open_id"]))
        assert not access_now.members_only and [u.username for u in access_now.members] == ["liu"]


def test_project_members_command(app, runner, users, closed):
    shown = runner.invoke(args=["project-members", "open"])
    assert shown.exit_code == 0
    assert shown.output == "'open': every labeler may label it; members, kept for when only " \
                           "members may: none\n"
    changed = runner.invoke(args=["project-members", "open", "--members-only", "--add", "liu",
                                  "--add", "lee"])
    assert changed.exit_code == 0, changed.output
    assert "only its members and admins may label it; members: lee, liu" in changed.output
    removed = runner.invoke(args=["project-members", "open", "--remove", "lee", "--everyone"])
    assert "every labeler may label it" in removed.output and "members may: liu" in removed.output
    for arguments, message in (
            (["nowhere"], "no project called 'nowhere'"),
            (["open", "--add", "nobody"], "no user called 'nobody'"),
            (["open", "--add", "ada"], "'ada' is an admin: admins see every project"),
            (["open", "--add", "lee", "--remove", "lee"], "lee: both added and removed"),
            (["open", "--everyone", "--members-only"], "give at most one of --everyone and --members-only")):
        refused = runner.invoke(args=["project-members", *arguments])
        assert refused.exit_code == 1, arguments
        assert refused.output.strip().splitlines() == [f"Error: {message}"], refused.output
    with app.app_context():
        access_now = membership.project_access(project_of(closed["open_id"]))
        assert not access_now.members_only and [u.username for u in access_now.members] == ["liu"]


def test_member_rows_go_with_their_user(app, users, closed):
    with app.app_context():
        user, _ = create_user("brief", password="correct horse battery")
        membership.change_members(project_of(closed["id"]), add=["brief"])
        assert db.session.scalar(select(func.count()).select_from(ProjectMember)) == 2
        db.session.execute(delete(User).where(User.id == user.id))
        db.session.commit()
        assert [u.username for u in membership.project_access(project_of(closed["id"])).members] \
            == ["lee"]


def test_deactivated_members_and_anonymous_clients_see_nothing(app, client, users, closed):
    with app.app_context():
        lee = db.session.get(User, users["lee"])
        lee.active = False
        db.session.commit()
        assert not membership.can_access(lee, project_of(closed["id"]))
        assert membership.visible_projects(lee) == []
        assert projects.get_project(closed["id"]).members_only
    assert client.get(f"/api/projects/{closed['id']}/next").status_code in (302, 401)
