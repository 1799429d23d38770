"""The landmark downloads open in the tools people use: the GeoJSON is valid (with longitude
and latitude from the observation's projection), the COCO file loads in pycocotools, the VOC
file reads back, the CSV carries votes and coordinates; an unknown format is a 404."""
import csv
import io
import json

import geojson
from pycocotools.coco import COCO
from sqlalchemy import select

from supervising_ui.boxes import merging
from supervising_ui.extensions import db
from supervising_ui.landmarks import formats
from supervising_ui.models import Box, LabelClass, Observation

from .helpers import make_observation

# A simple equirectangular projection (observations/geo.py's dict) near 17 N, 40 E.
PROJECTION = {"type": "equirectangular", "radius_m": 3396190.0, "map_scale": 1.0,
              "center_latitude": 17.0, "center_longitude": 40.0, "line_offset": 17.0 * 59274.0,
              "sample_offset": 0.0, "product_per_pixel_x": 1.0, "product_per_pixel_y": 1.0}


def _landmarks(app, users, projection=None):
    with app.app_context():
        observation_id, _ = make_observation(projection=projection)
        crater = db.session.scalar(select(LabelClass.id).where(LabelClass.name == "crater"))
        for name, shift in (("lee", 0), ("liu", 2)):
            db.session.add(Box(observation_id=observation_id, user_id=users[name], x_min=40 + shift,
                               y_min=40, x_max=80 + shift, y_max=80, label_class_id=crater))
        db.session.commit()
        merging.merge_observation(observation_id)
        return observation_id, db.session.get(Observation, observation_id).project_id


def test_downloads_open_in_their_tools(app, client, auth, users, tmp_path):
    observation_id, _ = _landmarks(app, users)
    auth.login("lee")
    base = f"/api/observations/{observation_id}/landmarks"
    coco = client.get(f"{base}.coco")
    assert coco.status_code == 200 and "obs-1-landmarks.json" in coco.headers["Content-Disposition"]
    (tmp_path / "coco.json").write_bytes(coco.data)
    loaded = COCO(str(tmp_path / "coco.json"))
    assert len(loaded.getAnnIds()) == 1
    assert loaded.loadImgs(loaded.getImgIds())[0]["width"] == 300
    voc = client.get(f"{base}.voc")
    assert [(box.label, box.x_min) for box in formats.read_voc(voc.data)] == [("crater", 41)]
    rows = list(csv.DictReader(io.StringIO(client.get(f"{base}.csv").get_data(as_text=True))))
    assert [(row["class"], row["votes"], row["latitude"]) for row in rows] == [("crater", "2", "")]
    pixels = json.loads(client.get(f"{base}.geojson").data)
    assert geojson.loads(json.dumps(pixels)).is_valid
    assert "pixels" in pixels["features"][0]["properties"]["coordinates"]
    assert client.get(f"{base}.kml").status_code == 404


def test_geojson_in_degrees_where_a_label_gives_a_projection(app, client, auth, users):
    observation_id, _ = _landmarks(app, users, projection=PROJECTION)
    auth.login("lee")
    document = json.loads(client.get(f"/api/observations/{observation_id}/landmarks.geojson").data)
    assert geojson.loads(json.dumps(document)).is_valid
    feature = document["features"][0]
    longitude, latitude = feature["geometry"]["coordinates"][0][0]
    assert 39.9 < longitude < 40.1 and 16.9 < latitude < 17.1
    assert feature["properties"]["votes"] == 2
