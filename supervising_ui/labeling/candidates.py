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


def open_image_conditions(include_put_off: bool, batch_param: str = "batch_id") -> list:
    """Return the conditions of an image of project :in_project_id that the user :user_id may
    be handed at :now (the bound name is no image column, so that an UPDATE may use it too).

    Only images of the import batch bound to batch_param (None: any image of the project);
    put-off images of the user only with include_put_off. The caller bounds label_count (a
    range here would keep SQLite from walking ix_image_pick in random_key order).
    """
    batch_id = bindparam(batch_param, type_=Integer)
    conditions = [
        IMAGE.c.project_id == bindparam("in_project_id"),
        lease_free_or_mine(bindparam("user_id"), bindparam("now")),
        ~exists().where(_label.c.image_id == IMAGE.c.id,
                        _label.c.user_id == bindparam("user_id")),
        IMAGE.c.id != bindparam("exclude_image_id"),
        or_(batch_id.is_(None), IMAGE.c.import_batch_id == batch_id),
    ]
    if not include_put_off:
        conditions.append(~exists().where(_skip.c.image_id == IMAGE.c.id,
                                          _skip.c.user_id == bindparam("user_id")))
    return conditions
