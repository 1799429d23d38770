"""The search's free text: words counted once, capped, and matched outside the project's search
lock; and the search CSV of a project whose name is not Latin-1."""
import threading
from urllib.parse import quote

import pytest

from supervising_ui.search import query as search_query
from supervising_ui.search import snapshot, text
from supervising_ui.search.query import MAX_WORDS, SearchError, search_words

from .test_search import atlas, search  # noqa: F401 (the fixture)


def test_words_are_counted_once_and_a_word_inside_another_is_dropped():
    assert search_words("Crater crater CRATER") == ("crater",)
    assert search_words("esp es hirise ESP_1") == ("hirise", "esp_1")
    assert search_words("") == ()


def test_more_distinct_words_than_the_cap_are_refused():
    many = " ".join(f"w{number:02d}" for number in range(MAX_WORDS + 1))
    with pytest.raises(SearchError, match=f"at most {MAX_WORDS}"):
        search_words(many)
    assert len(search_words(" ".join(f"w{number:02d}" for number in range(MAX_WORDS)))) == \
        MAX_WORDS


def test_a_q_of_1900_repeated_words_is_one_word(client, auth, atlas, monkeypatch):  # noqa: F811
    """The audit's case: 1,900 repeated words each scanned the file names under the lock."""
    auth.login("lee")
    scanned = []
    real = snapshot.filename_ids
    monkeypatch.setattr(text, "filename_ids", lambda *args: scanned.append(args) or real(*args))
    answer = search(client, atlas, "q=" + quote(" ".join(["img"] * 1900)))
    assert answer["total"] == 24 and len(scanned) == 1
    refused = search(client, atlas, "q=" + quote(" ".join(f"w{n}" for n in range(50))), 400)
    assert "at most" in refused["error"]


def test_words_are_matched_outside_the_search_lock(client, auth, atlas, monkeypatch):  # noqa: F811
    auth.login("lee")
    held = []
    real = text.resolve

    def resolve(project_id, values, words, classes):
        held.append(snapshot.current(project_id).lock.locked())
        return real(project_id, values, words, classes)

    monkeypatch.setattr(text, "resolve", resolve)
    answer = search(client, atlas, "q=hirise")
    assert answer["total"] == 12 and held == [False]
    csv_lines = client.get(f"/projects/{atlas['project_id']}/search.csv?q=ctx").get_data(
        as_text=True).splitlines()
    assert len(csv_lines) == 1 + 12 and held == [False, False]


def test_a_search_elsewhere_waits_for_no_one_while_words_are_matched(client, auth, atlas,  # noqa: F811
                                                                     monkeypatch):
    """While one search matches its words, another search of the same project is answered."""
    auth.login("lee")
    matching, release = threading.Event(), threading.Event()
    real = text.resolve

    def slow_resolve(*args):
        matching.set()
        release.wait(10)
        return real(*args)

    monkeypatch.setattr(text, "resolve", slow_resolve)
    app = client.application
    slow = app.test_client()
    slow.set_cookie("session", client.get_cookie("session").value)
    answers = []
    thread = threading.Thread(target=lambda: answers.append(slow.get(
        f"/api/projects/{atlas['project_id']}/search?q=hirise").status_code))
    thread.start()
    try:
        assert matching.wait(10)
        assert search(client, atlas, "min_confidence=0.5")["total"] == 24, \
            "answered while the other search matched its words"
    finally:
        release.set()
        thread.join(10)
    assert answers == [200]


def test_the_search_csv_of_a_project_named_in_other_letters(app, client, auth, atlas):  # noqa: F811
    from supervising_ui.extensions import db
    from supervising_ui.models import Project
    with app.app_context():
        db.session.get(Project, atlas["project_id"]).name = "Марс 火星 Ærø"
        db.session.commit()
    auth.login("lee")
    response = client.get(f"/projects/{atlas['project_id']}/search.csv")
    assert response.status_code == 200
    disposition = response.headers["Content-Disposition"]
    disposition.encode("latin-1")  # a header must be Latin-1
    assert disposition.startswith('attachment; filename="')
    assert "filename*=UTF-8''" + quote("Марс_火星_Ærø-search.csv", safe="") in disposition
    assert len(response.get_data(as_text=True).splitlines()) == 1 + 24


def test_the_query_module_keeps_the_text_as_given():
    query = search_query.parse_search([("q", "  Crater  crater ")], ["crater"], {})
    assert query.text == "Crater  crater" and query.words == ("crater",)
