"""Supervising UI: label Mars images in the browser and train classifiers from the labels."""
from pathlib import Path

from flask import Flask

from .config import instance_path_from_env, load_config


def create_app(test_config=None) -> Flask:
    """Build the Flask application; see config.py for where each setting comes from."""
    app = Flask(
        __name__,
        instance_path=instance_path_from_env(),
        instance_relative_config=True,
        template_folder="../templates",
        static_folder="../static",
    )
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    load_config(app, test_config)

    from . import admin, auth, cli, database, jobs, labeling, pages
    database.init_app(app)
    auth.init_app(app)
    jobs.init_app(app)
    for module in (pages, admin, labeling):
        app.register_blueprint(module.blueprint)
    from . import export
    app.register_blueprint(export.blueprint)
    from . import models_page  # also registers the "retrain" job handler
    app.register_blueprint(models_page.blueprint)
    from . import search_views
    from .search import index as search_index
    app.register_blueprint(search_views.blueprint)
    search_index.init_app(app)  # new images, labels and predictions reach the search index
    cli.init_app(app)
    return app
