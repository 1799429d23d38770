"""The search index's own tables, kept in step with labels and predictions."""
from __future__ import annotations

from sqlalchemy import (
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db


class SearchState(db.Model):
    """A project's search generation: every write to its search rows raises it by one."""

    project_id: Mapped[int] = mapped_column(ForeignKey("project.id"), primary_key=True,
                                            autoincrement=False)
    generation: Mapped[int] = mapped_column(Integer, default=0)


class SearchImage(db.Model):
    """An image as search sees it: consensus label, serving prediction, the class they give."""

    __table_args__ = (
        # A search process catches up by reading only the rows written since it last looked.
        Index("ix_search_image_generation", "project_id", "generation"),
        Index("ix_search_image_filename", "project_id", "filename"),
    )

    image_id: Mapped[int] = mapped_column(ForeignKey("image.id"), primary_key=True,
                                          autoincrement=False)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id"))
    generation: Mapped[int] = mapped_column(Integer, default=0)
    filename: Mapped[str] = mapped_column(String(512))
    # Class ids carry no foreign key: a class merge rewrites them (search/index.py).
    label_class_id: Mapped[int | None] = mapped_column(Integer)
    predicted_class_id: Mapped[int | None] = mapped_column(Integer)
    confidence: Mapped[float | None] = mapped_column(Float)
    model_version_id: Mapped[int | None] = mapped_column(Integer)
    # The human label if there is one, else the prediction; 1.0 for a human label.
    class_id: Mapped[int | None] = mapped_column(Integer)
    class_confidence: Mapped[float | None] = mapped_column(Float)
    # 0 no consensus label, 1 labeled, 2 labeled and the serving model disagrees.
    status: Mapped[int] = mapped_column(SmallInteger, default=0)


class SearchColumn(db.Model):
    """A metadata key of a project's images, as a search facet."""

    __table_args__ = (UniqueConstraint("project_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id"))
    key: Mapped[str] = mapped_column(String(120))


class SearchValue(db.Model):
    """One distinct value of a metadata column: its text and, for numbers, the number."""

    __table_args__ = (UniqueConstraint("column_id", "text"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    column_id: Mapped[int] = mapped_column(ForeignKey("search_column.id"))
    text: Mapped[str] = mapped_column(String(512))
    number: Mapped[float | None] = mapped_column(Float)


class SearchMeta(db.Model):
    """An image's value in one metadata column (the indexed form of Image.meta)."""

    __table_args__ = (
        Index("ix_search_meta_value", "project_id", "column_id", "value_id", "image_id"),
    )

    image_id: Mapped[int] = mapped_column(ForeignKey("image.id"), primary_key=True,
                                          autoincrement=False)
    column_id: Mapped[int] = mapped_column(ForeignKey("search_column.id"), primary_key=True,
                                           autoincrement=False)
    value_id: Mapped[int] = mapped_column(ForeignKey("search_value.id"))
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id"))
