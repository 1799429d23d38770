"""Entry point for gunicorn: ``gunicorn wsgi:app``."""
from supervising_ui import create_app

app = create_app()
