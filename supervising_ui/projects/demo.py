"""The demo: a HiRISE-preset project with generated orbital-looking images, so a newcomer
sees the tool working without any data of their own.

A share of the images comes labeled with its generated kind (attributed to the demo's
admin) and a quick model is trained on them, so search, suggestions and the model page
show something at once. The console trains it in-process; the first-run page queues it.
"""
import io

import numpy as np
from PIL import Image as PILImage
from PIL import ImageDraw, ImageFilter

from ..accounts import users as accounts
from ..extensions import db
from ..importing.runner import ImportReport, run_import
from ..importing.sources import Candidate, ImportPlan
from ..jobs import queue as jobs
from ..learning.predictions import serving_version
from ..models import Job, Project, User
from . import service as projects

DEMO_PROJECT = "Demo (generated HiRISE-like images)"
DEMO_ADMIN = "admin"
IMAGE_SIZE = 227
IMAGES_PER_CLASS = 10
OBSERVATIONS = 6
# Images of each kind that come labeled; the rest are left to the model (and the labelers).
LABELED_PER_CLASS = 6


def _terrain(rng: np.random.Generator) -> np.ndarray:
    """Return a smooth random grey surface, the background of every demo image."""
    coarse = rng.normal(0, 1, (15, 15))
    surface = PILImage.fromarray(((coarse - coarse.min()) / np.ptp(coarse) * 255).astype(np.uint8))
    surface = np.asarray(surface.resize((IMAGE_SIZE, IMAGE_SIZE), PILImage.BICUBIC), float)
    return 110 + 0.15 * (surface - 128) + rng.normal(0, 6, (IMAGE_SIZE, IMAGE_SIZE))


def _draw(kind: str, rng: np.random.Generator) -> PILImage.Image:
    """Return one generated 227x227 grayscale image of the given landmark kind."""
    pixels = _terrain(rng)
    y, x = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE].astype(float)
    if kind == "crater":  # a bowl lit from the left: shadowed left wall, bright right wall
        cy, cx, radius = rng.uniform(80, 147, 2).tolist() + [rng.uniform(25, 60)]
        distance = np.hypot(y - cy, x - cx)
        bowl = distance < radius
        pixels[bowl] += 45 * ((x[bowl] - cx) / radius)
        pixels[np.abs(distance - radius) < 3] += 35
    elif kind in ("dark_dune", "bright_dune"):  # rippled sand, darker or brighter than the plain
        angle, period = rng.uniform(0, np.pi), rng.uniform(14, 26)
        ripples = np.sin((x * np.cos(angle) + y * np.sin(angle)) / period * 2 * np.pi)
        pixels += (-45 if kind == "dark_dune" else 45) + 18 * ripples
    elif kind == "streak":  # a dark slope streak running downhill
        image = PILImage.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(image)
        start = rng.uniform(20, 200, 2)
        end = start + rng.uniform(-1, 1, 2) * 60 + np.array([0, 120])
        draw.line([tuple(start), tuple(end)], fill=int(rng.uniform(30, 60)), width=int(rng.uniform(6, 12)))
        pixels = np.asarray(image.filter(ImageFilter.GaussianBlur(2)), float)
    elif kind == "edge":  # the black no-data margin of a map-projected image
        angle = rng.uniform(0, np.pi)
        side = (x - 113) * np.cos(angle) + (y - 113) * np.sin(angle) > rng.uniform(-40, 40)
        pixels[side] = 0
    return PILImage.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def demo_candidates(seed: int = 0) -> list[Candidate]:
    """Return the demo images as import candidates with observation metadata.

    The first LABELED_PER_CLASS images of each kind carry their kind as label; each
    observation holds images of every kind, so held-out observations test every class.
    """
    rng = np.random.default_rng(seed)
    candidates = []
    kinds = projects.PRESETS["hirise"]
    for index in range(IMAGES_PER_CLASS * len(kinds)):
        kind = kinds[index % len(kinds)]
        buffer = io.BytesIO()
        _draw(kind, rng).save(buffer, format="JPEG", quality=90)
        observation = index // len(kinds) % OBSERVATIONS
        metadata = {"source_id": f"DEMO_{observation:06d}_1950", "instrument": "generated",
                    "latitude": round(float(rng.uniform(-60, 60)), 3),
                    "acquired": f"2024-0{observation + 1}-15T10:00:00Z"}
        data = buffer.getvalue()
        label = kind if index // len(kinds) < LABELED_PER_CLASS else None
        candidates.append(Candidate(f"demo_{index:03d}.jpg", lambda data=data: data, metadata,
                                    label))
    return candidates


def create_demo(admin: User | None = None, train_now: bool = True) -> tuple[list[str], ImportReport]:
    """Create the demo project, its images, labels and quick model; return messages and report.

    Without admin, the first admin labels (one is created, its password in the messages, if
    there is none). train_now trains the model in this process; otherwise a job is queued.
    """
    messages = []
    if admin is None:
        admin = _demo_admin(messages)
    project = projects.find_project(DEMO_PROJECT)
    if project is None:
        project = projects.create_project(
            DEMO_PROJECT, preset="hirise",
            description="Generated craters, dunes, streaks and image edges to try the tool on.")
        messages.append(f"Created project {DEMO_PROJECT!r} (id {project.id}).")
    else:
        messages.append(f"Project {DEMO_PROJECT!r} exists already (id {project.id}).")
    report = run_import(project, ImportPlan(demo_candidates()), user_id=admin.id,
                        source="demo images")
    messages.append(f"Demo images: {report.summary()}.")
    messages.append(_train_model(project, admin, train_now))
    return messages, report


def _demo_admin(messages: list[str]) -> User:
    """Return the first active admin, creating one (its password in messages) if none exists."""
    admin = accounts.first_active_admin()
    if admin is not None:
        messages.append(f"An admin already exists ({admin.username!r}); log in with that account.")
        return admin
    name = DEMO_ADMIN
    while accounts.find_user(name) is not None:
        name += "_"
    admin, password = accounts.create_user(name, role="admin")
    messages.append(f"Created admin {name!r} with password: {password}")
    messages.append("Write it down: it is shown only this once.")
    return admin


def _train_model(project: Project, admin: User, train_now: bool) -> str:
    """Train the demo's quick model (here, or queued for the worker) unless one serves; say how."""
    serving = serving_version(project.id)
    if serving is not None:
        db.session.commit()
        return f"Model v{serving.version} serves the demo already."
    params = {"kind": "quick", "trigger": "demo"}
    if not train_now:
        try:
            job = jobs.submit("retrain", project.id, params, admin.id)
        except jobs.JobBusy as busy:
            job = busy.job
        return f"A quick model is training (job {job.id}); the model page shows its progress."
    # The console has no worker beside it: run the job here, recorded like any other.
    job = Job(kind="retrain", project_id=project.id, params=params, created_by_id=admin.id)
    db.session.add(job)
    db.session.commit()
    jobs.run_job(job.id)
    db.session.refresh(job)
    if job.state != "done":
        return f"The quick model was not trained: {job.error}"
    return (f"Trained quick model v{job.result['version']} on the labeled demo images "
            f"(held-out accuracy {job.result['held_out_accuracy']:.2f}); it predicted all "
            f"{job.result['predictions']} images.")
