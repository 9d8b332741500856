"""parse_many / split_masks: one vectorised pass, the same run lengths as parsing each string."""

from __future__ import annotations

import json

import numpy as np
from pycocotools import mask as mask_utils

from segval.dataset import DatasetPackage, InstanceMask
from segval.dataset.rle import parse_counts_string
from segval.qa.batch import parse_many, split_masks
from tests.qa.test_checks import BIG, _box, _write


def _rle(m: np.ndarray) -> bytes:
    return mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))["counts"]


def test_parse_many_equals_one_by_one():
    rng = np.random.default_rng(4)
    masks = [rng.random((23, 17)) < p for p in (0.0, 0.02, 0.3, 0.7, 1.0)] + [_box(2, 3, 9, 12, 23, 17)]
    strings = [_rle(m) for m in masks]
    got = parse_many(strings, [23 * 17] * len(strings))
    for s, g in zip(strings, got):
        assert g is not None and np.array_equal(g, parse_counts_string(s))
    # bad strings are not parsed (the caller decodes them the ordinary way); the others still are
    bad = [b"", b"0" * 3 + b"\x7f", strings[2][:-1] + b"`", b"a", strings[3][: len(strings[3]) // 2]]
    mixed = [strings[1], *bad, strings[2]]
    got = parse_many(mixed, [23 * 17] * len(mixed))
    assert [g is None for g in got] == [False, True, True, True, True, True, False]
    assert np.array_equal(got[0], parse_counts_string(strings[1]))
    assert np.array_equal(got[-1], parse_counts_string(strings[2]))
    assert parse_many([strings[2]], [23 * 17 + 1]) == [None]  # runs do not cover the image
    assert parse_many([], []) == []


def test_split_masks_equals_split_masks_per_image(tmp_path):
    _write(tmp_path / "pkg", [("train", [InstanceMask(1, BIG), InstanceMask(2, _box(5, 5, 9, 60))], None),
                              ("train", [], None), ("train", [InstanceMask(1, BIG)], None),
                              ("train", [InstanceMask(2, _box(1, 1, 3, 3))], None)])
    path = tmp_path / "pkg" / "annotations" / "train.json"
    coco = json.loads(path.read_text())
    coco["annotations"][2]["segmentation"]["counts"] = "!!"  # corrupt: image 3 left to split.masks
    coco["annotations"][3]["segmentation"] = [[1, 1, 10, 1, 10, 10]]  # polygon: image 4 too
    path.write_text(json.dumps(coco))
    sd = DatasetPackage.open(tmp_path / "pkg").split("train")
    got = split_masks(sd, sd.images)
    assert [g is None for g in got] == [False, False, True, True]
    for rec, g in zip(sd.images[:2], got):
        want = sd.masks(rec)
        assert [a["id"] for a, _ in g] == [a["id"] for a, _ in want]
        assert all(np.array_equal(x.counts, y.counts) and (x.height, x.width) == (y.height, y.width)
                   for (_, x), (_, y) in zip(g, want))


def test_infos_many_equals_rle_info():
    from segval.qa import checks as qc
    from segval.qa.batch import infos_many
    from tests.qa.test_checks import _counts, _shapes

    rng = np.random.default_rng(5)
    masks = _shapes(rng, 17, 12) * 2
    counts = [np.array(_counts(m), dtype=np.int64) for m in masks] + [np.array([17 * 12])]
    got = infos_many(counts, [17] * len(counts), [12] * len(counts))
    for c, g in zip(counts, got):
        want = qc.rle_info(c, 17, 12)
        assert (g.area, g.box, g.components, g.perimeter, g.jaggedness) == (
            want.area, want.box, want.components, want.perimeter, want.jaggedness)
        assert (g.runs is None) == (want.runs is None)
        assert np.array_equal(qc.crop_of(g), qc.crop_of(want)) if g.box else want.box is None
    assert infos_many([], [], []) == []
