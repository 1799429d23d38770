"""Projects and their class lists: presets, creation, and edits that never lose labels."""
from sqlalchemy import select

from .extensions import db
from .models import LabelClass, Project

PRESETS = {
    # HiRISENet's orbital landmark classes (Wagstaff et al. 2018).
    "hirise": ["crater", "dark_dune", "bright_dune", "streak", "other", "edge"],
    # MSLNet's rover-part and scene classes (the paper's Figure 1).
    "msl": [
        "apxs", "apxs cal target", "chemcam cal target", "drill", "drill holes", "drt front",
        "drt side", "ground", "horizon", "inlet", "mahli", "mahli cal target", "mastcam",
        "mastcam cal target", "observation tray", "portion box", "portion tube",
        "portion tube opening", "rems uv sensor", "rover rear deck", "scoop", "sun", "turret",
        "wheel",
    ],
}
# Metadata column that groups correlated images, per preset.
PRESET_GROUP_COLUMNS = {"hirise": "source_id", "msl": "sol"}


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
    if db.session.scalar(select(Project).where(Project.name == name)) is not None:
        raise ProjectError(f"project {name!r} already exists")
    if preset is not None:
        if preset not in PRESETS:
            raise ProjectError(f"unknown preset {preset!r}: use one of {', '.join(PRESETS)}")
        classes = PRESETS[preset]
    if not classes:
        raise ProjectError("a project needs at least one class (or a preset)")
    if labels_per_image < 1:
        raise ProjectError("labels per image must be at least 1")
    project = Project(name=name, description=description, labels_per_image=labels_per_image,
                      group_column=PRESET_GROUP_COLUMNS.get(preset))
    project.classes = [LabelClass(name=class_name, position=index)
                       for index, class_name in enumerate(classes)]
    db.session.add(project)
    db.session.commit()
    return project


def get_project_by_name(name: str) -> Project:
    """Return the project called name or raise ProjectError."""
    project = db.session.scalar(select(Project).where(Project.name == name))
    if project is None:
        raise ProjectError(f"no project called {name!r}")
    return project
