"""PostgreSQL: index.refresh_images() for the one image a submit labels, as parts of the
submit's own statement.

The submit's statement (labeling/decisions.py) counts the label and inserts it; these CTEs
recompute the image's consensus from its votes (learning/consensus.majority_sql) and, where
it changed, raise the project's search generation and write the row under it. The statement
commits by itself, so the generation's lock is held for the statement only, never across a
round trip to the app. The rules are index.search_fields() and consensus.majority(), written
here as SQL; the tests check that submits leave the index as a rebuild from the source tables
would. A submit whose image has no search row (or whose project has no generation yet) is
left to refresh_images().
"""
from __future__ import annotations

from sqlalchemy import case, func, literal_column, or_, select, true, update

from ..consensus import majority_sql
from ..models import SearchImage, SearchState
from .index import STATUS_DISAGREE, STATUS_LABELED, STATUS_UNLABELED

_search = SearchImage.__table__
_state = SearchState.__table__
# Constants are written into the statement, not bound: the submit's statement stays under
# psycopg's 4096 characters, above which psycopg converts its parameters afresh every time.
_ONE = literal_column("1")


def search_fields_sql(label, predicted, confidence) -> dict:
    """index.search_fields() as SQL expressions: the class, class confidence and status."""
    return {"class_id": func.coalesce(label, predicted),
            "class_confidence": case((label.is_not(None), literal_column("1.0")),
                                     (predicted.is_not(None), confidence)),
            "status": case((label.is_(None), literal_column(str(STATUS_UNLABELED))),
                           (or_(predicted.is_(None), predicted == label),
                            literal_column(str(STATUS_LABELED))),
                           else_=literal_column(str(STATUS_DISAGREE)))}


def refresh_ctes(voted, image_id, only_if):
    """Return (changed, written): CTEs that refresh the search row of image_id.

    voted: a selectable of the image's votes (label_class_id), the new label included (a
    statement's reads do not see its own INSERT); only_if: a condition (the label was
    stored). changed: the row whose consensus label changes; written: the row written under a
    new generation. Compare their counts: a change not written is left to refresh_images().
    """
    votes = (select(voted.c.label_class_id, func.count().label("votes"))
             .group_by(voted.c.label_class_id).cte("votes"))
    consensus = majority_sql(votes).subquery("consensus")
    changed = (select(_search.c.image_id, _search.c.project_id,
                      consensus.c.class_id.label("label_class_id"),
                      _search.c.predicted_class_id, _search.c.confidence)
               .select_from(_search.join(consensus, true()))
               .where(_search.c.image_id == image_id, only_if,
                      _search.c.label_class_id.is_distinct_from(consensus.c.class_id))
               .cte("changed"))
    raised = (update(_state)
              .where(_state.c.project_id == select(changed.c.project_id).scalar_subquery())
              .values(generation=_state.c.generation + _ONE)
              .returning(_state.c.generation).cte("raised"))
    written = (update(_search)
               .where(_search.c.image_id == changed.c.image_id,
                      select(raised.c.generation).exists())
               .values(generation=select(raised.c.generation).scalar_subquery(),
                       label_class_id=changed.c.label_class_id,
                       **search_fields_sql(changed.c.label_class_id,
                                           changed.c.predicted_class_id, changed.c.confidence))
               .returning(_search.c.image_id).cte("written"))
    return changed, written
