"""Schema 0009: the migrated tables match the models, and the revision goes down and up again."""
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect

from supervising_ui.database import MIGRATIONS_DIR
from supervising_ui.extensions import db
from supervising_ui.models import ConsensusRun, ImageConsensus, Review


def columns_of(table_name):
    """The column names the database has for a table."""
    return {column["name"] for column in inspect(db.engine).get_columns(table_name)}


def test_migrated_tables_match_the_models_and_downgrade_cleanly(app):
    with app.app_context():
        for model in (ImageConsensus, ConsensusRun, Review):
            assert columns_of(model.__tablename__) == set(model.__table__.columns.keys())
        assert "consensus_method" in columns_of("project")
        downgrade(directory=MIGRATIONS_DIR, revision="0008")
        db.session.remove()
        assert "review" not in inspect(db.engine).get_table_names()
        assert "consensus_method" not in columns_of("project")
        upgrade(directory=MIGRATIONS_DIR)
        assert "consensus_method" in columns_of("project")
        assert columns_of("review") == set(Review.__table__.columns.keys())
