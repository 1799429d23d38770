"""The tests' shared helpers: generated images, projects, labels and a serving model.

Three kinds of projects: `make_project` (image rows without files, enough for assignment),
`add_stored_images` (generated JPEGs in managed storage) and `make_stored_project` (a
two-class project whose images a quick model can learn, for the learning-loop tests).
"""
import io
import random
import zipfile

import numpy as np
from PIL import Image as PILImage
from sqlalchemy import select

from supervising_ui import storage
from supervising_ui.extensions import db
from supervising_ui.ml.uncertainty import scores
from supervising_ui.models import Image, Label, LabelClass, ModelVersion, Prediction, Project
from supervising_ui.projects.service import create_project

# --- image files -----------------------------------------------------------------------

def image_bytes(index: int = 0, size=(32, 24), image_format: str = "JPEG") -> bytes:
    """Return a small image whose content differs with index."""
    image = PILImage.new("L", size, color=64 + (index * 37) % 128)
    for bit in range(16):  # the index in 4x4 blocks, black or white: survives JPEG quantisation
        column, row = 4 * (bit % 8), 4 * (bit // 8)
        image.paste(255 if index >> bit & 1 else 0, (column, row, column + 4, row + 4))
    buffer = io.BytesIO()
    image.save(buffer, format=image_format)
    return buffer.getvalue()


def zip_bytes(entries: dict[str, bytes]) -> bytes:
    """Return a zip archive holding entries {name: bytes}, names written as given."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(zipfile.ZipInfo(name), data)
    return buffer.getvalue()


def write_images(folder, count: int, start: int = 0, prefix: str = "img") -> list[str]:
    """Write count distinct JPEGs into folder; return their file names."""
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for index in range(start, start + count):
        name = f"{prefix}_{index:03d}.jpg"
        (folder / name).write_bytes(image_bytes(index))
        names.append(name)
    return names


# --- labeling projects -------------------------------------------------------------------

CLASSES = ("crater", "dark_dune", "other")


def make_project(name="mars", classes=CLASSES, **settings) -> int:
    """Create a project (inside an app context) with settings applied; return its id."""
    project = create_project(name, classes=list(classes))
    for key, value in settings.items():
        setattr(project, key, value)
    db.session.commit()
    return project.id


def add_images(project_id: int, count: int, meta=None, start: int = 0) -> list[int]:
    """Insert image rows without files (enough for assignment) in one commit; return their ids.

    meta: the metadata of every image, or a function of the image number that returns it.
    """
    images = [Image(project_id=project_id, storage_key=storage.storage_key(f"{i:064x}", "jpg"),
                    original_name=f"img_{i:05d}.jpg", content_hash=f"{i:064x}", width=227,
                    height=227, meta=dict((meta(i) if callable(meta) else meta) or {}, index=i))
              for i in range(start, start + count)]
    db.session.add_all(images)
    db.session.commit()
    return [image.id for image in images]


def jpeg_bytes(seed: int, size: int = 64) -> bytes:
    """Return a small grayscale JPEG whose pixels depend on seed."""
    rng = random.Random(seed)
    picture = PILImage.new("L", (size, size))
    picture.putdata([rng.randrange(256) for _ in range(size * size)])
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=80)
    return buffer.getvalue()


def add_stored_images(app, project_id: int, count: int, meta=None) -> list[int]:
    """Store count generated JPEGs in the managed store and add their rows; return ids."""
    ids = []
    for seed in range(count):
        data = jpeg_bytes(seed + 1000 * project_id)
        info = storage.validate_image(data, app.config["MAX_IMAGE_PIXELS"])
        storage.store_bytes(app.config["IMAGE_STORE"], info.storage_key, data)
        image = Image(project_id=project_id, storage_key=info.storage_key,
                      original_name=f"p{project_id}_{seed}.jpg", content_hash=info.content_hash,
                      width=info.width, height=info.height,
                      meta=dict(meta or {}, source_id=f"ESP_{seed % 3}"))
        db.session.add(image)
        db.session.commit()
        ids.append(image.id)
    return ids


def add_serving_model(project_id: int, probabilities: dict[int, list[float]],
                      version: int = 1) -> int:
    """Add a serving model version with a prediction per image id; return its id."""
    classes = db.session.query(LabelClass).filter_by(project_id=project_id) \
        .order_by(LabelClass.position).all()
    db.session.query(ModelVersion).filter_by(project_id=project_id).update({"is_serving": False})
    model = ModelVersion(project_id=project_id, version=version, kind="test", path="",
                         is_serving=True)
    db.session.add(model)
    db.session.flush()
    for image_id, probs in probabilities.items():
        stored = {name: float(values[0]) for name, values in scores(np.array([probs])).items()}
        db.session.add(Prediction(
            model_version_id=model.id, image_id=image_id,
            label_class_id=classes[probs.index(max(probs))].id, **stored,
            probabilities={c.name: p for c, p in zip(classes, probs, strict=True)}))
    db.session.commit()
    return model.id


def project_of(project_id: int) -> Project:
    """Return the project row."""
    return db.session.get(Project, project_id)


# --- learning-loop projects -------------------------------------------------------------

LOOP_CLASSES = ["bright", "dark"]
IMAGE_COUNT = 32


def generated_png(label: str, index: int) -> bytes:
    """A 64x64 grayscale PNG whose brightness gives its class (deterministic per index)."""
    rng = np.random.default_rng(index)
    base = 185 if label == "bright" else 70
    pixels = np.clip(base + rng.normal(0, 14, (64, 64)), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    PILImage.fromarray(pixels, mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def make_stored_project(app, name="mars", count=IMAGE_COUNT, group_column="source_id") -> int:
    """A project with `count` generated images in managed storage, 4 per source_id group; its
    retrains are the test's to start (no automatic one, whatever the app's defaults)."""
    project = create_project(name, classes=LOOP_CLASSES)
    project.group_column, project.retrain_every = group_column, 0
    for index in range(count):
        data = generated_png(LOOP_CLASSES[index % 2], index)
        info = storage.validate_image(data, app.config["MAX_IMAGE_PIXELS"])
        storage.store_bytes(app.config["IMAGE_STORE"], info.storage_key, data)
        db.session.add(Image(project_id=project.id, storage_key=info.storage_key,
                             original_name=f"img{index:03d}.png", content_hash=info.content_hash,
                             width=info.width, height=info.height,
                             meta={"source_id": f"obs{index // 4}", "truth": LOOP_CLASSES[index % 2]}))
    db.session.commit()
    return project.id


def add_labels(project_id: int, user_id: int, count: int | None = None, flip=lambda image: False):
    """Label the project's first `count` unlabeled-by-user images with their true class."""
    project = db.session.get(Project, project_id)
    class_ids = {c.name: c.id for c in project.classes}
    labeled = select(Label.image_id).where(Label.user_id == user_id)
    images = db.session.scalars(select(Image).where(
        Image.project_id == project_id, Image.id.not_in(labeled)).order_by(Image.id)).all()
    for image in images[:count]:
        truth = image.meta["truth"]
        name = LOOP_CLASSES[1 - LOOP_CLASSES.index(truth)] if flip(image) else truth
        db.session.add(Label(project_id=project_id, image_id=image.id, user_id=user_id,
                             label_class_id=class_ids[name]))
        image.label_count += 1
    db.session.commit()
