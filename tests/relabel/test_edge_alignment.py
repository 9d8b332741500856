"""segval.relabel.edge_alignment on hand-made masks: the true outline is its own best fit; shifted, dilated and
eroded outlines leave the image's edges; the image frame is no edge."""

from __future__ import annotations

import numpy as np

from segval.demo.inject import dilate_mask, erode_mask, shift_mask
from segval.relabel.edge_alignment import edge_strength, outline_fit


def _scene() -> tuple[np.ndarray, np.ndarray]:
    """A 64x80 grey image with a red disc (its exact mask) and some texture-free background."""
    h, w = 64, 80
    yy, xx = np.mgrid[:h, :w]
    disc = (yy - 30) ** 2 + (xx - 38) ** 2 <= 14 ** 2
    img = np.full((h, w, 3), 120, np.uint8)
    img[disc] = (200, 40, 40)
    return img, disc


def _fit(mask: np.ndarray, img: np.ndarray) -> dict:
    import cv2

    g = edge_strength(img)
    dist = cv2.distanceTransform(1 - (g >= 0.2).astype(np.uint8), cv2.DIST_L2, 3)
    out = outline_fit(mask, g, dist)
    assert out is not None
    return out


def test_true_outline_is_its_own_best_fit() -> None:
    img, disc = _scene()
    fit = _fit(disc, img)
    assert fit["gain"] == 0.0 and fit["best"] == "identity"
    assert fit["off_edge"] < 0.05


def test_shifted_dilated_eroded_outlines_score_higher() -> None:
    img, disc = _scene()
    clean = _fit(disc, img)
    for bad in (shift_mask(disc, 3, 0), shift_mask(disc, -2, 5), dilate_mask(disc, 3), erode_mask(disc, 3)):
        fit = _fit(bad, img)
        assert fit["gain"] > clean["gain"] + 0.3, fit
        assert fit["off_edge"] > clean["off_edge"] + 0.15, fit


def test_outline_on_the_image_frame_is_not_counted() -> None:
    img, _ = _scene()
    m = np.zeros(img.shape[:2], bool)
    m[:, :5] = True  # a strip along the left frame: only its right side is an outline
    img[:, :5] = (10, 200, 10)
    fit = _fit(m, img)
    assert fit["gain"] == 0.0
