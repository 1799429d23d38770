"""Schema 0010: the migrated tables match the models (columns and indexes), and the revision
goes down to 0009 and up again, on SQLite and PostgreSQL."""
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect

from supervising_ui.database import MIGRATIONS_DIR
from supervising_ui.extensions import db
from supervising_ui.models import (
    Box,
    Landmark,
    Observation,
    ObservationTile,
    Project,
    TileDone,
    TileLease,
)

TABLES = (Observation, ObservationTile, TileLease, TileDone, Box, Landmark)


def columns_of(table_name):
    """The column names the database has for a table."""
    return {column["name"] for column in inspect(db.engine).get_columns(table_name)}


def index_names(table_name):
    """The names of the indexes the database has on a table."""
    return {index["name"] for index in inspect(db.engine).get_indexes(table_name)}


def test_migrated_tables_match_the_models(app):
    with app.app_context():
        for model in TABLES:
            assert columns_of(model.__tablename__) == set(model.__table__.columns.keys())
            expected = {index.name for index in model.__table__.indexes}
            assert expected <= index_names(model.__tablename__)
        assert {"labelers_per_tile", "landmark_min_votes"} <= columns_of("project")


def test_schema_0010_goes_down_and_up_again(app):
    with app.app_context():
        downgrade(directory=MIGRATIONS_DIR, revision="0009")
        db.session.remove()
        names = inspect(db.engine).get_table_names()
        assert not {model.__tablename__ for model in TABLES} & set(names)
        assert "labelers_per_tile" not in columns_of("project")
        upgrade(directory=MIGRATIONS_DIR)
        assert columns_of("landmark") == set(Landmark.__table__.columns.keys())
        assert "labelers_per_tile" in columns_of("project")


def test_new_project_defaults(app):
    with app.app_context():
        project = Project(name="defaults")
        db.session.add(project)
        db.session.commit()
        assert project.labelers_per_tile == 2
        assert project.landmark_min_votes is None
