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

    from . import admin, auth, cli, database, export, jobs, labeling, models_page, pages
    from .learning import retrain
    database.init_app(app)
    auth.init_app(app)
    jobs.init_app(app)
    jobs.register_handler("retrain", retrain.run_retrain)
    for module in (pages, admin, labeling):
        app.register_blueprint(module.blueprint)
    app.register_blueprint(export.blueprint)
    app.register_blueprint(models_page.blueprint)
    cli.init_app(app)
    return app
