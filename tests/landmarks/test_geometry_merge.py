"""Boxes, IoU and the merge of several annotators' boxes into landmarks."""

import time

import numpy as np
import pytest

from supervising_ui.landmarks.geometry import Box, iou, iou_matrix, overlapping_pairs
from supervising_ui.landmarks.merge import (
    PROPOSAL_ANNOTATOR,
    Landmark,
    cluster_boxes,
    merge_boxes,
)


def test_box_helpers():
    box = Box(10, 20, 30, 60)
    assert (box.width, box.height, box.center, box.diameter) == (20, 40, (20, 40), 30)
    assert box.label == "crater" and box.annotator == "" and box.score is None
    assert Box.from_center(5, 5, 4) == Box(3, 3, 7, 7)
    assert not Box(5, 5, 5, 9).is_valid()


def test_iou_known_values():
    a = Box(0, 0, 10, 10)
    assert iou(a, a) == 1.0
    assert iou(a, Box(5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert iou(a, Box(10, 0, 20, 10)) == 0.0  # touching edges, max exclusive


def test_iou_matrix_matches_iou():
    rng = np.random.default_rng(1)
    boxes = [Box.from_center(*rng.uniform(0, 50, 2), rng.uniform(2, 20)) for _ in range(30)]
    matrix = iou_matrix(boxes, boxes[:7])
    assert matrix.shape == (30, 7)
    for i in range(30):
        for j in range(7):
            assert matrix[i, j] == pytest.approx(iou(boxes[i], boxes[j]))


def test_overlapping_pairs_finds_every_overlap():
    rng = np.random.default_rng(2)
    centres_and_sizes = rng.uniform(1, 300, (400, 3)) * [1, 1, 0.1]
    corners = np.array([[x - s, y - s, x + s, y + s] for x, y, s in centres_and_sizes])
    left, right, values = overlapping_pairs(corners)
    dense = np.triu(iou_matrix(corners, corners), k=1)
    expected = set(zip(*np.nonzero(dense > 0), strict=True))
    assert set(zip(left.tolist(), right.tolist(), strict=True)) == expected
    assert np.allclose(values, dense[left, right])
    a_left, b_right, _ = overlapping_pairs(corners[:100], corners[100:])
    cross = iou_matrix(corners[:100], corners[100:])
    assert set(zip(a_left.tolist(), b_right.tolist(), strict=True)) == set(
        zip(*np.nonzero(cross > 0), strict=True))


def _marked(x, y, size, annotator, jitter=0.0, label="crater"):
    return Box.from_center(x + jitter, y - jitter, size, label=label, annotator=annotator)


def test_merge_counts_votes_and_means_boxes():
    boxes = [_marked(50, 50, 20, "ann", 1), _marked(50, 50, 20, "bob", -1),
             _marked(50, 50, 20, "cy", 0), _marked(200, 200, 10, "ann")]
    marks = merge_boxes(boxes, min_votes=1)
    assert [mark.votes for mark in marks] == [3, 1]
    first = marks[0]
    assert isinstance(first, Landmark)
    assert first.annotators == ("ann", "bob", "cy") and len(first.members) == 3
    assert first.box.center == pytest.approx((50, 50)) and first.box.width == pytest.approx(20)
    assert [mark.votes for mark in merge_boxes(boxes, min_votes=2)] == [3]
    assert merge_boxes(boxes, min_votes=4) == []


def test_one_box_per_annotator_per_cluster():
    # One annotator drew the same crater twice: the two boxes stay in separate landmarks.
    boxes = [_marked(50, 50, 20, "ann"), _marked(51, 50, 20, "ann"), _marked(50, 51, 20, "bob")]
    marks = merge_boxes(boxes, min_votes=1)
    assert sorted(mark.votes for mark in marks) == [1, 2]
    for mark in marks:
        names = [box.annotator for box in mark.members]
        assert len(names) == len(set(names))


def test_label_by_majority_of_members():
    boxes = [_marked(50, 50, 20, "a", label="crater"), _marked(50, 50, 20, "b", label="dune"),
             _marked(50, 50, 20, "c", label="dune")]
    assert merge_boxes(boxes, min_votes=1)[0].box.label == "dune"


def test_machine_never_settles_alone():
    machine = _marked(50, 50, 20, PROPOSAL_ANNOTATOR)
    human = _marked(50, 50, 20, "ann", 1)
    assert merge_boxes([machine], min_votes=1) == []
    (mark,) = merge_boxes([machine, human], min_votes=1)
    assert mark.votes == 2 and mark.human_votes == 1 and mark.machine_vote
    # The machine's vote never counts toward min_votes ...
    assert merge_boxes([machine, human], min_votes=2) == []
    # ... and its box does not move the mean box.
    assert mark.box.center == pytest.approx(human.center)
    second = _marked(50, 50, 20, "bob", -1)
    (mark,) = merge_boxes([machine, human, second], min_votes=2)
    assert mark.votes == 3 and mark.human_votes == 2


def test_far_boxes_stay_apart_and_bad_input_is_refused():
    boxes = [_marked(10, 10, 8, "a"), _marked(30, 10, 8, "b"), Box(5, 5, 5, 9, annotator="c")]
    assert len(cluster_boxes(boxes)) == 2  # the degenerate box is ignored
    with pytest.raises(ValueError, match="min_votes"):
        merge_boxes(boxes, min_votes=0)
    with pytest.raises(ValueError, match="linkage"):
        merge_boxes(boxes, linkage="ward")
    assert merge_boxes([]) == []


@pytest.mark.parametrize("linkage", ["average", "complete", "single"])
def test_linkages_recover_synthetic_craters(linkage):
    rng = np.random.default_rng(3)
    centres = rng.uniform(20, 1980, (300, 2))
    sizes = rng.uniform(8, 30, 300)
    boxes = [_marked(x + rng.normal(0, 1), y + rng.normal(0, 1), s * rng.uniform(0.9, 1.1), name)
             for (x, y), s in zip(centres, sizes, strict=True) for name in ("a", "b", "c")]
    marks = merge_boxes(boxes, min_votes=3, linkage=linkage)
    assert len(marks) >= 280  # a few craters overlap by chance and may split


def test_merge_4000_boxes_is_fast():
    rng = np.random.default_rng(4)
    centres = rng.uniform(0, 2000, (700, 2))
    boxes = [_marked(x + rng.normal(0, 1.5), y + rng.normal(0, 1.5), rng.uniform(8, 25), name)
             for x, y in centres for name in "abcdef"][:4000]
    started = time.perf_counter()
    marks = merge_boxes(boxes, min_votes=1)
    assert time.perf_counter() - started < 5.0
    assert 600 <= len(marks) <= 1400
