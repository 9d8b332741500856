"""RLE parsing, segmentation decoding (compressed / uncompressed RLE, polygons) and the painting rule."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from segval.dataset import rle
from segval.dataset.segmentation import decode_segmentation
from segval.dataset.semantic import paint_order, rasterize_semantic
from segval.errors import DatasetError


def test_counts_parser_matches_pycocotools():
    rng = np.random.default_rng(0)
    for i in range(200):
        h, w = (int(v) for v in rng.integers(1, 50, 2))
        m = rng.random((h, w)) < rng.random()
        if i % 4 == 0:
            m[:] = bool(i % 8)  # all-zero / all-one masks
        enc = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
        rl = rle.from_counts_string(enc["counts"].decode(), h, w)
        np.testing.assert_array_equal(rl.decode(), m)
        assert rl.area == int(mask_utils.area(enc)) == int(m.sum())
        np.testing.assert_array_equal(rle.from_mask(m).counts, rl.counts)


def test_counts_parser_large_values():
    # long runs need multi-character values and negative deltas
    m = np.zeros((300, 400), bool)
    m[5:290, 10:12] = True
    m[0, 399] = True
    enc = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
    np.testing.assert_array_equal(rle.from_counts_string(enc["counts"], 300, 400).decode(), m)


def test_uncompressed_rle_vs_hand_mask():
    # column-major runs on a 3x4 image: 2 zeros, 3 ones, 7 zeros
    seg = {"size": [3, 4], "counts": [2, 3, 7]}
    expected = np.array([[0, 1, 0, 0], [0, 1, 0, 0], [1, 0, 0, 0]], bool)
    rl = decode_segmentation({"id": 1, "segmentation": seg}, 3, 4)
    np.testing.assert_array_equal(rl.decode(), expected)
    # same as pycocotools' own conversion
    ref = mask_utils.decode(mask_utils.frPyObjects(seg, 3, 4))
    np.testing.assert_array_equal(ref.astype(bool), expected)


def test_uncompressed_rle_starting_with_ones():
    rl = decode_segmentation({"id": 1, "segmentation": {"size": [2, 2], "counts": [0, 1, 3]}}, 2, 2)
    np.testing.assert_array_equal(rl.decode(), [[True, False], [False, False]])


def test_polygon_vs_hand_mask():
    # rectangle (1,1)-(4,3) in x, y: pycocotools covers columns 1..3, rows 1..2
    poly = [[1, 1, 4, 1, 4, 3, 1, 3]]
    expected = np.zeros((6, 8), bool)
    expected[1:3, 1:4] = True
    rl = decode_segmentation({"id": 1, "segmentation": poly}, 6, 8)
    np.testing.assert_array_equal(rl.decode(), expected)


def test_two_polygons_are_merged():
    polys = [[1, 1, 4, 1, 4, 3, 1, 3], [5.0, 4.0, 7.0, 4.0, 7.0, 6.0, 5.0, 6.0]]
    expected = np.zeros((6, 8), bool)
    expected[1:3, 1:4] = True
    expected[4:6, 5:7] = True
    np.testing.assert_array_equal(decode_segmentation({"id": 1, "segmentation": polys}, 6, 8).decode(), expected)


def test_four_number_polygon_is_not_taken_as_a_box():
    # pycocotools' frPyObjects reads a 4-number list as a bbox; we reject it
    with pytest.raises(DatasetError, match="annotation id 9: polygon 0 has 2 point"):
        decode_segmentation({"id": 9, "segmentation": [[1, 1, 5, 5]]}, 6, 8)


@pytest.mark.parametrize("seg", [None, 3, {"size": [6, 8]}, {"size": [6, 8], "counts": 5}, [], [[1, 1, "a", 2, 3, 3]]])
def test_malformed_segmentations(seg):
    with pytest.raises(DatasetError, match="annotation id 4"):
        decode_segmentation({"id": 4, "segmentation": seg}, 6, 8, path="x.json", image_id=2)


# ------------------------------------------------------------------ painting rule
def test_paint_order_area_then_id():
    assert paint_order([5, 9, 5, 1], [8, 3, 2, 1]) == [1, 2, 0, 3]


def test_rasterize_small_on_large_visible_and_ties_by_id():
    h, w = 4, 5
    big = np.zeros((h, w), bool)
    big[:, :4] = True  # area 16
    small = np.zeros((h, w), bool)
    small[1, 1:3] = True  # area 2
    tie_a = np.zeros((h, w), bool)
    tie_a[3, 3:5] = True  # area 2, id 4
    tie_b = np.zeros((h, w), bool)
    tie_b[3, 2:4] = True  # area 2, id 5 -> painted after id 4 -> wins at (3, 3)
    out = rasterize_semantic(h, w, [(9, small, 2, 2), (7, big, 16, 3), (1, tie_a, 2, 4), (2, tie_b, 2, 5)], 0)
    expected = np.array(
        [
            [7, 7, 7, 7, 0],
            [7, 9, 9, 7, 0],
            [7, 7, 7, 7, 0],
            [7, 7, 2, 2, 1],
        ],
        np.uint8,
    )
    np.testing.assert_array_equal(out, expected)
    # the same with run lengths instead of bool masks
    items = [(c, rle.from_mask(m), a, i) for c, m, a, i in
             [(9, small, 2, 2), (7, big, 16, 3), (1, tie_a, 2, 4), (2, tie_b, 2, 5)]]
    np.testing.assert_array_equal(rasterize_semantic(h, w, items, 0), expected)


def test_rasterize_background_none_is_ignore():
    m = np.zeros((2, 3), bool)
    m[0, 0] = True
    out = rasterize_semantic(2, 3, [(4, m, 1, 1)], None)
    np.testing.assert_array_equal(out, [[4, 255, 255], [255, 255, 255]])
    assert out.dtype == np.uint8 and out.flags.c_contiguous


def test_rasterize_many_runs_matches_bool_path():
    rng = np.random.default_rng(3)
    h, w = 37, 29
    masks = [rng.random((h, w)) < p for p in (0.5, 0.2, 0.05)]
    areas = [int(m.sum()) for m in masks]
    a = rasterize_semantic(h, w, [(i + 1, m, areas[i], i) for i, m in enumerate(masks)], 0)
    b = rasterize_semantic(h, w, [(i + 1, rle.from_mask(m), areas[i], i) for i, m in enumerate(masks)], 0)
    np.testing.assert_array_equal(a, b)
    # brute force: paint in order with plain numpy
    ref = np.zeros((h, w), np.uint8)
    for i in paint_order(areas, [0, 1, 2]):
        ref[masks[i]] = i + 1
    np.testing.assert_array_equal(a, ref)


def test_batched_counts_parser_matches_one_by_one():
    """from_counts_strings == from_counts_string per string, over many images (delta chains, multi-
    character and negative values, masks starting with foreground, all-zero / all-one masks)."""
    rng = np.random.default_rng(7)
    for i in range(150):
        h, w = (int(v) for v in rng.integers(1, 300 if i % 10 == 0 else 40, 2))
        masks = [rng.random((h, w)) < rng.random() for _ in range(int(rng.integers(1, 7)))]
        masks[0][:] = bool(i % 2) if i % 5 == 0 else masks[0]
        masks[-1][0, 0] = True
        strings = [mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))["counts"] for m in masks]
        strings = [s.decode() if k % 2 else s for k, s in enumerate(strings)]  # str and bytes
        batched = rle.from_counts_strings(strings, h, w)
        assert len(batched) == len(strings)
        for s, m, rl in zip(strings, masks, batched):
            np.testing.assert_array_equal(rl.counts, rle.from_counts_string(s, h, w).counts)
            np.testing.assert_array_equal(rl.decode(), m)
            assert rl.counts.dtype == np.int32
    assert rle.from_counts_strings([], 3, 4) == []


@pytest.mark.parametrize("bad", ["", "0", "1P", "3\x7f", "é", "P", "oooooooooooooo0"])
def test_batched_counts_parser_rejects_corrupt(bad):
    good = mask_utils.encode(np.asfortranarray(np.eye(6, 5, dtype=np.uint8)))["counts"]
    with pytest.raises(ValueError):
        rle.from_counts_strings([good, bad, good], 6, 5)
    with pytest.raises(ValueError):
        rle.from_counts_string(bad, 6, 5)


def test_paint_runs_matches_pixel_painting():
    """The interval painter vs painting decoded masks pixel by pixel (overlaps, ties, empty masks)."""
    from segval.dataset.semantic import paint_runs

    rng = np.random.default_rng(11)
    for _ in range(60):
        h, w = (int(v) for v in rng.integers(1, 30, 2))
        masks = [rng.random((h, w)) < rng.choice([0.0, 0.1, 0.6, 1.0]) for _ in range(int(rng.integers(1, 8)))]
        cats = [int(c) for c in rng.integers(0, 255, len(masks))]
        ids = [int(v) for v in rng.permutation(100)[: len(masks)]]
        areas = [int(m.sum()) for m in masks]
        got = paint_runs(h, w, [rle.from_mask(m) for m in masks], cats, None, ids, None)
        ref = np.full((h, w), 255, np.uint8)
        for i in paint_order(areas, ids):
            ref[masks[i]] = cats[i]
        np.testing.assert_array_equal(got, ref)
        assert got.flags.c_contiguous
    with pytest.raises(ValueError, match="mask size"):
        paint_runs(2, 3, [rle.from_mask(np.zeros((3, 2), bool))], [1], None, [5], 0)
