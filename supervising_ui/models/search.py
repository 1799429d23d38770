"""The search index's own tables, kept in step with labels and predictions."""
from __future__ import annotations

import sqlalchemy as sa
import sqlalchemy.orm as so

from ..extensions import db


class SearchState(db.Model):
    """A project's search generation: every write to its search rows raises it by one."""

    project_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("project.id"), primary_key=True,
                                                  autoincrement=False)
    generation: so.Mapped[int] = so.mapped_column(sa.Integer, default=0)


class SearchImage(db.Model):
    """An image as search sees it: consensus label, serving prediction, the class they give."""

    __table_args__ = (
        # A search process catches up by reading only the rows written since it last looked.
        sa.Index("ix_search_image_generation", "project_id", "generation"),
        sa.Index("ix_search_image_filename", "project_id", "filename"),
    )

    image_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("image.id"), primary_key=True,
                                                autoincrement=False)
    project_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("project.id"))
    generation: so.Mapped[int] = so.mapped_column(sa.Integer, default=0)
    filename: so.Mapped[str] = so.mapped_column(sa.String(512))
    # Class ids carry no foreign key: a class merge rewrites them (search/index.py).
    label_class_id: so.Mapped[int | None] = so.mapped_column(sa.Integer)
    predicted_class_id: so.Mapped[int | None] = so.mapped_column(sa.Integer)
    confidence: so.Mapped[float | None] = so.mapped_column(sa.Float)
    model_version_id: so.Mapped[int | None] = so.mapped_column(sa.Integer)
    # The human label if there is one, else the prediction; 1.0 for a human label.
    class_id: so.Mapped[int | None] = so.mapped_column(sa.Integer)
    class_confidence: so.Mapped[float | None] = so.mapped_column(sa.Float)
    # 0 no consensus label, 1 labeled, 2 labeled and the serving model disagrees.
    status: so.Mapped[int] = so.mapped_column(sa.SmallInteger, default=0)


class SearchColumn(db.Model):
    """A metadata key of a project's images, as a search facet."""

    __table_args__ = (sa.UniqueConstraint("project_id", "key"),)

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    project_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("project.id"))
    key: so.Mapped[str] = so.mapped_column(sa.String(120))


class SearchValue(db.Model):
    """One distinct value of a metadata column: its text and, for numbers, the number."""

    __table_args__ = (sa.UniqueConstraint("column_id", "text"),)

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    column_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("search_column.id"))
    text: so.Mapped[str] = so.mapped_column(sa.String(512))
    number: so.Mapped[float | None] = so.mapped_column(sa.Float)


class SearchMeta(db.Model):
    """An image's value in one metadata column (the indexed form of Image.meta)."""

    __table_args__ = (
        sa.Index("ix_search_meta_value", "project_id", "column_id", "value_id", "image_id"),
    )

    image_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("image.id"), primary_key=True,
                                                autoincrement=False)
    column_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("search_column.id"),
                                                 primary_key=True, autoincrement=False)
    value_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("search_value.id"))
    project_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("project.id"))
