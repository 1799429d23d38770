"""Background work: enqueue, run inside an app context, report progress."""
from flask import Flask


def init_app(app: Flask) -> None:
    """Bind the job queue to app."""
