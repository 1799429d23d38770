"""Projects: class-list edits that never lose labels, and validated settings."""
import pytest
from sqlalchemy import select

from supervising_ui.extensions import db
from supervising_ui.models import Image, Label
from supervising_ui.projects import service as projects
from supervising_ui.projects.service import ProjectError


@pytest.fixture
def project(app):
    with app.app_context():
        yield projects.create_project("P", classes=["crater", "dune", "other"])


def add_labeled_image(project, user_id, class_name, index=0) -> Label:
    image = Image(project_id=project.id, storage_key=f"k{index}", original_name=f"{index}.jpg",
                  content_hash=f"{index:064d}", width=1, height=1, label_count=1)
    label_class = next(c for c in project.classes if c.name == class_name)
    label = Label(project_id=project.id, image=image, user_id=user_id, label_class=label_class)
    db.session.add_all([image, label])
    db.session.commit()
    return label


def test_presets_create_their_class_lists(app):
    with app.app_context():
        hirise = projects.create_project("H", preset="hirise")
        assert hirise.class_names == ["crater", "dark_dune", "bright_dune", "streak", "other", "edge"]
        assert hirise.group_column == "source_id" and not hirise.color_input
        msl = projects.create_project("M", preset="msl")
        assert msl.group_column == "sol" and msl.color_input, "the rover's colour cameras"
        # The data set's 24 image classes (with "chemin inlet open") and the "sun" its list names.
        assert len(msl.class_names) == 25 and msl.class_names[0] == "apxs"
        assert "chemin inlet open" in msl.class_names and "sun" in msl.class_names
        with pytest.raises(ProjectError, match="already exists"):
            projects.create_project("H", preset="hirise")
        with pytest.raises(ProjectError, match="unknown preset"):
            projects.create_project("X", preset="lunar")


def test_add_rename_and_reorder(project):
    projects.add_class(project, " streak ")
    assert project.class_names == ["crater", "dune", "other", "streak"]
    with pytest.raises(ProjectError, match="already has a class 'dune'"):
        projects.add_class(project, "dune")
    with pytest.raises(ProjectError, match="a class name is required"):
        projects.add_class(project, "   ")
    dune = project.classes[1]
    projects.rename_class(dune, "dark_dune")
    with pytest.raises(ProjectError, match="already has a class 'crater'"):
        projects.rename_class(dune, "crater")
    db.session.rollback()
    projects.rename_class(dune, "dark_dune")  # renaming to its own name is fine
    projects.move_class(dune, -1)
    assert project.class_names == ["dark_dune", "crater", "other", "streak"]
    projects.move_class(dune, -1)  # already first: stays
    projects.move_class(project.classes[3], +1)  # already last: stays
    assert project.class_names == ["dark_dune", "crater", "other", "streak"]
    ids = [label_class.id for label_class in project.classes]
    projects.reorder_classes(project, list(reversed(ids)))
    assert project.class_names == ["streak", "other", "crater", "dark_dune"]
    with pytest.raises(ProjectError, match="every class"):
        projects.reorder_classes(project, ids[:2])


def test_a_used_class_cannot_be_deleted_but_can_be_merged(project, users):
    dune, other = project.classes[1], project.classes[2]
    label = add_labeled_image(project, users["lee"], "dune")
    label.suggested_class_id = dune.id
    db.session.commit()
    with pytest.raises(ProjectError, match="'dune' is in use.*merge it into another class"):
        projects.delete_class(dune)
    assert project.class_names == ["crater", "dune", "other"]
    moved = projects.delete_class(dune, merge_into=other)
    assert moved == 2  # the label and its suggestion
    assert project.class_names == ["crater", "other"]
    assert [c.position for c in project.classes] == [0, 1]
    stored = db.session.scalar(select(Label))
    assert stored.label_class.name == "other" and stored.suggested_class_id == other.id


def test_unused_class_is_deleted_and_last_class_kept(project):
    projects.delete_class(project.classes[0])
    assert project.class_names == ["dune", "other"]
    projects.delete_class(project.classes[0])
    with pytest.raises(ProjectError, match="at least one class"):
        projects.delete_class(project.classes[0])


def test_merge_needs_a_class_of_the_same_project(project, users):
    other_project = projects.create_project("Q", classes=["x"])
    add_labeled_image(project, users["lee"], "crater")
    with pytest.raises(ProjectError, match="same project"):
        projects.delete_class(project.classes[0], merge_into=other_project.classes[0])
    with pytest.raises(ProjectError, match="same project"):
        projects.delete_class(project.classes[0], merge_into=project.classes[0])


def test_settings_are_validated_and_saved(project):
    projects.update_settings(project, {
        "name": "P2", "description": " Craters ", "labels_per_image": "3",
        "group_column": "source_id", "serving_order": "margin", "audit_share": "0.1",
        "hide_suggestion_share": "0.25", "retrain_every": "50"})
    db.session.expire_all()
    assert (project.name, project.description, project.labels_per_image, project.group_column,
            project.serving_order, project.audit_share, project.hide_suggestion_share,
            project.retrain_every) == ("P2", "Craters", 3, "source_id", "margin", 0.1, 0.25, 50)
    projects.update_settings(project, {"group_column": ""})
    assert project.group_column is None
    for form, message in (({"labels_per_image": "0"}, "labels per image must be between 1"),
                          ({"labels_per_image": "two"}, "labels per image must be an integer"),
                          ({"audit_share": "1.5"}, "audit share must be between 0.0 and 1.0"),
                          ({"hide_suggestion_share": "x"}, "must be a number"),
                          ({"retrain_every": "-1"}, "retrain every must be between 0"),
                          ({"serving_order": "fastest"}, "serving order must be one of random"),
                          ({"name": ""}, "a project name is required")):
        with pytest.raises(ProjectError, match=message):
            projects.update_settings(project, form)
    projects.create_project("Taken", classes=["a"])
    with pytest.raises(ProjectError, match="'Taken' already exists"):
        projects.update_settings(project, {"name": "Taken"})
    db.session.expire_all()
    assert project.labels_per_image == 3 and project.name == "P2", "refused edits change nothing"


def test_image_page_and_counts(project, users):
    for index in range(7):
        db.session.add(Image(project_id=project.id, storage_key=f"k{index}",
                             original_name=f"{index}.jpg", content_hash=f"{index:064d}", width=2,
                             height=2, meta={"sol": index} if index % 2 else {"site": "x"},
                             label_count=index % 3 == 0))
    db.session.commit()
    images, total, columns = projects.image_page(project, page=2, per_page=3)
    assert total == 7 and [image.original_name for image in images] == ["3.jpg", "4.jpg", "5.jpg"]
    assert columns == ["sol", "site"]
    assert projects.project_counts()[project.id] == {"images": 7, "labeled": 3}
