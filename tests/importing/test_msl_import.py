"""The msl preset against the MSL data set's manifest: nothing rejected, and the per-row
rejection of a class outside the preset."""
import time
from collections import Counter

import pytest
from sqlalchemy import func, select

from supervising_ui.extensions import db
from supervising_ui.importing import batches
from supervising_ui.models import Image, Label, Project

from ..conftest import require_msl
from ..helpers import write_images


def test_msl_manifest_row_with_a_class_outside_the_preset_is_rejected(app, runner, users,
                                                                      tmp_path):
    assert runner.invoke(args=["create-project", "MSL", "--preset", "msl"]).exit_code == 0
    write_images(tmp_path / "images", 3)
    (tmp_path / "manifest.csv").write_text(
        "filename,label,sol,instrument,split\n"
        "img_000.jpg,chemin inlet open,3,mastcam_left,train\n"
        "img_001.jpg,sun,4,mahli,train\n"
        "img_002.jpg,sunset,182,mastcam_right,val\n")
    result = runner.invoke(args=["import", "MSL", "--manifest", str(tmp_path / "manifest.csv"),
                                 "--image-root", str(tmp_path / "images")])
    assert result.exit_code == 0, result.output
    assert "added 2 images (2 labels), 0 duplicates, 1 rejected" in result.output
    assert "rejected: img_002.jpg: unknown label 'sunset': valid classes are apxs, " in result.output
    with app.app_context():
        image = db.session.scalar(select(Image).where(Image.original_name == "img_000.jpg"))
        assert image.meta == {"sol": 3, "instrument": "mastcam_left", "split": "train"}
        [batch] = batches.project_batches(image.project_id)
        assert (batch.image_count, batch.source) == (2, "manifest manifest.csv")
        assert image.import_batch_id == batch.id


@pytest.mark.slow
@pytest.mark.msl
def test_real_msl_manifest_imports_with_nothing_rejected(app, runner, users):
    """5386 rows; two pairs of them (sols 180 and 182, C00 and C01 versions of one mahli frame,
    both 'drill holes') are byte-identical files: the second of each is a duplicate."""
    msl = require_msl()
    assert runner.invoke(args=["create-project", "MSL", "--preset", "msl"]).exit_code == 0
    started = time.perf_counter()
    result = runner.invoke(args=["import", "MSL", "--manifest", str(msl / "manifest.csv"),
                                 "--image-root", str(msl / "images")])
    print(f"\nMSL import of 5386 images: {time.perf_counter() - started:.1f} s")
    assert result.exit_code == 0, result.output
    assert "added 5384 images (5384 labels), 2 duplicates, 0 rejected" in result.output
    assert "duplicate: 0180MH0001490020102536C01_DRCL.JPG" in result.output
    with app.app_context():
        project = db.session.scalar(select(Project).where(Project.name == "MSL"))
        assert project.group_column == "sol"
        assert db.session.scalar(select(func.count(Label.id))) == 5384
        used = set(db.session.scalars(select(Label.label_class_id).distinct()))
        assert len(used) == 24, "every class of the data set but the image-less 'sun'"
        [batch] = batches.project_batches(project.id)
        assert batch.image_count == 5384
        instruments = Counter(meta["instrument"] for meta in db.session.scalars(select(Image.meta)))
        assert instruments == {"mastcam_right": 2029, "mastcam_left": 1680, "mahli": 1675}
