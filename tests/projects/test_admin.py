"""Admin pages: projects, classes, settings, users, browser imports with their job report."""
import io
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from sqlalchemy import func, select

from supervising_ui.accounts import users as accounts
from supervising_ui.accounts.users import AccountError
from supervising_ui.extensions import db
from supervising_ui.models import Image, Job, Label, User
from supervising_ui.projects import service as projects

from ..helpers import image_bytes, write_images, zip_bytes


@pytest.fixture
def admin(client, auth):
    """Log ada (admin) in; return the login helper with its CSRF token."""
    auth.login("ada")
    return auth


@pytest.fixture
def project_id(app):
    with app.app_context():
        return projects.create_project("HiRISE", preset="hirise").id


def post(client, admin, url, data=None, **kwargs):
    return client.post(url, data={"csrf_token": admin.csrf_token, **(data or {})}, **kwargs)


def test_labelers_get_403_on_admin_pages(client, auth, project_id):
    auth.login("lee")
    for url in ("/admin/", f"/admin/projects/{project_id}", f"/admin/projects/{project_id}/images",
                "/admin/users"):
        assert client.get(url).status_code == 403, url
    response = client.post(f"/admin/projects/{project_id}/import/upload",
                           data={"csrf_token": auth.csrf_token,
                                 "files": (io.BytesIO(image_bytes(1)), "a.jpg")})
    assert response.status_code == 403


def test_create_project_from_preset_and_from_class_list(app, client, admin):
    response = post(client, admin, "/admin/projects", {"name": "Rover", "preset": "msl"})
    assert response.status_code == 302
    post(client, admin, "/admin/projects", {"name": "Mine", "classes": "rock\nsand, sky",
                                            "labels_per_image": "2"})
    page = client.get("/admin/").get_data(as_text=True)
    assert "Rover" in page and "rock, sand, sky" in page
    response = post(client, admin, "/admin/projects", {"name": "Mine", "classes": "a"},
                    follow_redirects=True)
    assert "Project not created: project &#39;Mine&#39; already exists" in response.get_data(as_text=True)
    with app.app_context():
        rover = projects.get_project_by_name("Rover")
        assert len(rover.classes) == 25  # the MSL data set's 24 image classes and "sun"
        assert projects.get_project_by_name("Mine").labels_per_image == 2


def test_class_edits_through_the_page(app, client, admin, project_id, users):
    base = f"/admin/projects/{project_id}/classes"
    post(client, admin, base, {"name": "dust_devil"})
    with app.app_context():
        project = projects.get_project(project_id)
        ids = {c.name: c.id for c in project.classes}
        image = Image(project_id=project_id, storage_key="k", original_name="a.jpg",
                      content_hash="0" * 64, width=1, height=1, label_count=1)
        db.session.add_all([image, Label(project_id=project_id, image=image, user_id=users["lee"],
                                         label_class_id=ids["streak"])])
        db.session.commit()
    post(client, admin, f"{base}/{ids['dust_devil']}/rename", {"name": "dust devil track"})
    post(client, admin, f"{base}/{ids['edge']}/move", {"direction": "up"})
    page = post(client, admin, f"{base}/{ids['streak']}/delete", follow_redirects=True)
    assert "is in use (1 labels" in page.get_data(as_text=True)
    post(client, admin, f"{base}/{ids['streak']}/delete", {"merge_into": str(ids["other"])})
    post(client, admin, f"{base}/{ids['crater']}/delete")
    with app.app_context():
        project = projects.get_project(project_id)
        assert project.class_names == ["dark_dune", "bright_dune", "edge", "other",
                                       "dust devil track"]
        assert db.session.scalar(select(Label)).label_class.name == "other"


def test_settings_form_saves_and_refuses(app, client, admin, project_id):
    url = f"/admin/projects/{project_id}/settings"
    page = post(client, admin, url, {"name": "HiRISE", "labels_per_image": "2",
                                     "serving_order": "entropy", "audit_share": "0.3",
                                     "hide_suggestion_share": "0.1", "retrain_every": "100",
                                     "group_column": "source_id", "description": "orbital"},
                follow_redirects=True)
    assert "Settings saved." in page.get_data(as_text=True)
    page = post(client, admin, url, {"audit_share": "2"}, follow_redirects=True)
    assert "audit share must be between 0.0 and 1.0" in page.get_data(as_text=True)
    with app.app_context():
        project = projects.get_project(project_id)
        assert (project.labels_per_image, project.serving_order, project.audit_share,
                project.retrain_every) == (2, "entropy", 0.3, 100)
        assert not project.color_input, "left as it was when the form does not name it"
    settings_page = client.get(f"/admin/projects/{project_id}").get_data(as_text=True)
    assert '<option value="grayscale" selected>' in settings_page
    assert "Settings saved." in post(client, admin, url, {"model_input": "color"},
                                     follow_redirects=True).get_data(as_text=True)
    page = post(client, admin, url, {"model_input": "infrared"}, follow_redirects=True)
    assert "model input must be one of grayscale, color" in page.get_data(as_text=True)
    with app.app_context():
        assert projects.get_project(project_id).color_input
    assert '<option value="color" selected>' in client.get(
        f"/admin/projects/{project_id}").get_data(as_text=True)


def upload(client, admin, project_id, files, accept_json=True):
    headers = {"Accept": "application/json"} if accept_json else {}
    return client.post(f"/admin/projects/{project_id}/import/upload",
                       data={"csrf_token": admin.csrf_token,
                             "files": [(io.BytesIO(data), name) for name, data in files]},
                       headers=headers, content_type="multipart/form-data")


def job_json(client, response):
    assert response.status_code == 202, response.get_data(as_text=True)
    status = client.get(response.get_json()["status_url"])
    assert status.status_code == 200
    return status.get_json()


def test_upload_files_and_zip_runs_an_import_job_with_report(app, client, admin, project_id):
    files = [("a.jpg", image_bytes(1)), ("b.png", image_bytes(2, image_format="PNG")),
             ("broken.jpg", b"not an image"),
             ("set.zip", zip_bytes({"set/c.jpg": image_bytes(3), "set/a_again.jpg": image_bytes(1),
                                    "../escape.jpg": image_bytes(4)}))]
    job = job_json(client, upload(client, admin, project_id, files))
    assert job["state"] == "done" and job["kind"] == "import" and job["progress"] == 1.0
    report = job["result"]["report"]
    assert (report["added"], report["duplicate_count"], report["rejected_count"]) == (3, 1, 2)
    assert report["duplicates"] == ["set/a_again.jpg"]
    assert {item["name"] for item in report["rejected"]} == {"broken.jpg", "set.zip: ../escape.jpg"}
    assert job["result"]["summary"] == "added 3 images (0 labels), 1 duplicates, 2 rejected"
    with app.app_context():
        names = db.session.scalars(select(Image.original_name).order_by(Image.id)).all()
        assert names == ["a.jpg", "b.png", "set/c.jpg"]
        assert db.session.scalar(select(Job)).created_by_id == 1
    staging = Path(app.instance_path) / "import_staging"
    assert not any(staging.iterdir()), "the staged upload is removed after its import"


def test_upload_with_manifest_imports_labels_for_the_admin(app, client, admin, project_id, users):
    manifest = b"filename,label,source_id\na.jpg,crater,ESP_1\nb.jpg,martian,ESP_2\n"
    job = job_json(client, upload(client, admin, project_id, [
        ("a.jpg", image_bytes(1)), ("b.jpg", image_bytes(2)), ("manifest.csv", manifest)]))
    report = job["result"]["report"]
    assert (report["added"], report["labels_added"]) == (1, 1)
    assert report["rejected"][0]["reason"].startswith("unknown label 'martian': valid classes are")
    with app.app_context():
        label = db.session.scalar(select(Label))
        assert label.user_id == users["ada"] and label.image.meta == {"source_id": "ESP_1"}


def test_zip_with_its_manifest_inside(app, client, admin, project_id):
    archive = zip_bytes({"survey/manifest.csv": b"filename,sol\nimgs/a.jpg,12\nb.jpg,13\n",
                         "survey/imgs/a.jpg": image_bytes(1), "survey/imgs/b.jpg": image_bytes(2)})
    job = job_json(client, upload(client, admin, project_id, [("survey.zip", archive)]))
    report = job["result"]["report"]
    assert (report["added"], report["rejected_count"]) == (2, 0), report
    with app.app_context():
        stored = dict(db.session.execute(select(Image.original_name, Image.meta)).all())
        assert stored == {"imgs/a.jpg": {"sol": 12}, "b.jpg": {"sol": 13}}


def test_malformed_manifest_upload_is_reported(client, admin, project_id):
    job = job_json(client, upload(client, admin, project_id, [
        ("a.jpg", image_bytes(1)), ("m.csv", "file,x\n\u00e9,1\n".encode("latin-1"))]))
    rejected = {item["name"]: item["reason"] for item in job["result"]["report"]["rejected"]}
    assert rejected["m.csv"].startswith("manifest is not UTF-8 text")
    assert rejected["a.jpg"] == "not imported: the manifest was rejected"


def test_upload_needs_csrf_token_and_files(client, admin, project_id):
    response = client.post(f"/admin/projects/{project_id}/import/upload",
                           data={"files": (io.BytesIO(image_bytes(1)), "a.jpg")})
    assert response.status_code == 400
    response = upload(client, admin, project_id, [])
    assert response.status_code == 400 and "choose image files" in response.get_json()["error"]
    response = upload(client, admin, project_id, [("a.jpg", image_bytes(1))], accept_json=False)
    assert response.status_code == 302 and "job=" in response.headers["Location"]
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "added 1 images" in page


def test_server_folder_import_is_confined_to_import_root(app, client, admin, project_id, tmp_path):
    root = Path(app.config["IMPORT_ROOT"])
    write_images(root / "batch", 3)
    write_images(tmp_path / "private", 1, start=9)
    url = f"/admin/projects/{project_id}/import/server"
    headers = {"Accept": "application/json"}
    job = job_json(client, post(client, admin, url, {"folder": "batch"}, headers=headers))
    assert job["result"]["report"]["added"] == 3
    for folder in ("../private", str(tmp_path / "private"), "batch/../../private"):
        response = post(client, admin, url, {"folder": folder}, headers=headers)
        assert response.status_code == 400 and "outside" in response.get_json()["error"], folder
    (root / "link").symlink_to(tmp_path / "private")
    response = post(client, admin, url, {"folder": "link"}, headers=headers)
    assert response.status_code == 400
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Image)) == 3


def test_images_page_lists_metadata_and_serves_files_by_id(app, client, admin, project_id):
    files = [(f"i{index:02d}.jpg", image_bytes(index)) for index in range(55)]
    files.append(("m.csv", ("filename,source_id,sol\n" + "".join(
        f"i{index:02d}.jpg,ESP_{index % 3},{index}\n" for index in range(55))).encode()))
    job_json(client, upload(client, admin, project_id, files))
    page = client.get(f"/admin/projects/{project_id}/images").get_data(as_text=True)
    assert "<h1>55 images</h1>" in page and "page 1 of 2" in page
    assert "<th>source_id</th><th>sol</th>" in page and "ESP_2" in page
    assert page.count('class="thumb"') == 50 and "32×24" in page
    second = client.get(f"/admin/projects/{project_id}/images?page=2").get_data(as_text=True)
    assert second.count('class="thumb"') == 5 and "i54.jpg" in second
    image_id = int(re.search(r"/api/images/(\d+)/file", page).group(1))
    response = client.get(f"/api/images/{image_id}/file")
    assert response.status_code == 200 and response.mimetype == "image/jpeg"
    assert response.data == image_bytes(0)
    assert f"/api/images/{image_id}/thumbnail" in page
    assert client.get("/admin/images/99999/thumbnail").status_code == 404


def test_thumbnails_are_small_and_cached(app, client, admin, project_id):
    files = [("big.png", image_bytes(1, size=(600, 300), image_format="PNG"))]
    buffer = io.BytesIO()
    gradient = np.tile(np.linspace(1000, 5000, 300).astype(np.uint16), (300, 1))
    PILImage.fromarray(gradient).save(buffer, format="PNG")  # a 16-bit grayscale PNG
    files.append(("sixteen_bit.png", buffer.getvalue()))
    job_json(client, upload(client, admin, project_id, files))
    for image_id, expected in ((1, (128, 64)), (2, (128, 128))):
        response = client.get(f"/api/images/{image_id}/thumbnail")
        assert response.status_code == 200 and response.mimetype == "image/jpeg"
        assert PILImage.open(io.BytesIO(response.data)).size == expected
    low, high = PILImage.open(io.BytesIO(response.data)).getextrema()
    assert low < 10 and high > 245, "16-bit values are stretched, not clipped to white"
    with app.app_context():
        key = db.session.get(Image, 1).storage_key
    cached = Path(app.config["CACHE_DIR"]) / "thumbnails" / f"{key}.jpg"
    assert client.get("/api/images/1/thumbnail").data == cached.read_bytes()


def test_users_page_creates_deactivates_and_changes_roles(app, client, admin, users):
    response = post(client, admin, "/admin/users", {"username": "mia", "role": "labeler"})
    page = response.get_data(as_text=True)
    password = re.search(r"with password\s*<code>([^<]+)</code>", page).group(1)
    assert len(password) >= 12 and "shown only this once" in page
    assert password not in client.get("/admin/users").get_data(as_text=True)
    with app.app_context():
        mia = db.session.scalar(select(User).where(User.username == "mia"))
        assert mia.check_password(password) and mia.role == "labeler"
        mia_id = mia.id
    post(client, admin, f"/admin/users/{mia_id}/role", {"role": "admin"})
    post(client, admin, f"/admin/users/{users['lee']}/active", {"active": "0"})
    page = post(client, admin, f"/admin/users/{users['ada']}/active", {"active": "0"},
                follow_redirects=True).get_data(as_text=True)
    assert "you cannot deactivate your own account" in page
    page = post(client, admin, f"/admin/users/{users['ada']}/role", {"role": "labeler"},
                follow_redirects=True).get_data(as_text=True)
    assert "you cannot take the admin role from yourself" in page
    with app.app_context():
        assert db.session.get(User, mia_id).role == "admin"
        assert not db.session.get(User, users["lee"]).active
        assert db.session.get(User, users["ada"]).active
    post(client, admin, f"/admin/users/{users['lee']}/active", {"active": "1"})
    with app.app_context():
        assert db.session.get(User, users["lee"]).active
    page = post(client, admin, "/admin/users", {"username": "mia"}, follow_redirects=True)
    assert "already exists" in page.get_data(as_text=True)


def test_the_last_active_admin_stays_admin(app, users):
    with app.app_context():
        ada, lee = db.session.get(User, users["ada"]), db.session.get(User, users["lee"])
        accounts.set_role(lee, "admin", acting=ada)
        accounts.set_role(ada, "labeler", acting=lee)  # another admin may demote ada
        with pytest.raises(AccountError, match="last active admin"):
            accounts.set_role(lee, "labeler", acting=ada)
        with pytest.raises(AccountError, match="unknown role 'root'"):
            accounts.set_role(ada, "root", acting=lee)
        assert accounts.label_owner(None).username == "lee"


def test_refused_edits_leave_nothing_for_the_views_to_roll_back(app, users, project_id):
    """Services check before they change anything: a refusal leaves the session clean."""
    with app.app_context():
        project = projects.get_project(project_id)
        ada = db.session.get(User, users["ada"])
        refusals = [
            lambda: projects.update_settings(project, {"name": "Renamed", "audit_share": "2"}),
            lambda: projects.add_class(project, "crater"),
            lambda: projects.delete_class(project.classes[0], merge_into=project.classes[0]),
            lambda: accounts.set_role(ada, "labeler", acting=ada),
            lambda: accounts.set_active(ada, False, acting=ada),
            lambda: accounts.create_user("ada"),
        ]
        for refused in refusals:
            with pytest.raises((projects.ProjectError, AccountError)):
                refused()
            assert not (db.session.dirty or db.session.new or db.session.deleted)
        db.session.commit()
    with app.app_context():
        project = projects.get_project(project_id)
        assert project.name == "HiRISE" and len(project.classes) == 6
        assert db.session.get(User, users["ada"]).role == "admin"
