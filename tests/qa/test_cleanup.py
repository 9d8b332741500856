"""segval.qa.cleanup: each step on constructed masks with exact expected outputs."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from segval.qa.cleanup import CleanParams, clean_mask, open_close, refine_edges, remove_small_components


def _square(h=30, w=30, y0=8, y1=20, x0=8, x1=20):
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


def test_open_removes_one_pixel_spur():
    sq = _square()
    m = sq.copy()
    m[13, 20:25] = True  # a 1-px-wide spur sticking out of the right side
    out = open_close(m)
    assert np.array_equal(out, sq)


def test_close_fills_one_pixel_hole_and_notch():
    sq = _square()
    m = sq.copy()
    m[14, 14] = False  # hole
    m[8, 12] = False  # 1-px notch in the top edge
    assert np.array_equal(open_close(m), sq)


def test_open_close_keeps_clean_shapes_and_border_masks():
    sq = _square()
    assert np.array_equal(open_close(sq), sq)
    border = np.zeros((10, 10), bool)
    border[:, :4] = True  # touches three image borders: the border must not erode it
    assert np.array_equal(open_close(border), border)
    assert np.array_equal(open_close(sq, iterations=0), sq)


def test_open_removes_isolated_speck_and_thin_line():
    m = np.zeros((20, 20), bool)
    m[2, 2] = True
    m[10, 3:15] = True
    assert not open_close(m).any()


def test_small_components_removed_largest_kept():
    m = _square()
    m[1, 1] = True  # 1-px speck
    m[25:28, 25:28] = True  # 9 px
    m[1:5, 25:29] = True  # 16 px
    out = remove_small_components(m, min_pixels=10)
    expected = _square()
    expected[1:5, 25:29] = True
    assert np.array_equal(out, expected)


def test_largest_component_always_kept():
    m = np.zeros((10, 10), bool)
    m[1:3, 1:3] = True  # 4 px, the largest
    m[7, 7] = True
    out = remove_small_components(m, min_pixels=100)
    expected = np.zeros((10, 10), bool)
    expected[1:3, 1:3] = True
    assert np.array_equal(out, expected)
    # ties: the first component in row-major order
    t = np.zeros((5, 5), bool)
    t[0, 0] = t[4, 4] = True
    out = remove_small_components(t, 5)
    assert out[0, 0] and not out[4, 4]


def test_components_eight_connected():
    m = np.zeros((6, 6), bool)
    for i in range(5):
        m[i, i] = True  # a diagonal line: one 8-connected component
    assert np.array_equal(remove_small_components(m, 5), m)


def _edge_image():
    img = np.full((40, 40, 3), 30, np.uint8)
    img[10:30, 10:30] = (200, 180, 160)  # a sharp-edged bright square
    truth = np.zeros((40, 40), bool)
    truth[10:30, 10:30] = True
    return img, truth


@pytest.mark.parametrize("dy,dx", [(0, 2), (0, -2), (2, 0), (-2, 0), (2, 2)])
def test_refine_moves_shifted_boundary_back_onto_edge(dy, dx):
    img, truth = _edge_image()
    shifted = np.roll(np.roll(truth, dy, axis=0), dx, axis=1)
    out = refine_edges(shifted, img)
    assert np.array_equal(out, truth)


def test_refine_changes_nothing_far_from_boundary():
    img, truth = _edge_image()
    # an image edge deep inside the object, away from the mask boundary: no change there
    img2 = img.copy()
    img2[18:22, 18:22] = 30
    assert np.array_equal(refine_edges(truth, img2), truth)
    # a boundary shifted 6 px: only pixels within `band` px of the input boundary may change
    shifted = np.roll(truth, 6, axis=1)
    out = refine_edges(shifted, img, band=3)
    k = np.ones((7, 7), np.uint8)
    near = cv2.dilate(shifted.astype(np.uint8), k) != cv2.erode(shifted.astype(np.uint8), k)
    assert np.array_equal(out[~near], shifted[~near])
    assert (out != shifted).any()  # it did move within the band
    # a mask that already follows the edge is unchanged
    assert np.array_equal(refine_edges(truth, img), truth)


def test_refine_flat_image_keeps_straight_boundary():
    img = np.full((20, 20, 3), 90, np.uint8)
    m = np.zeros((20, 20), bool)
    m[:, :10] = True
    assert np.array_equal(refine_edges(m, img), m)


def test_refine_is_deterministic_and_does_not_modify_inputs():
    img, truth = _edge_image()
    m = np.roll(truth, 2, axis=1)
    m_copy, img_copy = m.copy(), img.copy()
    a = refine_edges(m, img)
    b = refine_edges(m, img)
    assert np.array_equal(a, b)
    assert np.array_equal(m, m_copy) and np.array_equal(img, img_copy)


def test_clean_mask_pipeline():
    img, truth = _edge_image()
    m = np.roll(truth, 2, axis=1)
    m[20, 32:36] = True  # spur from the shifted edge
    m[2, 2] = True  # speck
    out = clean_mask(m, img, CleanParams(min_pixels=10))
    assert np.array_equal(out, truth)
    # refinement off: only morphology and components
    out = clean_mask(m, None, CleanParams(refine=False))
    assert np.array_equal(out, np.roll(truth, 2, axis=1))


def test_refine_rejects_size_mismatch():
    with pytest.raises(ValueError, match="size"):
        refine_edges(np.zeros((5, 5), bool), np.zeros((6, 5, 3), np.uint8))
