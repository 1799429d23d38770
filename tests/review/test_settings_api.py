"""The settings and export API for scripts (admin token): every setting, a PATCH checked as a
whole, exports with the consensus method's class and posterior; labelers get 403."""
from supervising_ui.accounts.users import create_api_token
from supervising_ui.extensions import db
from supervising_ui.models import Job, User

from ..helpers import add_images, make_project
from .helpers import vote


def bearer(app, user_id):
    with app.app_context():
        return {"Authorization": f"Bearer {create_api_token(db.session.get(User, user_id))}"}


def test_settings_get_and_patch_with_an_admin_token(app, client, users):
    with app.app_context():
        project_id = make_project()
    admin = bearer(app, users["ada"])
    url = f"/api/projects/{project_id}/settings"
    got = client.get(url, headers=admin).get_json()
    assert got["consensus_method"] == "majority" and got["labels_max"] is None
    assert got["gold_share"] == 0.05 and got["retrain_min_posterior"] == 0.7
    changed = client.patch(url, headers=admin, json={
        "consensus_method": "dawid-skene", "labels_per_image": 2, "labels_max": 5,
        "target_posterior": 0.95, "gold_share": 0.1, "retrain_min_posterior": 0.8})
    assert changed.status_code == 200, changed.get_json()
    assert {key: changed.get_json()[key] for key in (
        "consensus_method", "labels_per_image", "labels_max", "target_posterior", "gold_share",
        "retrain_min_posterior")} == {"consensus_method": "dawid-skene", "labels_per_image": 2,
                                      "labels_max": 5, "target_posterior": 0.95,
                                      "gold_share": 0.1, "retrain_min_posterior": 0.8}
    with app.app_context():
        assert db.session.query(Job).filter_by(kind="consensus").count() == 1
    for bad in ({"labels_max": 1}, {"gold_share": 2}, {"consensus_method": "vote"},
                {"members_only": True}, {"nonsense": 1}, {"labels_per_image": [2]}, [], {}):
        refused = client.patch(url, headers=admin, json=bad)
        assert refused.status_code == 400 and "error" in refused.get_json(), bad
    # A refused PATCH saves nothing, not even its valid part.
    client.patch(url, headers=admin, json={"audit_share": 0.5, "gold_share": 7})
    assert client.get(url, headers=admin).get_json()["audit_share"] == 0.2
    off = client.patch(url, headers=admin, json={"labels_max": None}).get_json()
    assert off["labels_max"] is None
    labeler = bearer(app, users["lee"])
    assert client.get(url, headers=labeler).status_code == 403
    assert client.patch(url, headers=labeler, json={"gold_share": 0}).status_code == 403
    assert client.get("/api/projects/9999/settings", headers=admin).status_code == 404


def test_export_api_carries_the_consensus_class_and_posterior(app, client, users):
    with app.app_context():
        project_id = make_project()
        images = add_images(project_id, 2)
        for user, name in ((users["lee"], "crater"), (users["liu"], "crater"),
                           (users["ada"], "other")):
            vote(project_id, images[0], user, name)
    admin = bearer(app, users["ada"])
    url = f"/api/projects/{project_id}/export"
    rows = client.get(url + "?kind=consensus&format=json", headers=admin).get_json()
    assert [(row["class"], row["posterior"], row["n_labels"], row["method"]) for row in rows] \
        == [("crater", round(2 / 3, 4), 3, "majority")]
    as_csv = client.get(url + "?kind=labels&format=csv", headers=admin)
    assert as_csv.mimetype == "text/csv" and as_csv.get_data(as_text=True).count("\n") == 4
    assert client.get(url + "?kind=nope", headers=admin).status_code == 400
    assert client.get(url, headers=bearer(app, users["lee"])).status_code == 403


def test_the_settings_form_takes_the_team_settings(app, client, auth, users):
    with app.app_context():
        project_id = make_project()
    auth.login("ada")
    page = client.get(f"/admin/projects/{project_id}").get_data(as_text=True)
    assert 'name="labels_max"' in page and 'name="gold_share"' in page
    url = f"/admin/projects/{project_id}/settings"
    client.post(url, data={"csrf_token": auth.csrf_token, "labels_per_image": "2",
                           "labels_max": "4", "target_posterior": "0.9", "gold_share": "0.1",
                           "settle_preference": "0.5", "retrain_min_posterior": "0.6"})
    admin = bearer(app, users["ada"])
    got = client.get(f"/api/projects/{project_id}/settings", headers=admin).get_json()
    assert (got["labels_max"], got["target_posterior"], got["gold_share"],
            got["settle_preference"], got["retrain_min_posterior"]) == (4, 0.9, 0.1, 0.5, 0.6)
    client.post(url, data={"csrf_token": auth.csrf_token, "labels_max": "0"})
    assert client.get(f"/api/projects/{project_id}/settings",
                      headers=admin).get_json()["labels_max"] is None
