"""Checks the job worker runs once a minute, as a Huey periodic task (the idle fine-tune, say).

Each worker's consumer queues the task every minute, so with several workers a check may run
more than once a minute: checks must be safe to repeat (jobs.submit refuses a second retrain).
"""
import logging
from typing import Callable

from flask import Flask
from huey import crontab

from ..extensions import db

log = logging.getLogger(__name__)

# What runs each minute, in an app context (registered in create_app).
CHECKS: list[Callable[[], object]] = []
# A minute's task that could not start within this many seconds (a long job ran) is dropped.
EXPIRES_SECONDS = 50


def register(check: Callable[[], object]) -> None:
    """Have the job worker call check() once a minute."""
    if check not in CHECKS:
        CHECKS.append(check)


def add_task(app: Flask, huey):
    """Register the minutely task on huey, bound to app; return Huey's task wrapper."""

    def run_checks() -> None:
        with app.app_context():
            try:
                for check in CHECKS:
                    try:
                        check()
                    except Exception:  # one failing check must not stop the others
                        log.exception("minutely check %s failed", check.__name__)
                        db.session.rollback()
            finally:
                db.session.remove()

    return huey.periodic_task(crontab(minute="*"), name="minutely", expires=EXPIRES_SECONDS)(run_checks)
