"""The temporal evidence's compact per-video rows give back what the scan measured."""

from __future__ import annotations

from segval.dataset.package import DatasetPackage
from segval.demo.shapes import write_shapes_package
import numpy as np
import pytest

from segval.relabel.evidence import (TemporalConfig, _centroid, _iou_arrays, _median, _RowTable, _VideoScan,
                                      mask_stats, videos_of)

#: what scoring reads of a row (the table keeps these; the scan's working values d_prev / d_next / t / j go)
KEPT = set(_RowTable.INTS) | set(_RowTable.FLOATS) | {"box", "class_to", "class_votes"}


def test_row_table_round_trip(tmp_path):
    root = write_shapes_package(tmp_path / "shapes", images={"train": 24}, frames_per_video=6, seed=3)
    sd = DatasetPackage.open(root).split("train")
    cfg = TemporalConfig(min_pixels=1)
    seen = 0
    for vid, recs in videos_of(sd.images).items():
        scan = _VideoScan(sd, recs, vid, cfg, 0, str)
        scan.run()
        rows = list(scan.rows.values())
        back = _RowTable(rows).dicts()
        want = [{k: v for k, v in r.items() if k in KEPT} for r in rows]
        assert back == want
        assert [[type(v) for v in sorted(r.items())] for r in back] == [[type(v) for v in sorted(r.items())]
                                                                      for r in want]
        seen += len(rows)
    assert seen > 20
    # rows lacking the optional measures, a box of None, a class vote and ids past int64
    rows = [{"ann": 2**64, "cat": 1, "area": 3, "image_id": 7, "video": 0, "iou_prev": 0.0, "iou_next": 0.5,
             "box": None, "class_to": 2, "class_votes": "2/3"},
            {"ann": 5, "cat": 1, "area": 4, "image_id": 8, "video": 0, "iou_prev": 0.25, "iou_next": 0.0,
             "box": [1.0, 2.0, 3.0, 4.0], "band": 0.1, "sided": 1, "pixels": 7, "area_spike": 0.0, "motion_px": 1.5}]
    assert _RowTable(rows).dicts() == rows and _RowTable([]).dicts() == []


def _random_stack(rng: np.random.Generator, n: int, h: int, w: int) -> np.ndarray:
    """bool[n, h, w]: speckled rectangles, some masks empty."""
    m = np.zeros((n, h, w), bool)
    for k in range(n):
        if rng.random() < 0.2:
            continue
        y0, x0 = rng.integers(0, h), rng.integers(0, w)
        y1, x1 = rng.integers(y0, h + 1), rng.integers(x0, w + 1)
        m[k, y0:y1, x0:x1] = rng.random((y1 - y0, x1 - x0)) < rng.random()
    return m


@pytest.mark.parametrize("seed", range(4))
def test_box_windowed_iou_equals_the_dense_product_bit_for_bit(seed):
    rng = np.random.default_rng(seed)
    for _ in range(60):
        h, w = (int(v) for v in rng.integers(1, 40, 2))
        a, b = _random_stack(rng, int(rng.integers(0, 6)), h, w), _random_stack(rng, int(rng.integers(0, 6)), h, w)
        fa, fb = a.reshape(len(a), h * w).astype(np.float32), b.reshape(len(b), h * w).astype(np.float32)
        inter = fa @ fb.T  # the dense reference
        union = fa.sum(1)[:, None] + fb.sum(1)[None, :] - inter
        want = np.where(union > 0, inter / np.maximum(union, 1), 0.0) if len(a) and len(b) else np.zeros((len(a), len(b)))
        got = _iou_arrays(a, b)
        assert got.dtype == want.dtype and np.array_equal(got, want)
        for m in a:
            ys, xs = np.nonzero(m)
            ref = np.array([xs.mean(), ys.mean()]) if xs.size else np.array([np.nan, np.nan])
            assert np.array_equal(_centroid(m), ref, equal_nan=True)


def test_mask_stats_boxes_and_areas():
    m = np.zeros((3, 5, 6), bool)
    m[0, 1:3, 2:5] = True
    m[0, 4, 0] = True
    m[2, 0, 5] = True
    s = mask_stats(m)
    assert s.boxes.tolist() == [[1, 5, 0, 5], [0, 0, 0, 0], [0, 1, 5, 6]] and s.areas.tolist() == [7, 0, 1]


def test_median_is_nanmedian():
    x = np.array([[1.0, 5.0], [3.0, -2.0], [2.5, 0.25], [7.0, 1.0]])
    assert np.array_equal(_median(x), np.nanmedian(x, axis=0)) and _median(x).tolist() == [2.75, 0.625]
    x[0, 0] = np.nan
    assert _median(x).tolist() == [3.0, 0.625]
