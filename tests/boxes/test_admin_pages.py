"""Who may use the admin and reviewer sides of boxes (403 for labelers), the review page, and
the admin's import form."""
from sqlalchemy import func, select

from supervising_ui.extensions import db
from supervising_ui.models import Box, Observation

from .helpers import make_observation


def _ids(app):
    with app.app_context():
        observation_id, tiles = make_observation()
        return db.session.get(Observation, observation_id).project_id, observation_id, tiles


def test_labelers_get_403_on_review_import_and_proposals(app, client, auth):
    project_id, observation_id, _ = _ids(app)
    auth.login("lee")
    headers = {"X-CSRFToken": auth.csrf_token}
    base = f"/projects/{project_id}/observations/{observation_id}"
    assert client.get(f"{base}/landmarks/review").status_code == 403
    assert client.get(f"{base}/boxes/import").status_code == 403
    assert client.post(f"{base}/boxes/import", headers=headers).status_code == 403
    assert client.post(f"/api/observations/{observation_id}/proposals",
                       headers=headers).status_code == 403
    assert client.post("/api/landmarks/1/review", json={"decision": "accept"},
                       headers=headers).status_code == 403


def test_the_admin_sees_the_review_page_and_imports_a_csv(app, client, auth):
    project_id, observation_id, _ = _ids(app)
    auth.login("ada")
    base = f"/projects/{project_id}/observations/{observation_id}"
    page = client.get(f"{base}/landmarks/review")
    assert page.status_code == 200 and b"No landmarks yet" in page.data
    form = client.get(f"{base}/boxes/import")
    assert form.status_code == 200 and b'name="annotator"' in form.data
    missing = client.post(f"{base}/boxes/import", data={"csrf_token": auth.csrf_token,
                                                         "annotator": "ann-1", "format": "csv"})
    assert missing.status_code == 400 and b"choose the annotation file" in missing.data
    assert client.get(f"/projects/{project_id}/observations/999/boxes/import").status_code == 404
    with app.app_context():
        assert db.session.scalar(select(func.count(Box.id))) == 0
