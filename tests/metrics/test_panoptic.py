"""PQ / SQ / RQ on hand-built segments, against values computed by hand (panopticapi's rules)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from segval.metrics.functional.panoptic import pq_image_stats, pq_summary
from segval.metrics.panoptic import PanopticQualityStats
from segval.dataset.panoptic import id_map_from_masks

CATS = [0, 1, 9]  # 0 stuff (table), 1 thing (cube), 9 stuff never seen
NAMES = ["table", "cube", "wall"]
ISTHING = [False, True, False]

# image 1: two cubes, a table, 2 void pixels and a crowd cube region
GT1 = np.array([[1, 1, 1, 2, 2, 2],
                [1, 1, 1, 2, 2, 2],
                [3, 3, 3, 3, 0, 0],
                [3, 3, 3, 3, 4, 4]])
GT1_SEG = [{"id": 1, "category_id": 1, "iscrowd": 0}, {"id": 2, "category_id": 1, "iscrowd": 0},
           {"id": 3, "category_id": 0, "iscrowd": 0}, {"id": 4, "category_id": 1, "iscrowd": 1}]
PRED1 = np.array([[1, 1, 1, 1, 2, 2],
                  [1, 1, 1, 1, 2, 2],
                  [3, 3, 3, 3, 5, 5],
                  [3, 3, 3, 3, 5, 5]])
PRED1_SEG = [{"id": 1, "category_id": 1}, {"id": 2, "category_id": 1}, {"id": 3, "category_id": 0},
             {"id": 5, "category_id": 1}]
# image 2: a cube missed, a cube hallucinated, the table found with IoU 16/24
GT2 = np.full((4, 6), 8)
GT2[:2, :2] = 7
GT2_SEG = [{"id": 7, "category_id": 1, "iscrowd": 0}, {"id": 8, "category_id": 0, "iscrowd": 0}]
PRED2 = np.full((4, 6), 2)
PRED2[2:, 4:] = 1
PRED2_SEG = [{"id": 1, "category_id": 1}, {"id": 2, "category_id": 0}]


def test_one_image_by_hand() -> None:
    st = pq_image_stats(GT1, GT1_SEG, PRED1, PRED1_SEG, CATS)
    # cube 1: IoU 6/8 (pred 1 covers it + 2 px of cube 2); cube 2: 4/6; table: 8/8.
    # prediction 5 lies on void (2 px) and the crowd cube (2 px): ignored, not a false positive
    np.testing.assert_allclose(st, [[1.0, 1, 0, 0], [6 / 8 + 4 / 6, 2, 0, 0], [0, 0, 0, 0]])
    out = pq_summary(st, NAMES, ISTHING)
    sq_cube = (6 / 8 + 4 / 6) / 2
    assert out["PQ_th"] == pytest.approx(sq_cube) and out["RQ_th"] == pytest.approx(1.0)
    assert out["PQ_st"] == pytest.approx(1.0)
    assert out["PQ"] == pytest.approx((sq_cube + 1) / 2) and out["n"] == 2
    assert all(math.isnan(v) for v in out["per_class"]["wall"].values())


def test_two_images_summed_by_hand() -> None:
    st = pq_image_stats(GT1, GT1_SEG, PRED1, PRED1_SEG, CATS) + pq_image_stats(GT2, GT2_SEG, PRED2, PRED2_SEG, CATS)
    out = pq_summary(st, NAMES, ISTHING)
    iou_cube, iou_table = 6 / 8 + 4 / 6, 1 + 16 / 24
    pq_cube = iou_cube / (2 + 0.5 + 0.5)  # TP 2, FP 1 (the hallucinated cube), FN 1 (the missed one)
    pq_table = iou_table / 2
    assert out["per_class"]["cube"] == pytest.approx({"PQ": pq_cube, "SQ": iou_cube / 2, "RQ": 2 / 3})
    assert out["per_class"]["table"] == pytest.approx({"PQ": pq_table, "SQ": pq_table, "RQ": 1.0})
    assert out["PQ"] == pytest.approx((pq_cube + pq_table) / 2)
    assert out["SQ"] == pytest.approx((iou_cube / 2 + pq_table) / 2)
    assert out["RQ"] == pytest.approx((2 / 3 + 1) / 2)
    # the metric class sums the same statistics
    metric = PanopticQualityStats(CATS)
    metric.update(GT1, GT1_SEG, torch.from_numpy(PRED1), PRED1_SEG)
    metric.update(GT2, GT2_SEG, PRED2, PRED2_SEG)
    np.testing.assert_allclose(metric.compute().numpy(), st)


def test_iou_of_exactly_one_half_is_no_match_and_an_empty_group_is_nan() -> None:
    gt = np.array([[1, 1, 0, 0]])
    pred = np.array([[1, 2, 2, 2]])  # pred 1 ∩ gt 1 = 1 px, union 2: IoU 0.5 -> no match
    st = pq_image_stats(gt, [{"id": 1, "category_id": 1}], pred,
                        [{"id": 1, "category_id": 1}, {"id": 2, "category_id": 1}], [1])
    # pred 1 is half on gt 1 (not void): FP; pred 2 is 2/3 on void: ignored
    np.testing.assert_allclose(st, [[0, 0, 1, 1]])
    out = pq_summary(st, ["cube"], [True])
    assert out["PQ"] == 0.0 and out["PQ_th"] == 0.0 and math.isnan(out["PQ_st"]) and out["n_st"] == 0


def test_bad_segments_are_refused() -> None:
    with pytest.raises(ValueError, match="not listed"):
        pq_image_stats(GT1, GT1_SEG[:3], PRED1, PRED1_SEG, CATS)
    with pytest.raises(ValueError, match="listed twice"):
        pq_image_stats(GT1, GT1_SEG, PRED1, [*PRED1_SEG, {"id": 5, "category_id": 0}], CATS)
    with pytest.raises(ValueError, match="no pixel"):
        pq_image_stats(GT1, GT1_SEG, PRED1, [*PRED1_SEG, {"id": 6, "category_id": 0}], CATS)
    with pytest.raises(ValueError, match="not in"):
        pq_image_stats(GT1, GT1_SEG, PRED1, [*PRED1_SEG[:3], {"id": 5, "category_id": 3}], CATS)
    a = np.zeros((2, 2), bool)
    a[0] = True
    b = np.ones((2, 2), bool)
    with pytest.raises(ValueError, match="overlap on 2 pixels"):
        id_map_from_masks([a, b])
    np.testing.assert_array_equal(id_map_from_masks([a, ~a], [5, 9]), [[5, 5], [9, 9]])
