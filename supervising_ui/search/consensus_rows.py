"""The search rows' class from the project's consensus method.

A submit writes an image's majority into its search row (index.refresh_images, in the
labeling transaction); under Dawid-Skene, or where a reviewer or a gold answer settled an
image, the consensus job then writes the class it stored (set_consensus_classes), so the
search's class facet follows the project's consensus. A label that arrives after the job
shows its majority until the next run, as consensus.consensus_details does.
"""
from __future__ import annotations

from collections import defaultdict

from sqlalchemy import select

from ..extensions import db
from ..models import SearchImage
from .index import _write_updates, search_fields

_search = SearchImage.__table__


def set_consensus_classes(project_id: int, classes: dict[int, int | None]) -> int:
    """Write each image's consensus class (None: none) into its search row where it differs;
    return how many rows changed. Runs in the caller's transaction."""
    connection = db.session.connection()
    updates = defaultdict(list)
    for image_id, old_class, predicted, confidence in connection.execute(
            select(_search.c.image_id, _search.c.label_class_id, _search.c.predicted_class_id,
                   _search.c.confidence).where(_search.c.project_id == project_id)):
        if image_id in classes and classes[image_id] != old_class:
            label = classes[image_id]
            updates[project_id].append({"b_image_id": image_id, "label_class_id": label,
                                        **search_fields(label, predicted, confidence)})
    return _write_updates(updates, connection)
