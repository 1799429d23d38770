"""Atlas search: facets, the slider, groups, the JSON API's errors and the index staying current."""
import csv
import io
import uuid
from urllib.parse import urlencode

import pytest

from supervising_ui.accounts import membership
from supervising_ui.extensions import db
from supervising_ui.models import Label, LabelClass, SearchImage, SearchMeta
from supervising_ui.projects import service as projects
from supervising_ui.search import index, snapshot

from ..helpers import add_images, add_serving_model, add_stored_images, make_project

CLASSES = ("crater", "dark_dune", "other")
IMAGES = 24


def probabilities(i: int) -> list[float]:
    """A prediction for image number i: class i % 3 at 0.5, 0.6, ... 0.9 (cycling)."""
    best, top = i % 3, 0.5 + (i % 5) * 0.1
    rest = (1.0 - top) / 2
    return [top if k == best else rest for k in range(3)]


@pytest.fixture
def atlas(app, users):
    """A project of 24 images with metadata, a serving model and two human labels."""
    with app.app_context():
        project_id = make_project("mars", classes=CLASSES, group_column="source_id")
        ids = add_images(project_id, IMAGES, meta=lambda i: {
            "instrument": "HiRISE" if i % 2 == 0 else "CTX", "sol": 100 + 10 * i,
            "source_id": f"ESP_{i % 4}"})
        add_serving_model(project_id, {image_id: probabilities(i) for i, image_id in enumerate(ids)})
        class_ids = {c.name: c.id for c in db.session.query(LabelClass).filter_by(
            project_id=project_id)}
        # Image 0: the model says crater (0.5), a human says other. Image 3: both say crater.
        for image_id, name in ((ids[0], "other"), (ids[3], "crater")):
            db.session.add(Label(project_id=project_id, image_id=image_id, user_id=users["lee"],
                                 label_class_id=class_ids[name]))
        db.session.commit()
    return {"project_id": project_id, "ids": ids}


def search(client, atlas, query="", status=200):
    """GET the search API and return its JSON, checking the status."""
    response = client.get(f"/api/projects/{atlas['project_id']}/search?{query}")
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_json()


def all_items(client, atlas, query="", per_page=5):
    """Page through a search and return every item."""
    items, page = [], 1
    while True:
        answer = search(client, atlas, f"{query}&page={page}&per_page={per_page}")
        items += answer["items"]
        if len(answer["items"]) < per_page:
            return items, answer["total"]
        page += 1


def test_facet_counts_equal_the_items_the_same_query_pages_through(client, auth, atlas):
    auth.login("lee")
    base = {"min_confidence": "0.6", "meta.instrument": "HiRISE"}
    facets = search(client, atlas, urlencode(base))["facets"]
    checked = 0
    for facet, counts in facets.items():
        if set(counts) == {"min", "max"}:
            continue  # a numeric column: a range, not counts
        for value, count in counts.items():
            query = {name: given for name, given in base.items() if name != facet}
            items, total = all_items(client, atlas, urlencode(query | {facet: value}))
            assert total == count == len(items) == len({i["image_id"] for i in items}), \
                (facet, value)
            checked += 1
    assert checked >= 15


def test_counts_update_across_facets_but_not_within_one(client, auth, atlas):
    auth.login("lee")
    everything = search(client, atlas)["facets"]
    assert sum(everything["class"].values()) == IMAGES
    assert everything["meta.instrument"] == {"HiRISE": 12, "CTX": 12}
    craters = search(client, atlas, "class=crater")
    # Ticking crater leaves the other classes' counts in place (own facet) ...
    assert craters["facets"]["class"] == everything["class"]
    # ... and narrows every other facet.
    assert sum(craters["facets"]["meta.instrument"].values()) == craters["total"]
    assert craters["total"] == everything["class"]["crater"]
    assert craters["facets"]["meta.instrument"] != everything["meta.instrument"]


def test_or_within_a_facet_and_across_facets(client, auth, atlas):
    auth.login("lee")
    crater = search(client, atlas, "class=crater")["total"]
    dune = search(client, atlas, "class=dark_dune")["total"]
    assert search(client, atlas, "class=crater&class=dark_dune")["total"] == crater + dune
    both, _ = all_items(client, atlas, "class=crater&meta.instrument=CTX")
    assert both and all(item["class"] == "crater" and item["metadata"]["instrument"] == "CTX"
                        for item in both)
    hirise = search(client, atlas, "meta.source_id=ESP_0")["total"]
    two = search(client, atlas, "meta.source_id=ESP_0&meta.source_id=ESP_1")["total"]
    assert two == hirise + search(client, atlas, "meta.source_id=ESP_1")["total"]


def test_class_prefers_the_human_label_at_confidence_one(client, auth, atlas):
    auth.login("lee")
    items, _ = all_items(client, atlas, per_page=50)
    first = next(item for item in items if item["image_id"] == atlas["ids"][0])
    assert first["predicted"] == "crater" and first["confidence"] == pytest.approx(0.5)
    assert first["label"] == "other" and first["class"] == "other"
    assert first["class_confidence"] == 1.0
    # The slider filters the class confidence: a human label always passes.
    strict = search(client, atlas, "min_confidence=0.95&per_page=50")
    assert {item["image_id"] for item in strict["items"]} == {atlas["ids"][0], atlas["ids"][3]}
    assert search(client, atlas, "label=other")["total"] == 1
    assert search(client, atlas, "predicted=crater&label=other")["total"] == 1
    status = search(client, atlas)["facets"]["status"]
    assert status == {"labeled": 2, "unlabeled": IMAGES - 2, "disagree": 1}
    assert search(client, atlas, "status=disagree")["items"][0]["image_id"] == atlas["ids"][0]


def test_the_confidence_slider_and_numeric_ranges(client, auth, atlas):
    auth.login("lee")
    items, total = all_items(client, atlas, "min_confidence=0.7&max_confidence=0.85")
    assert total == len(items) > 0
    assert all(0.7 <= item["class_confidence"] <= 0.85 for item in items)
    expected = sum(1 for i in range(IMAGES) if i not in (0, 3)
                   and 0.7 <= probabilities(i)[i % 3] <= 0.85)
    assert total == expected
    assert search(client, atlas)["facets"]["meta.sol"] == {"min": 100, "max": 330}
    ranged = search(client, atlas, "meta.sol.min=150&meta.sol.max=200")
    assert ranged["total"] == 6
    assert ranged["facets"]["meta.sol"] == {"min": 100, "max": 330}  # its own filter left out


def test_sort_orders_and_paging(client, auth, atlas):
    auth.login("lee")
    down, _ = all_items(client, atlas, "sort=confidence_desc", per_page=7)
    # The model's confidence orders the results (images without a prediction last), not the
    # class confidence, which is 1 for every human label.
    predicted = [item["confidence"] for item in down if item["confidence"] is not None]
    assert predicted == sorted(predicted, reverse=True)
    assert [item["confidence"] for item in down][len(predicted):] == \
        [None] * (len(down) - len(predicted))
    up, _ = all_items(client, atlas, "sort=confidence_asc", per_page=7)
    assert [item["confidence"] for item in up][:len(predicted)] == sorted(predicted)
    names, _ = all_items(client, atlas, "sort=filename", per_page=7)
    assert [item["filename"] for item in names] == sorted(item["filename"] for item in names)
    shuffled, _ = all_items(client, atlas, "sort=random", per_page=7)
    again, _ = all_items(client, atlas, "sort=random", per_page=7)
    assert [i["image_id"] for i in shuffled] == [i["image_id"] for i in again]
    assert sorted(i["image_id"] for i in shuffled) == sorted(atlas["ids"])


def test_free_text_matches_file_names_classes_and_metadata(client, auth, atlas):
    auth.login("lee")
    assert search(client, atlas, "q=img_00007")["total"] == 1
    assert search(client, atlas, "q=ESP_2")["total"] == IMAGES // 4
    assert search(client, atlas, "q=dune")["total"] == search(client, atlas, "class=dark_dune")[
        "total"]  # every image has a class and a prediction here; dunes are both
    assert search(client, atlas, "q=ctx esp_1")["total"] == search(
        client, atlas, "meta.instrument=CTX&meta.source_id=ESP_1")["total"]
    assert search(client, atlas, "q=%25")["total"] == 0  # LIKE wildcards are literal


def test_group_counts_equal_searches(client, auth, atlas):
    auth.login("lee")
    answer = client.get(f"/api/projects/{atlas['project_id']}/groups?class=crater"
                        "&min_confidence=0.6&min_count=1").get_json()
    assert answer["total"] == len(answer["groups"]) > 0
    counts = [group["count"] for group in answer["groups"]]
    assert counts == sorted(counts, reverse=True)
    for group in answer["groups"]:
        same = search(client, atlas, f"class=crater&min_confidence=0.6"
                                     f"&meta.source_id={group['group']}")
        assert same["total"] == group["count"]
        assert group["images"] == IMAGES // 4
    high = client.get(f"/api/projects/{atlas['project_id']}/groups?class=crater"
                      f"&min_confidence=0.6&min_count={max(counts)}").get_json()
    assert all(group["count"] == max(counts) for group in high["groups"])


@pytest.mark.parametrize("query, named", [
    ("colour=red", "colour"), ("class=volcano", "volcano"), ("label=volcano", "volcano"),
    ("meta.camera=x", "camera"), ("min_confidence=high", "min_confidence"),
    ("min_confidence=1.5", "min_confidence"), ("max_confidence=nan", "max_confidence"),
    ("per_page=501", "per_page"), ("page=0", "page"), ("page=x", "page"),
    ("status=done", "done"), ("sort=size", "size"), ("meta.sol.min=abc", "meta.sol.min"),
    ("page=1&page=2", "page"), ("meta.sol.max=inf", "meta.sol.max"),
])
def test_bad_parameters_get_400_naming_them(client, auth, atlas, query, named):
    auth.login("lee")
    error = search(client, atlas, query, status=400)["error"]
    assert named in error


def test_bad_group_parameters_get_400(client, auth, atlas):
    auth.login("lee")
    for query, named in (("class=volcano", "volcano"), ("min_count=0", "min_count"),
                         ("meta.sol=1", "meta.sol"), ("min_confidence=-1", "min_confidence")):
        response = client.get(f"/api/projects/{atlas['project_id']}/groups?{query}")
        assert response.status_code == 400 and named in response.get_json()["error"]


def test_anonymous_requests_are_refused_and_tokens_work(client, app, atlas):
    for path in (f"/api/projects/{atlas['project_id']}/search",
                 f"/api/projects/{atlas['project_id']}/groups"):
        assert client.get(path).status_code == 401
    assert client.get(f"/projects/{atlas['project_id']}/search").status_code == 302
    with app.app_context():
        from supervising_ui.accounts.users import create_api_token
        from supervising_ui.models import User
        token = create_api_token(db.session.query(User).filter_by(username="liu").one())
    response = client.get(f"/api/projects/{atlas['project_id']}/search?class=crater",
                          headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200 and response.get_json()["total"] > 0


def test_a_user_who_may_not_see_the_project_gets_404(app, client, auth, atlas):
    with app.app_context():  # members only, lee its one member: liu may not see it
        membership.change_members(projects.get_project(atlas["project_id"]), add=["lee"],
                                  members_only=True)
    auth.login("liu")
    project_id = atlas["project_id"]
    for path in (f"/api/projects/{project_id}/search", f"/projects/{project_id}/search",
                 f"/api/projects/{project_id}/groups", f"/projects/{project_id}/search.csv",
                 f"/projects/{project_id}/search/images/{atlas['ids'][0]}",
                 f"/api/images/{atlas['ids'][0]}/thumbnail"):
        assert client.get(path).status_code == 404, path


def test_label_submit_and_undo_reach_the_index(client, auth, atlas):
    auth.login("liu")
    image_id = atlas["ids"][1]  # the model says dark_dune at 0.6
    response = client.post(f"/api/images/{image_id}/labels", json={
        "label": "crater", "request_id": str(uuid.uuid4())},
        headers={"X-CSRFToken": auth.csrf_token})
    assert response.status_code == 201
    labeled = search(client, atlas, "label=crater&per_page=50")["items"]
    assert image_id in {item["image_id"] for item in labeled}
    assert search(client, atlas, "status=disagree")["total"] == 2
    client.post(f"/api/projects/{atlas['project_id']}/undo",
                headers={"X-CSRFToken": auth.csrf_token})
    assert search(client, atlas, "status=disagree")["total"] == 1
    item = next(i for i in search(client, atlas, "per_page=50")["items"]
                if i["image_id"] == image_id)
    assert item["label"] is None and item["class"] == "dark_dune"


def test_new_predictions_a_merge_and_a_rebuild_keep_the_index_right(app, client, auth, atlas):
    auth.login("lee")
    before = search(client, atlas)
    with app.app_context():
        add_serving_model(atlas["project_id"], {image_id: [0.05, 0.05, 0.9]
                                                for image_id in atlas["ids"]}, version=2)
    served = search(client, atlas)
    assert served["facets"]["predicted"] == {"crater": 0, "dark_dune": 0, "other": IMAGES}
    assert {item["model_version"] for item in served["items"]} == {2}
    with app.app_context():
        project = projects.get_project(atlas["project_id"])
        other = next(c for c in project.classes if c.name == "other")
        crater = next(c for c in project.classes if c.name == "crater")
        projects.delete_class(other, merge_into=crater)
    merged = search(client, atlas)
    assert merged["facets"]["class"] == {"crater": IMAGES, "dark_dune": 0}
    with app.app_context():
        rows = lambda: sorted(tuple(row) for row in db.session.query(
            SearchImage.image_id, SearchImage.class_id, SearchImage.status,
            SearchImage.label_class_id).all())
        incremental = rows()
        metadata = db.session.query(SearchMeta).count()
        assert index.rebuild_project(atlas["project_id"]) == IMAGES
        assert rows() == incremental and db.session.query(SearchMeta).count() == metadata
    assert search(client, atlas) == merged
    assert before["total"] == merged["total"]


def test_a_fresh_process_and_a_catching_up_one_agree(app, client, auth, atlas):
    auth.login("lee")
    search(client, atlas)  # loads the snapshot
    with app.app_context():
        add_images(atlas["project_id"], 3, start=100, meta={"instrument": "MAHLI", "sol": 7})
    caught_up = search(client, atlas, "per_page=50&sort=filename")
    assert caught_up["total"] == IMAGES + 3
    assert caught_up["facets"]["meta.instrument"]["MAHLI"] == 3
    with app.app_context():
        app.extensions["search_snapshots"].clear()
    assert search(client, atlas, "per_page=50&sort=filename") == caught_up


def test_images_indexed_before_the_index_existed_are_filled_in(app, client, auth, atlas):
    with app.app_context():
        db.session.query(SearchMeta).delete()
        db.session.query(SearchImage).delete()
        db.session.commit()
        app.extensions.get("search_snapshots", {}).clear()
        assert snapshot.current(atlas["project_id"]).size == 0
    auth.login("lee")
    assert search(client, atlas)["total"] == IMAGES
    assert search(client, atlas, "label=other")["total"] == 1


def test_csv_download_neutralises_formulas(app, client, auth, atlas):
    with app.app_context():
        add_images(atlas["project_id"], 1, start=200, meta={"instrument": "=HYPERLINK(1)"})
    auth.login("lee")
    response = client.get(f"/projects/{atlas['project_id']}/search.csv?sort=filename")
    assert response.status_code == 200 and "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert len(rows) == IMAGES + 1
    assert list(rows[0])[:8] == ["image_id", "filename", "label", "predicted", "confidence",
                                 "class", "class_confidence", "model_version"]
    assert {"instrument", "sol", "source_id"} <= set(rows[0])
    assert any(row["instrument"] == "'=HYPERLINK(1)" for row in rows)
    assert client.get(f"/projects/{atlas['project_id']}/search.csv?class=x").status_code == 400


def test_pages_detail_and_thumbnail(app, client, auth, atlas):
    with app.app_context():
        stored = add_stored_images(app, atlas["project_id"], 1)
    auth.login("lee")
    project_id = atlas["project_id"]
    page = client.get(f"/projects/{project_id}/search").get_data(as_text=True)
    assert "search.js" in page and "<script>" not in page
    assert "search.js" in client.get(f"/projects/{project_id}/groups").get_data(as_text=True)
    detail = client.get(f"/projects/{project_id}/search/images/{atlas['ids'][0]}")
    text = detail.get_data(as_text=True)
    assert detail.status_code == 200 and "lee" in text and "other" in text and "v1" in text
    assert client.get(f"/projects/{project_id}/search/images/999999").status_code == 404
    thumbnail = client.get(f"/api/images/{stored[0]}/thumbnail")
    assert thumbnail.status_code == 200 and thumbnail.mimetype == "image/jpeg"
    assert client.get(f"/api/images/{atlas['ids'][0]}/thumbnail").status_code == 404  # no file
    home = client.get("/").get_data(as_text=True)
    assert f"/projects/{project_id}/search" in home


def test_rebuild_command(app, runner, atlas):
    result = runner.invoke(args=["search-rebuild", "mars"])
    assert result.exit_code == 0 and f"Indexed {IMAGES} images" in result.output
    missing = runner.invoke(args=["search-rebuild", "venus"])
    assert missing.exit_code != 0 and "no project called 'venus'" in missing.output
