"""Importing observations (service, console command, admin form), the tiling job and the
deep-zoom tiles served by id; bad files get a clear error and leave nothing behind."""
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from supervising_ui import storage
from supervising_ui.extensions import db
from supervising_ui.models import Observation, ObservationTile
from supervising_ui.observations import files
from supervising_ui.observations.service import ObservationRefused, import_observation
from tests.helpers import make_project, project_of

from .helpers import BROWSE, BROWSE_SIZE, PDS3_LABEL, require_hirise_observation, synthetic_image


def stored_files(app) -> list[Path]:
    """Every file in the managed store."""
    return [path for path in Path(app.config["IMAGE_STORE"]).rglob("*") if path.is_file()]


def test_import_stores_the_original_makes_work_units_and_tiles(app, tmp_path):
    image = synthetic_image(tmp_path / "scene.png", size=(1300, 900))
    with app.app_context():
        project = project_of(make_project("craters", classes=["crater", "other"]))
        observation, job = import_observation(project, "scene", image)
        db.session.refresh(observation)
        assert (observation.width, observation.height) == (1300, 900)
        assert observation.status == "ready", observation.error  # the memory queue ran the job
        assert observation.meters_per_pixel is None and observation.projection is None
        stored = storage.path_for_key(files.observation_store(), observation.image_key)
        assert stored.read_bytes() == image.read_bytes()
        tiles = db.session.query(ObservationTile).filter_by(observation_id=observation.id).all()
        assert sorted((tile.x, tile.y, tile.width, tile.height) for tile in tiles) == [
            (0, 0, 1024, 900), (1024, 0, 276, 900)]
        levels = files.deepzoom_levels(1300, 900)
        assert levels == 12
        top = files.tile_path(observation.id, 1300, 900, levels - 1, 5, 3)
        assert top.is_file()
        with PILImage.open(top) as picture:  # the last tile: 1300 - 5*256 = 20 px + overlap
            assert picture.size == (21, 900 - 3 * 256 + 1)
        assert files.tile_path(observation.id, 1300, 900, levels - 1, 6, 0) is None
        assert files.tile_path(observation.id, 1300, 900, levels, 0, 0) is None


@pytest.mark.parametrize("content, reason", [
    (b"not an image at all", "not an image libvips can read"),
    (b"GIF89a" + bytes(40), "not an image libvips can read|format gif is not accepted"),
])
def test_bad_images_are_refused_and_nothing_is_stored(app, tmp_path, content, reason):
    bad = tmp_path / "bad.png"
    bad.write_bytes(content)
    with app.app_context():
        project = project_of(make_project("craters"))
        with pytest.raises(ObservationRefused, match=reason):
            import_observation(project, "bad", bad)
        assert db.session.query(Observation).count() == 0
        assert stored_files(app) == []


def test_a_bad_label_or_a_taken_name_is_refused_before_anything_is_written(app, tmp_path):
    image = synthetic_image(tmp_path / "scene.png", size=(300, 200))
    label = tmp_path / "scene.lbl"
    label.write_text("PDS_VERSION_ID = PDS3\nOBJECT = IMAGE\nLINES = 3\nEND_OBJECT = IMAGE\nEND\n")
    with app.app_context():
        project = project_of(make_project("craters"))
        with pytest.raises(ObservationRefused, match="no IMAGE_MAP_PROJECTION"):
            import_observation(project, "scene", image, label)
        assert stored_files(app) == [] and db.session.query(Observation).count() == 0
        import_observation(project, "scene", image)
        with pytest.raises(ObservationRefused, match="already has an observation 'scene'"):
            import_observation(project, "scene", image)
        assert db.session.query(Observation).count() == 1


def test_a_file_that_breaks_during_tiling_fails_with_the_reason(app, tmp_path):
    image = synthetic_image(tmp_path / "scene.jpg", size=(600, 400), fmt="JPEG")
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(image.read_bytes()[:3000])
    with app.app_context():
        project = project_of(make_project("craters"))
        observation, job = import_observation(project, "truncated", truncated)
        db.session.refresh(observation)
        assert observation.status == "failed"
        assert "tiling failed" in observation.error
        assert not files.deepzoom_folder(observation.id).parent.exists() or not any(
            files.deepzoom_folder(observation.id).parent.iterdir())  # no half pyramid
        assert db.session.get(type(job), job.id).state == "failed"


def test_import_observation_command_with_the_hirise_label(app, runner):
    require_hirise_observation()
    with app.app_context():
        make_project("hirise", classes=["crater", "other"])
    result = runner.invoke(args=["import-observation", "hirise", "--image", str(BROWSE),
                                 "--label", str(PDS3_LABEL)])
    assert result.exit_code == 0, result.output
    assert re.search(r"2048 x 2999 pixels, 2\.911 m/pixel", result.output)
    assert "is ready" in result.output
    with app.app_context():
        observation = db.session.query(Observation).one()
        assert observation.name == "ESP_072719_1970_RED.browse"
        assert (observation.width, observation.height) == BROWSE_SIZE
        assert observation.label_kind == "pds3"
        assert db.session.query(ObservationTile).count() == 2 * 3
    again = runner.invoke(args=["import-observation", "hirise", "--image", str(BROWSE)])
    assert again.exit_code == 1 and "already has an observation" in again.output
    missing = runner.invoke(args=["import-observation", "nope", "--image", str(BROWSE)])
    assert missing.exit_code == 1 and "nope" in missing.output


@pytest.mark.parametrize("fmt, suffix, mode", [("JPEG2000", "jp2", "L"), ("TIFF", "tif", "I;16")])
def test_jpeg_2000_and_16_bit_tiff_are_tiled(app, tmp_path, fmt, suffix, mode):
    picture = PILImage.open(synthetic_image(tmp_path / "scene.png", size=(700, 500)))
    if mode == "I;16":
        picture = picture.point(lambda value: value * 200, "I").convert("I;16")
    source = tmp_path / f"scene.{suffix}"
    picture.save(source, fmt)
    with app.app_context():
        project = project_of(make_project("craters"))
        observation, _job = import_observation(project, f"scene-{suffix}", source)
        db.session.refresh(observation)
        assert observation.status == "ready", observation.error
        assert observation.image_key.endswith(f".{suffix}")
        top = files.deepzoom_levels(700, 500) - 1
        with PILImage.open(files.tile_path(observation.id, 700, 500, top, 1, 1)) as tile:
            pixels = np.asarray(tile.convert("L"))
        assert pixels.max() > 150 and pixels.min() < 120  # the disc and the background, stretched
