"""search/refresh_sql.py and consensus.majority_sql: the SQL forms of the consensus and search
rules agree with the Python ones, and PostgreSQL's one-statement submit leaves the search index
as a rebuild from the source tables would."""
import itertools
import random

import pytest
from sqlalchemy import func, insert, literal, select, union_all

from supervising_ui.consensus import majority, majority_sql
from supervising_ui.extensions import db
from supervising_ui.labeling.decisions import submit_label
from supervising_ui.models import Image, SearchImage, User, utcnow
from supervising_ui.search import index as search_index
from supervising_ui.search.refresh_sql import search_fields_sql

from ..conftest import TEST_DATABASE_URL
from ..helpers import add_images, add_serving_model, make_project, project_of


def votes_select(votes: dict):
    """A one-off selectable of (label_class_id, votes) rows."""
    rows = [select(literal(class_id).label("label_class_id"), literal(count).label("votes"))
            for class_id, count in votes.items()] or \
        [select(literal(0).label("label_class_id"), literal(0).label("votes")).where(False)]
    return union_all(*rows).subquery() if len(rows) > 1 else rows[0].subquery()


def test_majority_sql_agrees_with_majority(app):
    rng = random.Random(3)
    cases = [{}, {1: 1}, {1: 2, 2: 2}, {1: 1, 2: 2, 3: 2}, {1: 3, 2: 1, 3: 1}]
    cases += [{c: rng.randint(1, 4) for c in rng.sample(range(1, 6), rng.randint(1, 4))}
              for _ in range(40)]
    with app.app_context():
        for votes in cases:
            assert db.session.scalar(majority_sql(votes_select(votes))) == majority(votes), votes


def test_search_fields_sql_agrees_with_search_fields(app):
    with app.app_context():
        for label, predicted, confidence in itertools.product((None, 1, 2), (None, 1, 2),
                                                              (None, 0.25)):
            if predicted is not None and confidence is None:
                continue  # a prediction always has a confidence
            sql = search_fields_sql(literal(label, type_=db.Integer),
                                    literal(predicted, type_=db.Integer),
                                    literal(confidence, type_=db.Float))
            row = db.session.execute(select(*[expression.label(name)
                                              for name, expression in sql.items()])).one()
            assert dict(row._mapping) == search_index.search_fields(label, predicted, confidence)


@pytest.mark.skipif(not TEST_DATABASE_URL, reason="PostgreSQL: set SUPERVISING_UI_TEST_DATABASE_URL")
def test_submits_leave_the_index_as_a_rebuild_would(app, users):
    with app.app_context():
        project_id = make_project(labels_per_image=3)
        image_ids = add_images(project_id, 12)
        # A serving model for half the images: labels that agree and disagree with it.
        add_serving_model(project_id, {image_id: [0.7, 0.2, 0.1] for image_id in image_ids[:6]})
        rng = random.Random(5)
        labelers = [db.session.get(User, user_id) for user_id in users.values()]
        for image_id in image_ids:
            for labeler in rng.sample(labelers, rng.randint(1, 3)):
                submit_label(image_id, project_of(project_id), labeler,
                             rng.choice(["crater", "dark_dune", "other"]),
                             f"{image_id}-{labeler.id}", 2.0, utcnow())
        # One image without a search row (rows added outside the ORM): the submit makes it.
        [bare] = [row[0] for row in db.session.execute(
            insert(Image).returning(Image.id),
            [{"project_id": project_id, "storage_key": "00/00/bare.jpg", "original_name": "bare",
              "content_hash": "f" * 64, "width": 1, "height": 1, "meta": {}}])]
        db.session.commit()
        submit_label(bare, project_of(project_id), labelers[0], "crater", "bare", 1.0, utcnow())

        def index_rows():
            db.session.expire_all()
            return {row.image_id: (row.label_class_id, row.class_id, row.class_confidence,
                                   row.status, row.predicted_class_id)
                    for row in db.session.scalars(select(SearchImage).where(
                        SearchImage.project_id == project_id))}
        after_submits = index_rows()
        assert bare in after_submits and after_submits[bare][0] is not None
        assert db.session.scalar(select(func.count()).select_from(SearchImage).where(
            SearchImage.label_class_id.is_(None), SearchImage.project_id == project_id)) < 13
        search_index.rebuild_project(project_id)
        assert index_rows() == after_submits


def test_the_submit_statement_fits_psycopgs_statement_cache():
    """psycopg converts a statement's parameters afresh on every execution above this length."""
    from psycopg._queries import MAX_CACHED_STATEMENT_LENGTH
    from sqlalchemy.dialects import postgresql

    from supervising_ui.labeling.decisions import _SUBMIT
    compiled = str(_SUBMIT.compile(dialect=postgresql.psycopg.dialect()))
    assert len(compiled) <= MAX_CACHED_STATEMENT_LENGTH, len(compiled)
