"""The field guide on the labeling page: each class's description and a few example images.

Descriptions are edited by admins on the project page (projects/service.describe_class); the
presets come with short ones. Examples are the first images labeled with the class (one
indexed query per class, however large the project).
"""
from __future__ import annotations

from sqlalchemy import select

from ..extensions import db
from ..models import Label, LabelClass

# Example thumbnails shown per class.
EXAMPLES_PER_CLASS = 4


def field_guide(project_id: int) -> list[dict]:
    """Return per class, in display order: its name, description and example image ids."""
    classes = db.session.execute(
        select(LabelClass.id, LabelClass.name, LabelClass.description)
        .where(LabelClass.project_id == project_id).order_by(LabelClass.position)).all()
    guide = []
    for class_id, name, description in classes:
        examples = db.session.scalars(
            select(Label.image_id).where(Label.label_class_id == class_id)
            .order_by(Label.id).limit(EXAMPLES_PER_CLASS)).all()
        guide.append({"name": name, "description": description or "",
                      "examples": list(dict.fromkeys(examples))})
    db.session.commit()  # end the read transaction
    return guide
