"""Entry point for gunicorn: ``gunicorn wsgi:app``."""
import gc

from supervising_ui import create_app

app = create_app()
gc.freeze()  # the loaded app's objects: no later garbage collection walks them (gunicorn_config.py)
