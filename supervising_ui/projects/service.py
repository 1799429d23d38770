"""Projects and their class lists (presets, creation, edits that never lose labels), and the
project and image look-ups of the pages."""
from flask import current_app
from sqlalchemy import func, select, update

from ..echo import shorten
from ..extensions import db
from ..models import SERVING_ORDERS, Image, Label, LabelClass, Prediction, Project
from ..search import index as search_index
from .presets import PRESET_COLOR_INPUT, PRESET_DESCRIPTIONS, PRESET_GROUP_COLUMNS, PRESETS

# The choices of the settings form's "model input" field: whether color_input is on.
MODEL_INPUTS = {"grayscale": False, "color": True}


class ProjectError(ValueError):
    """A project request that cannot be carried out, with a message for the user."""


def parse_class_list(text: str) -> list[str]:
    """Split a comma- or newline-separated class list, dropping blanks; refuse repeats."""
    names = [name.strip() for chunk in text.splitlines() for name in chunk.split(",")]
    names = [name for name in names if name]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ProjectError(f"class names repeat: {', '.join(repeated)}")
    return names


def create_project(name: str, classes: list[str] | None = None, preset: str | None = None,
                   description: str = "", labels_per_image: int = 1) -> Project:
    """Create a project from a class list or a preset name."""
    name = name.strip()
    if not name:
        raise ProjectError("a project name is required")
    if find_project(name) is not None:
        raise ProjectError(f"project {shorten(name)!r} already exists")
    if preset is not None:
        if preset not in PRESETS:
            raise ProjectError(f"unknown preset {shorten(preset)!r}: use one of {', '.join(PRESETS)}")
        classes = PRESETS[preset]
    if not classes:
        raise ProjectError("a project needs at least one class (or a preset)")
    if labels_per_image < 1:
        raise ProjectError("labels per image must be at least 1")
    config = current_app.config
    project = Project(name=name, description=description, labels_per_image=labels_per_image,
                      group_column=PRESET_GROUP_COLUMNS.get(preset),
                      color_input=preset in PRESET_COLOR_INPUT,
                      serving_order=config["NEW_PROJECT_SERVING_ORDER"],
                      retrain_every=config["NEW_PROJECT_RETRAIN_EVERY"])
    descriptions = PRESET_DESCRIPTIONS.get(preset, {})
    project.classes = [LabelClass(name=class_name, position=index,
                                  description=descriptions.get(class_name, ""))
                       for index, class_name in enumerate(classes)]
    db.session.add(project)
    db.session.commit()
    return project


def list_projects() -> list[Project]:
    """Return every project, by name."""
    return list(db.session.scalars(select(Project).order_by(Project.name)))


def find_project(name: str) -> Project | None:
    """Return the project called name, or None."""
    return db.session.scalar(select(Project).where(Project.name == name))


def get_project_by_name(name: str) -> Project:
    """Return the project called name or raise ProjectError."""
    project = find_project(name)
    if project is None:
        raise ProjectError(f"no project called {shorten(name)!r}")
    return project


def get_project(project_id: int) -> Project:
    """Return the project with this id or raise ProjectError."""
    project = db.session.get(Project, project_id)
    if project is None:
        raise ProjectError(f"no project with id {project_id}")
    return project


def get_project_or_404(project_id: int) -> Project:
    """Return the project with this id, or end the request with 404 Not Found."""
    return db.get_or_404(Project, project_id)


def get_class(project: Project, class_id: int) -> LabelClass:
    """Return the class with this id in project or raise ProjectError."""
    label_class = db.session.get(LabelClass, class_id)
    if label_class is None or label_class.project_id != project.id:
        raise ProjectError(f"project {project.name!r} has no class with id {class_id}")
    return label_class


def _checked_class_name(project: Project, name: str, ignore: LabelClass | None = None) -> str:
    """Return name stripped, refusing blanks, over-long names and names the project has."""
    name = (name or "").strip()
    if not name:
        raise ProjectError("a class name is required")
    if len(name) > 120:
        raise ProjectError("a class name has at most 120 characters")
    if any(other.name == name and other is not ignore for other in project.classes):
        raise ProjectError(f"project {project.name!r} already has a class {shorten(name)!r}")
    return name


def add_class(project: Project, name: str) -> LabelClass:
    """Add a class at the end of project's class list."""
    name = _checked_class_name(project, name)
    label_class = LabelClass(name=name, position=len(project.classes))
    project.classes.append(label_class)
    db.session.commit()
    return label_class


def rename_class(label_class: LabelClass, name: str) -> None:
    """Rename a class; its labels keep pointing at it."""
    label_class.name = _checked_class_name(label_class.project, name, ignore=label_class)
    db.session.commit()


# Longest class description of the field guide.
DESCRIPTION_CHARACTERS = 2000


def describe_class(label_class: LabelClass, description: str) -> None:
    """Set the field guide's description of a class (at most DESCRIPTION_CHARACTERS)."""
    description = (description or "").strip()
    if len(description) > DESCRIPTION_CHARACTERS:
        raise ProjectError(f"a description has at most {DESCRIPTION_CHARACTERS} characters "
                           f"(this one {len(description)})")
    label_class.description = description
    db.session.commit()


def reorder_classes(project: Project, class_ids: list[int]) -> None:
    """Put project's classes in the order of class_ids (every class exactly once)."""
    by_id = {label_class.id: label_class for label_class in project.classes}
    if sorted(class_ids) != sorted(by_id):
        raise ProjectError("a new order must list every class of the project exactly once")
    for position, class_id in enumerate(class_ids):
        by_id[class_id].position = position
    db.session.commit()
    db.session.refresh(project, ["classes"])


def move_class(label_class: LabelClass, offset: int) -> None:
    """Move a class up (offset -1) or down (+1) in its project's list."""
    project = label_class.project
    order = [other.id for other in project.classes]
    index = order.index(label_class.id)
    target = min(max(index + offset, 0), len(order) - 1)
    order.insert(target, order.pop(index))
    reorder_classes(project, order)


def class_usage(label_class: LabelClass) -> int:
    """Return how many labels, suggestions and predictions refer to a class."""
    return sum(db.session.scalar(select(func.count()).where(condition)) for condition in (
        Label.label_class_id == label_class.id, Label.suggested_class_id == label_class.id,
        Prediction.label_class_id == label_class.id))


def label_counts_by_class(project: Project) -> dict[int, int]:
    """Return {class id: number of labels} for project's classes, in one grouped query."""
    return dict(db.session.execute(select(Label.label_class_id, func.count()).where(
        Label.project_id == project.id).group_by(Label.label_class_id)).all())


def delete_class(label_class: LabelClass, merge_into: LabelClass | None = None) -> int:
    """Delete a class; one in use must be merged into another class. Return rows moved."""
    project = label_class.project
    if merge_into is not None and (merge_into.project_id != project.id or merge_into is label_class):
        raise ProjectError("merge into another class of the same project")
    used = class_usage(label_class)
    if used and merge_into is None:
        raise ProjectError(f"class {label_class.name!r} is in use ({used} labels, suggestions "
                           "or predictions): merge it into another class instead of deleting it")
    if len(project.classes) == 1:
        raise ProjectError("a project keeps at least one class")
    moved = 0
    if merge_into is not None:
        for column in (Label.label_class_id, Label.suggested_class_id, Prediction.label_class_id,
                       Image.gold_class_id):
            moved += db.session.execute(update(column.class_).where(
                column == label_class.id).values({column.key: merge_into.id})).rowcount
        search_index.after_class_merge(project.id, label_class.id, merge_into.id)
    project.classes.remove(label_class)
    for position, remaining in enumerate(project.classes):
        remaining.position = position
    db.session.commit()
    return moved


def update_settings(project: Project, form: dict) -> None:
    """Validate and save a project's settings from form fields (strings); refuse bad values."""
    name = (form.get("name", project.name) or "").strip()
    if not name:
        raise ProjectError("a project name is required")
    if name != project.name and db.session.scalar(
            select(Project.id).where(Project.name == name)) is not None:
        raise ProjectError(f"project {shorten(name)!r} already exists")
    serving_order = form.get("serving_order", project.serving_order)
    if serving_order not in SERVING_ORDERS:
        raise ProjectError(f"serving order must be one of {', '.join(SERVING_ORDERS)}")
    model_input = form.get("model_input", "color" if project.color_input else "grayscale")
    if model_input not in MODEL_INPUTS:
        raise ProjectError(f"model input must be one of {', '.join(MODEL_INPUTS)}")
    values = {
        "labels_per_image": _number(form, "labels_per_image", int, project.labels_per_image, 1, 1000),
        "audit_share": _number(form, "audit_share", float, project.audit_share, 0.0, 1.0),
        "hide_suggestion_share": _number(form, "hide_suggestion_share", float,
                                         project.hide_suggestion_share, 0.0, 1.0),
        "retrain_every": _number(form, "retrain_every", int, project.retrain_every, 0, 1_000_000),
        # Issue 25: adaptive redundancy (labels_max 0: off, a fixed count), gold, retraining.
        "labels_max": _number(form, "labels_max", int, project.labels_max or 0, 0, 1000) or None,
        "target_posterior": _number(form, "target_posterior", float, project.target_posterior,
                                    0.5, 1.0),
        "settle_preference": _number(form, "settle_preference", float, project.settle_preference,
                                     0.0, 1.0),
        "gold_share": _number(form, "gold_share", float, project.gold_share, 0.0, 1.0),
        "retrain_min_posterior": _number(form, "retrain_min_posterior", float,
                                         project.retrain_min_posterior, 0.0, 1.0),
    }
    if values["labels_max"] is not None and values["labels_max"] < values["labels_per_image"]:
        raise ProjectError("labels max must be 0 (a fixed count) or at least labels per image")
    project.name = name
    project.description = (form.get("description", project.description) or "").strip()
    project.group_column = (form.get("group_column", project.group_column) or "").strip() or None
    project.serving_order = serving_order
    project.color_input = MODEL_INPUTS[model_input]
    for attribute, value in values.items():
        setattr(project, attribute, value)
    db.session.commit()


def _number(form: dict, field: str, kind: type, default, lowest, highest):
    """Parse one numeric form field within [lowest, highest], naming the field when it is bad."""
    text = form.get(field)
    if text is None or str(text).strip() == "":
        return default
    try:
        value = kind(str(text).strip())
    except ValueError:
        raise ProjectError(f"{field.replace('_', ' ')} must be a{'n integer' if kind is int else ' number'}, "
                           f"not {shorten(text)!r}") from None
    if not lowest <= value <= highest:
        raise ProjectError(f"{field.replace('_', ' ')} must be between {lowest} and {highest}")
    return value


def project_counts() -> dict[int, dict]:
    """Return {project id: {"images", "labeled"}} for every project, in two grouped queries."""
    rows = db.session.execute(select(
        Image.project_id, func.count(), func.count().filter(Image.label_count > 0))
        .group_by(Image.project_id))
    return {project_id: {"images": images, "labeled": labeled}
            for project_id, images, labeled in rows}


def image_page(project: Project, page: int, per_page: int = 50) -> tuple[list[Image], int, list[str]]:
    """Return one page of a project's images by id, the image count and the page's metadata keys."""
    total = db.session.scalar(select(func.count()).select_from(Image).where(
        Image.project_id == project.id))
    page = max(1, page)
    images = list(db.session.scalars(select(Image).where(Image.project_id == project.id)
                                     .order_by(Image.id).offset((page - 1) * per_page)
                                     .limit(per_page)))
    columns = []
    for image in images:
        columns.extend(key for key in (image.meta or {}) if key not in columns)
    return images, total, columns
