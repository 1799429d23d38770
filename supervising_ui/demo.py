"""The demo: a HiRISE-preset project with generated orbital-looking images, so a newcomer
sees the tool working without any data of their own."""
import io

import numpy as np
from PIL import Image as PILImage
from PIL import ImageDraw, ImageFilter

from . import accounts, projects
from .importing.runner import ImportReport, run_import
from .importing.sources import Candidate, ImportPlan

DEMO_PROJECT = "Demo (generated HiRISE-like images)"
DEMO_ADMIN = "admin"
IMAGE_SIZE = 227
IMAGES_PER_CLASS = 10
OBSERVATIONS = 6


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
    """Return the demo images as import candidates with observation metadata (no labels)."""
    rng = np.random.default_rng(seed)
    candidates = []
    kinds = projects.PRESETS["hirise"]
    for index in range(IMAGES_PER_CLASS * len(kinds)):
        kind = kinds[index % len(kinds)]
        buffer = io.BytesIO()
        _draw(kind, rng).save(buffer, format="JPEG", quality=90)
        observation = index % OBSERVATIONS
        metadata = {"source_id": f"DEMO_{observation:06d}_1950", "instrument": "generated",
                    "latitude": round(float(rng.uniform(-60, 60)), 3),
                    "acquired": f"2024-0{observation + 1}-15T10:00:00Z"}
        data = buffer.getvalue()
        candidates.append(Candidate(f"demo_{index:03d}.jpg", lambda data=data: data, metadata))
    return candidates


def create_demo() -> tuple[list[str], ImportReport]:
    """Create the demo project, its images and (if no admin exists) an admin; return messages."""
    messages = []
    admin = accounts.first_active_admin()
    if admin is None:
        name = DEMO_ADMIN
        while accounts.find_user(name) is not None:
            name += "_"
        admin, password = accounts.create_user(name, role="admin")
        messages.append(f"Created admin {name!r} with password: {password}")
        messages.append("Write it down: it is shown only this once.")
    else:
        messages.append(f"An admin already exists ({admin.username!r}); log in with that account.")
    project = projects.find_project(DEMO_PROJECT)
    if project is None:
        project = projects.create_project(
            DEMO_PROJECT, preset="hirise",
            description="Generated craters, dunes, streaks and image edges to try the tool on.")
        messages.append(f"Created project {DEMO_PROJECT!r} (id {project.id}).")
    else:
        messages.append(f"Project {DEMO_PROJECT!r} exists already (id {project.id}).")
    report = run_import(project, ImportPlan(demo_candidates()), source="demo images")
    messages.append(f"Demo images: {report.summary()}.")
    return messages, report
