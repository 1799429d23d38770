"""The project settings API for scripts (admin token): every setting as JSON, and a PATCH that
validates all of it before anything is saved (projects.service.update_settings, the settings
form's own rules), then queues the consensus job where the change needs one."""
from __future__ import annotations

from ..echo import shorten
from ..extensions import db
from ..models import CONSENSUS_METHODS, Project
from ..review import consensus_jobs
from .service import ProjectError, update_settings

# What PATCH may change; members_only and priority_batch_id have their own pages.
WRITABLE = ("name", "description", "group_column", "labels_per_image", "labels_max",
            "target_posterior", "settle_preference", "gold_share", "retrain_min_posterior",
            "serving_order", "audit_share", "hide_suggestion_share", "retrain_every",
            "model_input", "consensus_method")
READ_ONLY = ("id", "members_only", "priority_batch_id")


def settings_payload(project: Project) -> dict:
    """Every setting of the project as JSON-ready values."""
    values = {name: getattr(project, name) for name in WRITABLE + READ_ONLY
              if name != "model_input"}
    return values | {"model_input": "color" if project.color_input else "grayscale"}


def patch_settings(project: Project, body) -> dict:
    """Change the settings a JSON object names; ProjectError on any bad key or value, before
    anything is saved. Returns every setting afterwards."""
    if not isinstance(body, dict) or not body:
        raise ProjectError("send a JSON object of the settings to change")
    unknown = sorted(set(body) - set(WRITABLE))
    if unknown:
        raise ProjectError(f"settings that cannot be changed here: {shorten(', '.join(unknown))} "
                           f"(changeable: {', '.join(WRITABLE)})")
    method = body.get("consensus_method", project.consensus_method)
    if method not in CONSENSUS_METHODS:
        raise ProjectError(f"consensus method must be one of {', '.join(CONSENSUS_METHODS)}")
    form = {}
    for name, value in body.items():
        if name == "consensus_method":
            continue
        if name == "labels_max" and value is None:
            value = 0  # off: a fixed count
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise ProjectError(f"{name} must be a string or a number")
        form[name] = str(value)
    update_settings(project, form)  # validates everything, then commits
    project.consensus_method = method
    db.session.commit()
    consensus_jobs.settings_changed(project)
    return settings_payload(project)
