"""The merge on real CTX tiles of the Mars crater catalogue reproduces the catalogue's merge."""

from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from supervising_ui.landmarks.formats import read_voc
from supervising_ui.landmarks.geometry import as_array, iou_matrix
from supervising_ui.landmarks.merge import merge_boxes

CTX = Path(__file__).resolve().parents[3] / "shared" / "data" / "observations" / "ctx-craters"
pytestmark = pytest.mark.skipif(not CTX.is_dir(),
                                reason="needs ../shared/data/observations/ctx-craters")


@pytest.mark.parametrize("tile", ["MC11E-H", "MC11E-J"])
def test_merge_at_one_vote_matches_the_catalogue(tile):
    raw = [box for path in sorted((CTX / "annotations" / "raw" / tile).glob("*.xml"))
           for box in read_voc(path.read_bytes(), annotator=path.stem)]
    catalogue = read_voc((CTX / "annotations" / "merged" / f"{tile}.xml").read_bytes())
    marks = merge_boxes(raw, min_votes=1)
    overlap = iou_matrix(as_array([mark.box for mark in marks]), as_array(catalogue))
    overlap[overlap < 0.5] = 0
    rows, columns = linear_sum_assignment(overlap, maximize=True)
    matched = int((overlap[rows, columns] >= 0.5).sum())
    assert 2 * matched / (len(marks) + len(catalogue)) >= 0.95
    # The catalogue's <confidence> is its vote count: ours agree on the matched craters.
    votes = np.array([marks[r].votes for r in rows])
    theirs = np.array([catalogue[c].score for c in columns])
    assert (votes == theirs).mean() >= 0.9
