"""Schema 0011: gold answers, adaptive redundancy's columns and the finder's label issues match
the models, and the revision goes down and up again."""
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect

from supervising_ui.database import MIGRATIONS_DIR
from supervising_ui.extensions import db
from supervising_ui.models import Image, LabelIssue, Project

NEW_PROJECT_COLUMNS = {"labels_max", "target_posterior", "settle_preference", "gold_share",
                       "retrain_min_posterior"}


def columns_of(table_name):
    """The column names the database has for a table."""
    return {column["name"] for column in inspect(db.engine).get_columns(table_name)}


def test_0011_matches_the_models_and_goes_down_and_up_again(app):
    with app.app_context():
        for model in (Image, LabelIssue, Project):
            assert columns_of(model.__tablename__) == set(model.__table__.columns.keys())
        keys = inspect(db.engine).get_foreign_keys("image")
        assert any(key["constrained_columns"] == ["gold_class_id"] for key in keys)
        downgrade(directory=MIGRATIONS_DIR, revision="0010")
        db.session.remove()
        assert "label_issue" not in inspect(db.engine).get_table_names()
        assert not NEW_PROJECT_COLUMNS & columns_of("project")
        assert not {"gold_class_id", "labels_wanted"} & columns_of("image")
        upgrade(directory=MIGRATIONS_DIR)
        assert NEW_PROJECT_COLUMNS <= columns_of("project")
        assert columns_of("label_issue") == set(LabelIssue.__table__.columns.keys())
