"""Small generated images and manifests for the ML tests (no download, no real data)."""
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

CLASSES = ["bright", "dark", "stripes"]


def make_image(label: str, rng: np.random.Generator) -> Image.Image:
    """A 48x48 grayscale image whose look depends on its class."""
    noise = rng.normal(0, 12, (48, 48))
    if label == "bright":
        pixels = 190 + noise
    elif label == "dark":
        pixels = 50 + noise
    else:
        pixels = 120 + 80 * (np.arange(48)[None, :] // 6 % 2) + noise
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), mode="L")


@pytest.fixture(autouse=True)
def _two_threads():
    """Keep the tests polite on a shared 2-core machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(min(previous, 2))
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def image_set(tmp_path):
    """18 images in 3 classes and 6 groups; returns (manifest path, image root, frame)."""
    rng = np.random.default_rng(0)
    root = tmp_path / "images"
    root.mkdir()
    rows = []
    for index in range(18):
        label = CLASSES[index % 3]
        group = f"obs{index // 3}"
        name = f"{group}_{index:02d}.png"
        make_image(label, rng).save(root / name)
        rows.append({"filename": name, "label": label, "source_id": group,
                     "split": "val" if group in ("obs4", "obs5") else "train"})
    frame = pd.DataFrame(rows)
    manifest = tmp_path / "manifest.csv"
    frame.to_csv(manifest, index=False)
    return manifest, root, frame
