"""Helpers shared by the labeling tests: projects, image rows, stored JPEGs, a serving model."""
import io
import random

import numpy as np
from PIL import Image as PILImage

from supervising_ui import storage
from supervising_ui.extensions import db
from supervising_ui.ml.uncertainty import scores
from supervising_ui.models import Image, LabelClass, ModelVersion, Prediction, Project
from supervising_ui.projects import create_project

CLASSES = ("crater", "dark_dune", "other")


def make_project(name="mars", classes=CLASSES, **settings) -> int:
    """Create a project (inside an app context) with settings applied; return its id."""
    project = create_project(name, classes=list(classes))
    for key, value in settings.items():
        setattr(project, key, value)
    db.session.commit()
    return project.id


def add_images(project_id: int, count: int, meta=None, start: int = 0) -> list[int]:
    """Insert image rows without files (enough for assignment); return their ids."""
    images = [Image(project_id=project_id, storage_key=storage.storage_key(f"{i:064x}", "jpg"),
                    original_name=f"img_{i:05d}.jpg", content_hash=f"{i:064x}", width=227,
                    height=227, meta=dict(meta or {}, index=i))
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
