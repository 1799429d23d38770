"""Machine proposals for real: the proposals job over a shared CTX tile (2000 x 2000, four
work units) stores boxes inside the observation, at the proposer's density, and the
catalogue's merged craters of 16 pixels and more are mostly among them. Skips without
../shared/data/observations/ctx-craters."""
from pathlib import Path

import pytest
from sqlalchemy import select

from supervising_ui import storage
from supervising_ui.boxes import proposals
from supervising_ui.extensions import db
from supervising_ui.landmarks import formats
from supervising_ui.landmarks.geometry import Box as GeometryBox
from supervising_ui.landmarks.geometry import iou_matrix
from supervising_ui.models import Box, Job, Observation, ObservationTile
from supervising_ui.observations import files

from ..helpers import make_project

CTX = Path(__file__).resolve().parents[3] / "shared" / "data" / "observations" / "ctx-craters"
TILE = "MC11E-G"


def test_proposals_over_a_ctx_tile(app, users):
    image = CTX / "images" / f"{TILE}.png"
    if not image.is_file():
        pytest.skip("../shared/data/observations/ctx-craters is not present")
    pytest.importorskip("supervising_ui.landmarks.proposals")
    with app.app_context():
        project_id = make_project("ctx", classes=["crater"])
        key = storage.storage_key(storage.file_content_hash(image), "png")
        storage.store_file(files.observation_store(), key, image)
        observation = Observation(project_id=project_id, name=TILE, image_key=key, width=2000,
                                  height=2000, status="ready", tile_size=1024)
        db.session.add(observation)
        db.session.flush()
        db.session.add_all([ObservationTile(observation_id=observation.id, x=x, y=y,
                                            width=min(1024, 2000 - x), height=min(1024, 2000 - y))
                            for y in (0, 1024) for x in (0, 1024)])
        db.session.commit()
        job_id = proposals.request_proposals(observation, users["ada"])
        job = db.session.get(Job, job_id)
        assert job.state == "done", job.error
        found = db.session.scalars(select(Box).where(Box.source == "proposal")).all()
        assert job.result["proposals"] == len(found) > 0
        assert all(0 <= box.x_min < box.x_max <= 2000 and 0 <= box.y_min < box.y_max <= 2000
                   for box in found)
        assert job.result["per_megapixel"] <= 160  # the proposer's budget, tile by tile
        merged = [box for box in formats.read_voc(
            (CTX / "annotations" / "merged" / f"{TILE}.xml").read_bytes())
            if box.diameter >= 16]
        overlap = iou_matrix(merged, [GeometryBox(b.x_min, b.y_min, b.x_max, b.y_max)
                                      for b in found])
        recall = float((overlap.max(axis=1) >= 0.5).mean()) if len(merged) else 1.0
        print(f"{TILE}: {len(found)} proposals ({job.result['per_megapixel']} per megapixel), "
              f"recall of {len(merged)} merged craters >= 16 px at IoU 0.5: {recall:.2f}")
        assert recall >= 0.3  # a sanity floor: the figures are benchmarks/landmarks.py's
