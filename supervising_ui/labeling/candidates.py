"""Which images a labeler may be handed: the conditions every pick shares, on both databases.

picking.py (SQLite, a step at a time) and pg_claim.py (PostgreSQL, one statement) both build
their selects from these, so the rules live here once.
"""
from __future__ import annotations

from sqlalchemy import Integer, bindparam, exists, or_

from ..models import Label, Prediction, Skip
from .leases import IMAGE, lease_free_or_mine

# Serving order -> the Prediction column that ranks uncertainty, most uncertain first.
UNCERTAINTY_ORDERS = {
    "least_confidence": Prediction.confidence.asc(),
    "margin": Prediction.margin.asc(),
    "entropy": Prediction.entropy.desc(),
}

_label = Label.__table__
_skip = Skip.__table__


def open_image_conditions(include_put_off, batch_id=None, gold: bool = False) -> list:
    """Return the conditions of an image of project :in_project_id that the user :user_id may
    be handed at :now (the bound name is no image column, so that an UPDATE may use it too).

    Only images of the import batch batch_id (default: the bound :batch_id; a NULL: any image
    of the project). include_put_off: True, False or a boolean SQL expression (the images the
    user put off with Later count only where it is true). The caller bounds label_count (a
    range here would keep SQLite from walking ix_image_pick in random_key order).
    gold: only gold images (True) or none (False): gold images come only from the gold step.
    """
    if batch_id is None:
        batch_id = bindparam("batch_id", type_=Integer)
    conditions = [
        IMAGE.c.project_id == bindparam("in_project_id"),
        lease_free_or_mine(bindparam("user_id"), bindparam("now")),
        ~exists().where(_label.c.image_id == IMAGE.c.id,
                        _label.c.user_id == bindparam("user_id")),
        IMAGE.c.id != bindparam("exclude_image_id"),
        or_(batch_id.is_(None), IMAGE.c.import_batch_id == batch_id),
        IMAGE.c.gold_class_id.is_not(None) if gold else IMAGE.c.gold_class_id.is_(None),
    ]
    if include_put_off is not True:
        not_put_off = ~exists().where(_skip.c.image_id == IMAGE.c.id,
                                      _skip.c.user_id == bindparam("user_id"))
        conditions.append(not_put_off if include_put_off is False
                          else or_(include_put_off, not_put_off))
    return conditions


def listed_conditions(source: str, batch_id=None) -> list:
    """The conditions of the images the gold step ("gold": gold images) or the settle step
    ("settle": images adaptive redundancy wants more labels for) may hand out."""
    if source == "gold":
        return open_image_conditions(False, batch_id, gold=True)
    return [IMAGE.c.labels_wanted > bindparam("labels_per_image"),
            IMAGE.c.label_count < IMAGE.c.labels_wanted,
            *open_image_conditions(False, batch_id)]
