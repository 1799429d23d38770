"""Export: labels -> a pandas DataFrame per kind -> CSV or JSON, from the admin page or the console.

Kinds:
- ``labels``: every label with its image, labeler, time, time spent, the model's suggestion
  (shown or hidden) and the image's metadata columns;
- ``consensus``: one row per labeled image: the consensus class (consensus.py, the rule
  training uses; none on a tie), its votes and the agreement, and ``class, posterior,
  n_labels, method`` (the project's consensus method and that class's posterior);
- ``manifest``: the training manifest ``filename,label,...metadata``: exactly the images and
  classes a retrain learns from;
- ``unsure``: the images labelers put off as unsure, with their comments.

Times are ISO 8601 UTC with a Z (timestamps.iso_utc). CSV is written by downloads.frame_csv,
which quotes text a spreadsheet would run as a formula; JSON keeps every value as it is.

pandas is imported by the functions that build frames, not at the top: every console command
and web process imports this module, few of them export, and pandas takes ~0.4 s to import.
"""
from __future__ import annotations

import io
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import aliased

from ..consensus import consensus_details
from ..downloads import attachment, frame_csv
from ..echo import shorten
from ..extensions import db
from ..models import Image, Label, LabelClass, ModelVersion, Project, Skip, User
from ..timestamps import iso_utc

if TYPE_CHECKING:
    import pandas as pd

KINDS = ("labels", "consensus", "manifest", "unsure")
FORMATS = ("csv", "json")
MIMETYPES = {"csv": "text/csv", "json": "application/json"}

class ExportError(ValueError):
    """An export request that cannot be carried out, with a message for the user."""


def labels_frame(project: Project) -> pd.DataFrame:
    """Return every label of project, one row each, with suggestion fields and image metadata."""
    import pandas as pd
    suggested = aliased(LabelClass)
    rows = db.session.execute(
        select(Label.id, Label.image_id, Image.original_name, LabelClass.name, User.username,
               Label.created_at, Label.seconds_spent, Label.suggestion_shown,
               suggested.name.label("suggested"), Label.suggestion_confidence,
               ModelVersion.version, Image.meta)
        .join(Image, Image.id == Label.image_id)
        .join(LabelClass, LabelClass.id == Label.label_class_id)
        .join(User, User.id == Label.user_id)
        .outerjoin(suggested, suggested.id == Label.suggested_class_id)
        .outerjoin(ModelVersion, ModelVersion.id == Label.suggestion_model_version_id)
        .where(Label.project_id == project.id).order_by(Label.id)).all()
    columns = ["label_id", "image_id", "filename", "label", "labeler", "created_at",
               "seconds_spent", "suggestion_shown", "suggested_label", "suggestion_confidence",
               "suggestion_model_version"]
    frame = pd.DataFrame([row[:-1] for row in rows], columns=columns)
    frame["created_at"] = [iso_utc(moment) for moment in frame["created_at"]]
    frame["suggestion_model_version"] = frame["suggestion_model_version"].astype("Int64")
    frame["agreed_with_suggestion"] = pd.array(
        [None if pd.isna(suggested) else label == suggested
         for label, suggested in zip(frame["label"], frame["suggested_label"], strict=True)], dtype="boolean")
    return _with_metadata(frame, [row.meta for row in rows])


def consensus_frame(project: Project) -> pd.DataFrame:
    """Return one row per labeled image: consensus class (learning.consensus), its votes, agreement."""
    import pandas as pd
    labels = labels_frame(project)
    columns = ["image_id", "filename", "label", "votes", "labels", "agreement", "complete",
               "class", "posterior", "n_labels", "method"]
    if labels.empty:
        return pd.DataFrame(columns=columns)
    counts = labels.groupby(["image_id", "label"]).size()
    frame = counts.groupby("image_id").agg(votes="max", labels="sum")
    # WHICH class an image gets is the one consensus rule's answer (None on a tie), with the
    # project's method (majority or Dawid-Skene) and its posterior.
    method, details = consensus_details(project.id)
    names = {label_class.id: label_class.name for label_class in project.classes}
    found = [details.get(image_id, (None, 0.0, 0)) for image_id in frame.index]
    frame["label"] = [names.get(class_id) for class_id, _posterior, _count in found]
    frame["class"] = frame["label"]
    frame["posterior"] = [round(posterior, 4) for _class_id, posterior, _count in found]
    frame["n_labels"] = frame["labels"]
    frame["method"] = method
    frame["agreement"] = frame["votes"] / frame["labels"]
    frame["complete"] = frame["labels"] >= project.labels_per_image
    frame = frame.join(labels.drop_duplicates("image_id").set_index("image_id")["filename"])
    return frame.reset_index()[columns].sort_values("image_id", ignore_index=True)


def manifest_frame(project: Project) -> pd.DataFrame:
    """Return the training manifest: filename, consensus label, then the metadata columns."""
    consensus = consensus_frame(project)
    consensus = consensus[consensus["label"].notna()]
    if project.consensus_method != "majority":  # as training_labels: a low posterior stays out
        consensus = consensus[consensus["posterior"] >= project.retrain_min_posterior]
    metas = dict(db.session.execute(select(Image.id, Image.meta).where(
        Image.id.in_(consensus["image_id"].tolist()))).all()) if len(consensus) else {}
    frame = consensus[["filename", "label", "image_id"]].reset_index(drop=True)
    frame = _with_metadata(frame, [metas.get(image_id) for image_id in frame["image_id"]])
    return frame[[c for c in frame.columns if c != "image_id"] + ["image_id"]]


def unsure_frame(project: Project) -> pd.DataFrame:
    """Return every image a labeler put off as unsure, with who, when and their comment."""
    import pandas as pd
    rows = db.session.execute(
        select(Skip.image_id, Image.original_name, User.username, Skip.created_at, Skip.comment)
        .join(Image, Image.id == Skip.image_id).join(User, User.id == Skip.user_id)
        .where(Image.project_id == project.id, Skip.unsure.is_(True))
        .order_by(Skip.created_at, Skip.id)).all()
    frame = pd.DataFrame([tuple(row) for row in rows],
                         columns=["image_id", "filename", "labeler", "created_at", "comment"])
    frame["created_at"] = [iso_utc(moment) for moment in frame["created_at"]]
    return frame


def _with_metadata(frame: pd.DataFrame, metas: list[dict | None]) -> pd.DataFrame:
    """Append the images' metadata as columns; a key that clashes gets a 'meta_' prefix."""
    import pandas as pd
    meta = pd.DataFrame([m or {} for m in metas], index=frame.index)
    meta.columns = [f"meta_{c}" if c in frame.columns else str(c) for c in meta.columns]
    return pd.concat([frame, meta], axis=1)


BUILDERS = {"labels": labels_frame, "consensus": consensus_frame, "manifest": manifest_frame,
            "unsure": unsure_frame}


def export_frame(project: Project, kind: str) -> pd.DataFrame:
    """Return the DataFrame of one export kind."""
    if kind not in BUILDERS:
        raise ExportError(f"unknown export kind {shorten(kind)!r}: use one of {', '.join(KINDS)}")
    return BUILDERS[kind](project)


def write_frame(frame: pd.DataFrame, export_format: str) -> str:
    """Return frame as CSV or JSON text (JSON: a list of records, ISO times)."""
    if export_format == "csv":
        return frame_csv(frame)
    if export_format == "json":
        buffer = io.StringIO()
        frame.to_json(buffer, orient="records", date_format="iso", indent=1)
        return buffer.getvalue()
    raise ExportError(f"unknown format {shorten(export_format)!r}: use one of {', '.join(FORMATS)}")


def export_text(project: Project, kind: str, export_format: str) -> str:
    """Return one export of project as text: the one export path of page and console."""
    if export_format not in FORMATS:
        raise ExportError(f"unknown format {shorten(export_format)!r}: use one of {', '.join(FORMATS)}")
    return write_frame(export_frame(project, kind), export_format)


def content_disposition(project: Project, kind: str, export_format: str) -> str:
    """Return the attachment header of an export, such as 'hirise-labels.csv'."""
    return attachment(project.name, f"-{kind}.{export_format}", f"project-{project.id}")
