"""Helpers of the review tests: labels written straight into the tables, a reviewer account."""
from sqlalchemy import select

from supervising_ui.accounts.users import create_user
from supervising_ui.extensions import db
from supervising_ui.models import Image, Label, LabelClass

from ..conftest import PASSWORD, cheap_password_hashes


def vote(project_id: int, image_id: int, user_id: int, class_name: str, seconds=None) -> int:
    """Store user_id's label of class_name on an image (counted on it); return its id."""
    class_id = db.session.scalar(select(LabelClass.id).where(
        LabelClass.project_id == project_id, LabelClass.name == class_name))
    label = Label(project_id=project_id, image_id=image_id, user_id=user_id,
                  label_class_id=class_id, seconds_spent=seconds)
    db.session.add(label)
    db.session.get(Image, image_id).label_count += 1
    db.session.commit()
    return label.id


def make_reviewer(name: str = "rae", role: str = "reviewer") -> int:
    """Create an account (a reviewer unless role says otherwise) with the test password; return its id."""
    with cheap_password_hashes():
        return create_user(name, role=role, password=PASSWORD)[0].id
