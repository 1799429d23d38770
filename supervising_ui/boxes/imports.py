"""Import an annotator's boxes (Pascal VOC XML, COCO JSON or CSV) onto an observation as the
boxes of a named user, from the console (``supervising-ui import-boxes``) or the admin page.

The user is created as a labeler when missing, with a random password that is returned (the
console prints it only when asked). An import replaces that user's earlier imported boxes on
the observation, so importing the same file again changes nothing. Every box's class must be
one of the project's classes; a file with an unknown class, or none that parses, imports
nothing and says why. Boxes are clipped to the observation; boxes with no area inside it are
skipped and counted.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, insert

from ..accounts import users as accounts
from ..extensions import db
from ..models import Box, Observation, utcnow
from . import BoxError, merging
from .service import class_ids

FORMATS = ("voc", "coco", "csv")
# Largest annotation file read (a COCO file of a whole catalogue is a few MB).
MAX_FILE_BYTES = 64 * 1024**2


@dataclass
class BoxImport:
    """What an import did: boxes stored and skipped, and the user (new: its password)."""

    username: str
    imported: int
    skipped: int
    user_created: bool
    password: str | None = None


def read_boxes(kind: str, data: bytes, image_name: str | None = None) -> list:
    """The boxes of an annotation file (landmarks.formats readers); BoxError when unreadable."""
    from ..landmarks import formats
    if kind not in FORMATS:
        raise BoxError(f"format must be one of {', '.join(FORMATS)}")
    if len(data) > MAX_FILE_BYTES:
        raise BoxError(f"the file is {len(data)} bytes, over the limit of {MAX_FILE_BYTES}")
    try:
        if kind == "voc":
            return list(formats.read_voc(data))
        if kind == "coco":
            return list(formats.read_coco(data, image_name=image_name))
        return list(formats.read_csv(data.decode("utf-8-sig")))
    except UnicodeDecodeError:
        raise BoxError("the CSV file is not UTF-8 text") from None
    except ValueError as error:
        raise BoxError(f"cannot read the {kind.upper()} file: {error}") from None


def annotator(username: str) -> tuple[object, bool, str | None]:
    """The user called username, created as a labeler when missing: (user, created, password)."""
    user = accounts.find_user(username.strip())
    if user is not None:
        return user, False, None
    try:
        user, password = accounts.create_user(username, role="labeler")
    except accounts.AccountError as error:
        raise BoxError(str(error)) from None
    return user, True, password


def _rows(observation: Observation, found: list, user_id: int, classes: dict[str, int]):
    """The box rows of found, clipped to the observation; and how many were skipped."""
    now, rows, skipped = utcnow(), [], 0
    for box in found:
        x_min, x_max = max(box.x_min, 0.0), min(box.x_max, float(observation.width))
        y_min, y_max = max(box.y_min, 0.0), min(box.y_max, float(observation.height))
        if not (x_max > x_min and y_max > y_min):
            skipped += 1
            continue
        rows.append({"observation_id": observation.id, "tile_id": None, "user_id": user_id,
                     "label_class_id": classes[box.label], "shape": "box", "source": "imported",
                     "x_min": float(x_min), "y_min": float(y_min), "x_max": float(x_max),
                     "y_max": float(y_max), "created_at": now, "updated_at": now})
    return rows, skipped


def import_boxes(observation: Observation, username: str, kind: str, data: bytes,
                 image_name: str | None = None) -> BoxImport:
    """Store a file's boxes as username's on the observation (replacing their earlier import)
    and queue the merge."""
    found = read_boxes(kind, data, image_name)
    if not found:
        raise BoxError(f"the {kind.upper()} file holds no boxes")
    classes = class_ids(observation.project_id)
    unknown = sorted({box.label for box in found} - set(classes))
    if unknown:
        raise BoxError(f"unknown class{'es' if len(unknown) > 1 else ''} "
                       f"{', '.join(map(repr, unknown[:10]))}: the project's classes are "
                       f"{', '.join(classes)}")
    user, created, password = annotator(username)
    rows, skipped = _rows(observation, found, user.id, classes)
    db.session.execute(delete(Box).where(Box.observation_id == observation.id,
                                         Box.user_id == user.id, Box.source == "imported"))
    if rows:
        db.session.execute(insert(Box), rows)
    db.session.commit()
    merging.request_merge(observation.project_id, observation.id, user.id)
    return BoxImport(user.username, len(rows), skipped, created, password)
