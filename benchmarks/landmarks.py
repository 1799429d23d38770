"""Landmark merge and proposals on the eight shared CTX tiles of the Mars crater catalogue.

Reads ../shared/data/observations/ctx-craters (8 tiles of 2000 x 2000 px, six annotators'
Pascal VOC boxes per tile and the catalogue's own merge; Lewis et al., Data 2020, 5(3), 70,
CC BY 4.0) and prints:

1. The merge of the six annotators' raw boxes (supervising_ui.landmarks.merge) against the
   catalogue's merged boxes: precision, recall and F1 at IoU >= 0.5, one-to-one matching by
   the Hungarian method (scipy's linear_sum_assignment, maximising the summed IoU of pairs
   at or over 0.5), for minimum votes 1-4, per tile and pooled, with the spread over tiles.
   The merge's IoU threshold and linkage are chosen by leave-one-tile-out cross-validation
   (chosen on seven tiles at minimum votes 1, scored on the eighth).
2. The choice of the default minimum votes, judged as the tool will be (against boxes an
   expert drew, not the catalogue's merge): each annotator of each tile held out in turn,
   the other five merged at k = 1..4 and scored against the held-out annotator's boxes;
   and the six merged at k against the catalogue's craters marked by at least 3 of 6.
3. The proposals (supervising_ui.landmarks.proposals): recall of the catalogue's merged
   craters at least 16 px across (IoU >= 0.5 with any proposal) and proposals per
   megapixel, per tile and pooled.
4. If benchmarks/observation_viewer.py is there, its measure_viewer() figures.

    python benchmarks/landmarks.py [--data DIR] [--tiles ABCEGHIJ] [--skip-merge]
        [--skip-proposals] [--skip-viewer]

A few minutes on 2 cores (the proposals take most of it).
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.optimize import linear_sum_assignment

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from supervising_ui.landmarks.formats import read_voc  # noqa: E402
from supervising_ui.landmarks.geometry import Box, as_array, iou_matrix  # noqa: E402
from supervising_ui.landmarks.merge import (  # noqa: E402
    DEFAULT_LINKAGE,
    DEFAULT_MIN_IOU,
    DEFAULT_MIN_VOTES,
    LINKAGES,
    merge_boxes,
)

MATCH_IOU = 0.5
VOTES = (1, 2, 3, 4)
MIN_IOUS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5)
PROPOSAL_MIN_SIZE = 16


@dataclass
class Tile:
    """One CTX tile: its raw boxes per annotator and the catalogue's merge."""

    name: str
    image: Path
    raw: dict[str, list[Box]]
    merged: list[Box]


def load_tiles(data: Path, names: str) -> list[Tile]:
    """The tiles named by letter, read from data/ctx-craters."""
    root = data / "ctx-craters"
    tiles = []
    for letter in names:
        name = f"MC11E-{letter}"
        raw = {path.stem: read_voc(path.read_bytes(), annotator=path.stem)
               for path in sorted((root / "annotations" / "raw" / name).glob("*.xml"))}
        merged_path = root / "annotations" / "merged" / f"{name}.xml"
        merged = read_voc(merged_path.read_bytes(), annotator="catalogue")
        tiles.append(Tile(name, root / "images" / f"{name}.png", raw, merged))
    return tiles


def matches(predicted: np.ndarray, reference: np.ndarray) -> int:
    """Pairs matched one-to-one at IoU >= 0.5 (Hungarian, maximising the summed IoU)."""
    if len(predicted) == 0 or len(reference) == 0:
        return 0
    overlap = iou_matrix(predicted, reference)
    overlap[overlap < MATCH_IOU] = 0.0
    rows, columns = linear_sum_assignment(overlap, maximize=True)
    return int((overlap[rows, columns] >= MATCH_IOU).sum())


def scores(true_positive: int, predicted: int, reference: int) -> tuple[float, float, float]:
    """Precision, recall, F1 from counts."""
    precision = true_positive / predicted if predicted else 0.0
    recall = true_positive / reference if reference else 0.0
    f1 = 2 * true_positive / (predicted + reference) if predicted + reference else 0.0
    return precision, recall, f1


def counts(boxes: list[Box], reference: list[Box], min_votes: int, **merge) -> tuple:
    """(true positives, predicted, reference) of a merge against reference boxes."""
    landmarks = merge_boxes(boxes, min_votes=min_votes, **merge)
    predicted = as_array([mark.box for mark in landmarks])
    return matches(predicted, as_array(reference)), len(predicted), len(reference)


def pooled(rows: list[tuple]) -> tuple[float, float, float]:
    """Scores of summed counts."""
    return scores(*(sum(row[i] for row in rows) for i in range(3)))


def spread(values: list[float]) -> str:
    """Mean, standard deviation and range of per-tile figures."""
    return (f"mean {np.mean(values):.3f} sd {np.std(values):.3f} "
            f"range {min(values):.3f}-{max(values):.3f}")


def all_boxes(tile: Tile) -> list[Box]:
    """Every annotator's boxes of a tile."""
    return [box for boxes in tile.raw.values() for box in boxes]


def cross_validate(tiles: list[Tile]) -> dict:
    """Leave-one-tile-out choice of (min_iou, linkage) at min votes 1; returns the choices."""
    grid = [(threshold, linkage) for linkage in LINKAGES for threshold in MIN_IOUS]
    table = {setting: [counts(all_boxes(tile), tile.merged, 1, min_iou=setting[0],
                              linkage=setting[1]) for tile in tiles] for setting in grid}
    print("\n(1a) Leave-one-tile-out choice of the merge's IoU threshold and linkage "
          "(chosen on 7 tiles at min votes 1, F1 on the 8th)")
    held_out, chosen = [], {}
    for index, tile in enumerate(tiles):
        def training_f1(setting, index=index):
            return pooled([row for i, row in enumerate(table[setting]) if i != index])[2]
        best = max(grid, key=training_f1)
        chosen[tile.name] = best
        f1 = scores(*table[best][index])[2]
        held_out.append(f1)
        print(f"  held out {tile.name}: chose min_iou {best[0]} {best[1]:8s} "
              f"(F1 on the other 7: {training_f1(best):.3f}), F1 on {tile.name}: {f1:.3f}")
    print(f"  held-out F1 over {len(tiles)} tiles: {spread(held_out)}")
    print("  every setting, pooled F1 over all tiles (for reading only; not used to choose):")
    for setting in grid:
        print(f"    min_iou {setting[0]:<5} {setting[1]:8s} F1 {pooled(table[setting])[2]:.3f}")
    return chosen


def merge_against_catalogue(tiles: list[Tile], chosen: dict) -> None:
    """Part 1: P, R, F1 per tile and pooled for min votes 1-4."""
    print("\n(1b) Merge of the six annotators vs the catalogue's merged boxes, IoU >= 0.5, "
          "Hungarian one-to-one; each tile merged with the setting chosen without it")
    for min_votes in VOTES:
        rows = []
        for tile in tiles:
            threshold, linkage = chosen[tile.name]
            rows.append(counts(all_boxes(tile), tile.merged, min_votes, min_iou=threshold,
                               linkage=linkage))
        per_tile = [scores(*row) for row in rows]
        print(f"  min votes {min_votes}: pooled P {pooled(rows)[0]:.3f} R {pooled(rows)[1]:.3f} "
              f"F1 {pooled(rows)[2]:.3f}; per-tile F1 {spread([s[2] for s in per_tile])}")
        print("    " + "  ".join(f"{tile.name[-1]}: P {s[0]:.2f} R {s[1]:.2f} F1 {s[2]:.2f} "
                                  f"({row[1]}/{row[2]})"
                                  for tile, s, row in zip(tiles, per_tile, rows, strict=True)))


def choose_min_votes(tiles: list[Tile]) -> None:
    """Part 2: leave-one-annotator-out and the >= 3-of-6 reference, k = 1..4."""
    print(f"\n(2) Choosing the default min votes (default merge: min_iou {DEFAULT_MIN_IOU}, "
          f"{DEFAULT_LINKAGE} linkage)")
    print("  (2a) each annotator held out as the 'expert', the other five merged at k:")
    per_k = {k: [] for k in VOTES}
    for tile in tiles:
        for held, reference in tile.raw.items():
            others = [box for name, boxes in tile.raw.items() if name != held for box in boxes]
            for k in VOTES:
                per_k[k].append(counts(others, reference, k))
    for k in VOTES:
        rows = per_k[k]
        f1s = [scores(*row)[2] for row in rows]
        precision, recall, f1 = pooled(rows)
        print(f"    k={k}: pooled P {precision:.3f} R {recall:.3f} F1 {f1:.3f}; per held-out "
              f"annotator ({len(rows)} tile-annotator pairs) F1 {spread(f1s)}")
    print("  (2b) the six merged at k vs the catalogue's craters marked by >= 3 of 6:")
    for k in VOTES:
        rows = []
        for tile in tiles:
            strong = [box for box in tile.merged if (box.score or 0) >= 3]
            rows.append(counts(all_boxes(tile), strong, k))
        precision, recall, f1 = pooled(rows)
        print(f"    k={k}: pooled P {precision:.3f} R {recall:.3f} F1 {f1:.3f}; per-tile F1 "
              f"{spread([scores(*row)[2] for row in rows])}")
    print(f"  DEFAULT_MIN_VOTES in supervising_ui/landmarks/merge.py is {DEFAULT_MIN_VOTES}")


def proposals(tiles: list[Tile]) -> None:
    """Part 3: recall of merged craters >= 16 px and proposals per megapixel."""
    from supervising_ui.landmarks.proposals import propose
    print(f"\n(3) Proposals: recall of the catalogue's merged craters >= {PROPOSAL_MIN_SIZE} px "
          "across (IoU >= 0.5 with any proposal), proposals per megapixel")
    found = total = count = 0
    pixels = 0.0
    recalls = []
    for tile in tiles:
        gray = np.asarray(Image.open(tile.image).convert("L"))
        started = time.perf_counter()
        boxes = propose(gray)
        seconds = time.perf_counter() - started
        big = as_array([box for box in tile.merged if box.diameter >= PROPOSAL_MIN_SIZE])
        overlap = iou_matrix(big, as_array(boxes))
        hit = int((overlap.max(axis=1) >= MATCH_IOU).sum()) if overlap.size else 0
        one_to_one = matches(as_array(boxes), big)
        megapixels = gray.size / 1e6
        recalls.append(hit / len(big) if len(big) else 0.0)
        print(f"  {tile.name}: {hit}/{len(big)} found (recall {recalls[-1]:.3f}; one-to-one "
              f"{one_to_one}), {len(boxes)} proposals = {len(boxes) / megapixels:.1f} per MP, "
              f"{seconds:.1f} s")
        found, total, count, pixels = found + hit, total + len(big), count + len(boxes), \
            pixels + megapixels
    print(f"  pooled recall {found / total:.3f} ({found}/{total}), per-tile {spread(recalls)}; "
          f"{count / pixels:.1f} proposals per MP")


def viewer() -> None:
    """Part 4: the hook for benchmarks/observation_viewer.py (another module's figures)."""
    path = Path(__file__).with_name("observation_viewer.py")
    print("\n(4) Observation viewer (benchmarks/observation_viewer.py measure_viewer())")
    if not path.exists():
        print("  not measured: benchmarks/observation_viewer.py is not in this checkout")
        return
    spec = importlib.util.spec_from_file_location("observation_viewer", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "measure_viewer"):
        print("  not measured: observation_viewer.py has no measure_viewer()")
        return
    for key, value in module.measure_viewer().items():
        print(f"  {key}: {value}")


def main() -> None:
    """Parse the options and print every part."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" /
                        "observations")
    parser.add_argument("--tiles", default="ABCEGHIJ")
    parser.add_argument("--skip-merge", action="store_true", help="parts 3-4 only")
    parser.add_argument("--skip-proposals", action="store_true")
    parser.add_argument("--skip-viewer", action="store_true")
    args = parser.parse_args()
    if not (args.data / "ctx-craters").is_dir():
        sys.exit(f"no ctx-craters under {args.data}: pass --data ../shared/data/observations")
    load = os.getloadavg()[0]
    print(f"landmarks benchmark: tiles {args.tiles}, load average {load:.1f} on "
          f"{os.cpu_count()} CPUs at the start")
    tiles = load_tiles(args.data, args.tiles)
    for tile in tiles:
        print(f"  {tile.name}: {sum(len(b) for b in tile.raw.values())} raw boxes from "
              f"{len(tile.raw)} annotators, {len(tile.merged)} merged")
    if not args.skip_merge:
        started = time.perf_counter()
        chosen = cross_validate(tiles)
        merge_against_catalogue(tiles, chosen)
        choose_min_votes(tiles)
        print(f"  (parts 1-2 took {time.perf_counter() - started:.0f} s)")
    if not args.skip_proposals:
        proposals(tiles)
    if not args.skip_viewer:
        viewer()
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
