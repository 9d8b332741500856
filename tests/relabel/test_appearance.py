"""segval.relabel.appearance on hand-made masks and features: mask shape descriptors against hand computations,
feature stacking, and the margin of a swapped look-alike against its own class."""

from __future__ import annotations

import math

import numpy as np
import pytest

from segval.relabel.appearance import knn_evidence, margin_evidence, mask_shape, nearest_annotations, stack_features


def test_mask_shape_of_a_rectangle_matches_hand_computation() -> None:
    mask = np.zeros((40, 50), bool)
    mask[5:15, 10:30] = True  # 10 rows x 20 columns
    f = mask_shape(mask)
    # central moments of a 20 x 10 pixel grid: mu20 = 10 * (20^3 - 20) / 12, mu02 = 20 * (10^3 - 10) / 12
    eta = (10 * (20 ** 3 - 20) / 12 + 20 * (10 ** 3 - 10) / 12) / 200 ** 2
    assert f[0] == pytest.approx(math.log(200))
    assert f[1] == pytest.approx(-math.log10(eta), abs=1e-5)
    assert f[4] == pytest.approx(200 / (19 * 9))  # the hull runs through the outer pixel centres
    assert f[5] == pytest.approx(1.0)  # extent: the mask fills its box
    assert f[6] == pytest.approx(9 / 19)  # the minimum-area rectangle of the pixel centres
    assert f[7] == pytest.approx(4 * math.pi * 200 / (2 * (19 + 9)) ** 2, rel=1e-5)
    assert mask_shape(np.zeros((5, 5), bool)) is None


def test_mask_shape_ignores_position_and_separates_a_disc_from_a_square() -> None:
    yy, xx = np.mgrid[:60, :60]
    disc = (yy - 20) ** 2 + (xx - 20) ** 2 <= 64
    moved = (yy - 40) ** 2 + (xx - 35) ** 2 <= 64
    square = (abs(yy - 30) <= 7) & (abs(xx - 30) <= 7)
    np.testing.assert_allclose(mask_shape(disc), mask_shape(moved), rtol=1e-5)
    assert mask_shape(disc)[7] > mask_shape(square)[7]  # circularity


def test_stack_features_z_scores_each_block_and_weighs_blocks_equally() -> None:
    a = {(1, 1): np.array([0.0]), (2, 1): np.array([4.0]), (3, 1): np.array([9.0])}
    b = {(1, 1): np.array([1.0, 10.0]), (2, 1): np.array([3.0, 10.0])}  # (3, 1) has no b: left out
    f = stack_features(a, b)
    assert sorted(f) == [(1, 1), (2, 1)]
    np.testing.assert_allclose(f[(1, 1)], [-1.0, -1 / math.sqrt(2), 0.0], rtol=1e-6)
    np.testing.assert_allclose(f[(2, 1)], [1.0, 1 / math.sqrt(2), 0.0], rtol=1e-6)
    assert stack_features() == {}


def _lookalikes() -> tuple[dict, dict]:
    """Six images, each with one A (class 1, features near (1, 0, 0)) and one B (class 2, near (0.8, 0.6, 0)):
    two look-alike classes. Image 6's A is labelled B (a swap)."""
    feats, cats = {}, {}
    for i in range(1, 7):
        t = 0.02 * i
        feats[(i, 1)] = np.array([1.0, t, 0.0])
        feats[(i, 2)] = np.array([0.8, 0.6 + t, 0.0])
        cats[(i, 1)], cats[(i, 2)] = (2 if i == 6 else 1), 2
    return feats, cats


def _margin_by_hand(feats: dict, cats: dict, key: tuple, k: int, eps: float = 1e-3) -> float:
    keys = list(feats)
    x = np.stack([feats[q] for q in keys])
    x = x - x.mean(0)
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    me = x[keys.index(key)]
    own = sorted(1 - me @ x[j] for j, q in enumerate(keys) if q[0] != key[0] and cats[q] == cats[key])[:k]
    other = sorted(1 - me @ x[j] for j, q in enumerate(keys) if q[0] != key[0] and cats[q] != cats[key])[:k]
    return math.log((np.mean(own) + eps) / (np.mean(other) + eps))


def test_margin_ranks_the_swapped_lookalike_first_with_hand_computed_values() -> None:
    feats, cats = _lookalikes()
    rows = margin_evidence(feats, cats, k=2)
    by_key = {(r.image_id, r.annotation_id): r for r in rows}
    assert len(rows) == 12
    top = max(rows, key=lambda r: r.value)
    assert (top.image_id, top.annotation_id) == (6, 1) and top.value > 0 and top.suggested == 1
    for key in [(6, 1), (3, 1), (3, 2)]:
        assert by_key[key].value == pytest.approx(_margin_by_hand(feats, cats, key, 2), abs=1e-4)
    assert all(r.value < 0 for r in rows if (r.image_id, r.annotation_id) != (6, 1) and r.image_id != 6)


def test_margin_agrees_with_the_neighbour_share_on_the_swap_and_is_continuous() -> None:
    feats, cats = _lookalikes()
    share = {(r.image_id, r.annotation_id): r.value for r in knn_evidence(feats, cats, k=7)}
    margin = {(r.image_id, r.annotation_id): r.value for r in margin_evidence(feats, cats, k=2)}
    assert share[(6, 1)] == pytest.approx(1.0) and max(v for q, v in share.items() if q != (6, 1)) < 0.21
    assert margin[(6, 1)] > 7.0 > -6.0 > max(v for q, v in margin.items() if q != (6, 1))
    assert len(set(round(v, 6) for v in margin.values())) == 12  # no ties: a rank for every annotation


def test_margin_without_an_own_class_elsewhere_uses_the_largest_distance() -> None:
    feats = {(1, 1): np.array([1.0, 0.0]), (2, 1): np.array([0.0, 1.0]), (3, 1): np.array([0.1, 1.0])}
    cats = {(1, 1): 5, (2, 1): 2, (3, 1): 2}
    rows = {(r.image_id, r.annotation_id): r for r in margin_evidence(feats, cats, k=1)}
    assert rows[(1, 1)].info["appearance_own_dist"] == 2.0 and rows[(1, 1)].suggested == 2
    assert margin_evidence({(1, 1): np.ones(2)}, {(1, 1): 1}) == []


def test_nearest_annotations_measures_a_query_against_annotations_of_other_images() -> None:
    feats, cats = _lookalikes()
    feats[(1, -1)] = np.array([0.8, 0.63, 0.0])  # a region of image 1 that looks like a B
    feats[(2, -1)] = np.array([-3.0, -3.0, 5.0])  # one that looks like nothing annotated
    near = nearest_annotations(feats, [(1, -1), (2, -1), (9, -1)], cats, k=2)
    assert set(near) == {(1, -1), (2, -1)} and near[(1, -1)][1] == 2
    keys = [q for q in feats if q in cats]
    a = np.stack([feats[q] for q in keys])
    mu = a.mean(0)
    a = (a - mu) / np.linalg.norm(a - mu, axis=1, keepdims=True)
    x = (feats[(1, -1)] - mu) / np.linalg.norm(feats[(1, -1)] - mu)
    d = sorted(1 - a[j] @ x for j, q in enumerate(keys) if q[0] != 1)[:2]
    assert near[(1, -1)][0] == pytest.approx(np.mean(d), abs=1e-5)
    assert near[(2, -1)][0] > 0.5 > near[(1, -1)][0]
    assert nearest_annotations(feats, [], cats) == {}
