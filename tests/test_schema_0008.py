"""Schema 0008 (field guide, unsure, imported labels, who cancelled a job) goes down to 0007
and up again, on SQLite and PostgreSQL."""
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect

from supervising_ui.database import MIGRATIONS_DIR
from supervising_ui.extensions import db


def columns_of(table_name):
    """The column names the database has for a table."""
    return {column["name"] for column in inspect(db.engine).get_columns(table_name)}


def test_schema_0008_goes_down_and_up_again(app):
    added = {"label_class": "description", "skip": "comment", "label": "imported",
             "job": "cancelled_by_id"}
    with app.app_context():
        assert all(column in columns_of(table) for table, column in added.items())
        downgrade(directory=MIGRATIONS_DIR, revision="0007")
        db.session.remove()
        assert not any(column in columns_of(table) for table, column in added.items())
        upgrade(directory=MIGRATIONS_DIR)
        assert all(column in columns_of(table) for table, column in added.items())
        foreign = inspect(db.engine).get_foreign_keys("job")
        assert any(key["constrained_columns"] == ["cancelled_by_id"] for key in foreign)
