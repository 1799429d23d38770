"""Shared bits of the observation tests: the shared HiRISE browse image and its labels, and a
small synthetic observation for tests that need none of ../shared."""
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

SHARED_OBSERVATIONS = Path(__file__).resolve().parents[3] / "shared" / "data" / "observations"
HIRISE = SHARED_OBSERVATIONS / "hirise"
BROWSE = HIRISE / "ESP_072719_1970_RED.browse.jpg"
PDS3_LABEL = HIRISE / "ESP_072719_1970_RED.LBL"
ATLAS_LABEL = HIRISE / "ESP_072719_1970_RED.xml"
BROWSE_SIZE = (2048, 2999)


def require_hirise_observation() -> Path:
    """Skip the calling test when ../shared/data/observations/hirise is absent."""
    if not (BROWSE.is_file() and PDS3_LABEL.is_file()):
        pytest.skip("../shared/data/observations/hirise is not present")
    return HIRISE


def synthetic_image(path: Path, size=(1300, 900), fmt="PNG") -> Path:
    """Write a grey image with a bright disc (a 'crater') and return its path."""
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width]
    pixels = (60 + (xx * 7 + yy * 3) % 90).astype(np.uint8)
    pixels[(xx - 400) ** 2 + (yy - 300) ** 2 < 40 ** 2] = 230
    PILImage.fromarray(pixels, "L").save(path, fmt)
    return path


# A PDS4 label of the same product as the shared PDS3 label, written from its numbers (cart:
# class, as HiRISE's PDS4 RDR labels state them; the data file is absent on purpose).
PDS4_TEMPLATE = """<?xml version="1.0" encoding="UTF-8"?>
<Product_Observational xmlns="http://pds.nasa.gov/pds4/pds/v1"
    xmlns:cart="http://pds.nasa.gov/pds4/cart/v1">
  <Identification_Area>
    <logical_identifier>urn:nasa:pds:mro_hirise:rdr:esp_072719_1970_red</logical_identifier>
    <version_id>1.0</version_id>
    <title>ESP_072719_1970_RED</title>
    <information_model_version>1.11.0.0</information_model_version>
    <product_class>Product_Observational</product_class>
  </Identification_Area>
  <Observation_Area>
    <Discipline_Area>
      <cart:Cartography>
        <cart:Spatial_Domain>
          <cart:Bounding_Coordinates>
            <cart:west_bounding_coordinate unit="deg">246.35285650919</cart:west_bounding_coordinate>
            <cart:east_bounding_coordinate unit="deg">246.45701884997</cart:east_bounding_coordinate>
            <cart:north_bounding_coordinate unit="deg">17.100472429291</cart:north_bounding_coordinate>
            <cart:south_bounding_coordinate unit="deg">16.953105677678</cart:south_bounding_coordinate>
          </cart:Bounding_Coordinates>
        </cart:Spatial_Domain>
        <cart:Spatial_Reference_Information>
          <cart:Horizontal_Coordinate_System_Definition>
            <cart:Planar>
              <cart:Map_Projection>
                <cart:map_projection_name>Equirectangular</cart:map_projection_name>
                <cart:Equirectangular>
                  <cart:standard_parallel_1 unit="deg">15.0</cart:standard_parallel_1>
                  <cart:longitude_of_central_meridian unit="deg">180.0</cart:longitude_of_central_meridian>
                  <cart:latitude_of_projection_origin unit="deg">0.0</cart:latitude_of_projection_origin>
                </cart:Equirectangular>
              </cart:Map_Projection>
              <cart:Planar_Coordinate_Information>
                <cart:planar_coordinate_encoding_method>Coordinate Pair</cart:planar_coordinate_encoding_method>
                <cart:Coordinate_Representation>
                  <cart:pixel_resolution_x unit="m/pixel">0.25</cart:pixel_resolution_x>
                  <cart:pixel_resolution_y unit="m/pixel">0.25</cart:pixel_resolution_y>
                </cart:Coordinate_Representation>
              </cart:Planar_Coordinate_Information>
              <cart:Geo_Transformation>
                <cart:upperleft_corner_x unit="m">3797519.875</cart:upperleft_corner_x>
                <cart:upperleft_corner_y unit="m">1013222.375</cart:upperleft_corner_y>
              </cart:Geo_Transformation>
            </cart:Planar>
            <cart:Geodetic_Model>
              <cart:latitude_type>Planetocentric</cart:latitude_type>
              <cart:a_axis_radius unit="km">3394.8398133163</cart:a_axis_radius>
              <cart:b_axis_radius unit="km">3394.8398133163</cart:b_axis_radius>
              <cart:c_axis_radius unit="km">3394.8398133163</cart:c_axis_radius>
              <cart:longitude_direction>Positive East</cart:longitude_direction>
            </cart:Geodetic_Model>
          </cart:Horizontal_Coordinate_System_Definition>
        </cart:Spatial_Reference_Information>
      </cart:Cartography>
    </Discipline_Area>
  </Observation_Area>
  <File_Area_Observational>
    <File><file_name>ESP_072719_1970_RED.JP2</file_name></File>
    <Array_2D_Image>
      <offset unit="byte">0</offset>
      <axes>2</axes>
      <axis_index_order>Last Index Fastest</axis_index_order>
      <Element_Array><data_type>UnsignedByte</data_type></Element_Array>
      <Axis_Array><axis_name>Line</axis_name><elements>34927</elements><sequence_number>1</sequence_number></Axis_Array>
      <Axis_Array><axis_name>Sample</axis_name><elements>23846</elements><sequence_number>2</sequence_number></Axis_Array>
    </Array_2D_Image>
  </File_Area_Observational>
</Product_Observational>
"""
