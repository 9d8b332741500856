"""Still-image evidence from appearance consistency: an annotation whose look-alikes carry another class.

Each annotation is described by a feature vector (the model's pooled decoder features,
:mod:`segval.relabel.model_evidence`, a colour histogram of its pixels, :func:`colour_features`, the shape of its
mask, :func:`shape_features`, or several of them stacked, :func:`stack_features`). Two kinds of evidence:

* :func:`knn_evidence`: among the ``k`` nearest annotations of *other images* (cosine similarity), the share
  carrying another class than its own (swaps, wrong regions); the majority class among those neighbours is the
  suggested class, and the pairs (label, suggested) counted over the split are the class pairs the annotations
  themselves confuse (``label_confusions`` for stills);
* :func:`margin_evidence`: how much nearer its nearest look-alikes of another class are than those of its own
  class (a continuous score: it still separates a swap between two look-alike classes, where the share above
  saturates).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np

from segval.relabel.annotations import AnnotationScore, iter_annotations

__all__ = ["colour_features", "colour_histogram", "knn_evidence", "margin_evidence", "mask_shape",
           "nearest_annotations", "pair_counts", "shape_features", "stack_features"]


def colour_features(split: Any, *, background_id: int | None, bins: tuple[int, int, int] = (8, 4, 4),
                    images: Sequence[Any] | None = None) -> dict[tuple[int, int], np.ndarray]:
    """``{(image_id, annotation_id): float32[D]}``: :func:`colour_histogram` of each annotation's pixels."""
    out = {}
    for rec, insts in iter_annotations(split, background_id, images):
        hsv = cv2.cvtColor(split.read_image(rec), cv2.COLOR_RGB2HSV)
        for inst in insts:
            h = colour_histogram(hsv, inst.mask, bins)
            if h is not None:
                out[(rec.id, inst.annotation_id)] = h
    return out


def colour_histogram(hsv: np.ndarray, mask: np.ndarray, bins: tuple[int, int, int] = (8, 4, 4)) -> np.ndarray | None:
    """float32[prod(bins)]: normalised HSV histogram of ``mask``'s pixels (one pixel in from its outline when that
    leaves 8), square-rooted (Hellinger); None under 4 pixels. ``hsv``: uint8[H, W, 3] (OpenCV's HSV)."""
    core = cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8))
    if core.sum() < 8:
        core = mask.astype(np.uint8)
    if core.sum() < 4:
        return None
    h = cv2.calcHist([hsv], [0, 1, 2], core, list(bins), [0, 180, 0, 256, 0, 256]).ravel()
    return np.sqrt(h / max(h.sum(), 1.0)).astype(np.float32)


def shape_features(split: Any, *, background_id: int | None, images: Sequence[Any] | None = None
                   ) -> dict[tuple[int, int], np.ndarray]:
    """``{(image_id, annotation_id): float32[8]}``: the shape of the annotation's mask, independent of where it
    lies: log area, the first three Hu moments (``-sign(h) log10 |h|``), solidity (area / convex hull area),
    extent (area / box area), the short / long side of its minimum-area rectangle and circularity
    (``4 pi area / perimeter^2``) of its largest outer contour."""
    out = {}
    for rec, insts in iter_annotations(split, background_id, images):
        for inst in insts:
            f = mask_shape(inst.mask)
            if f is not None:
                out[(rec.id, inst.annotation_id)] = f
    return out


def mask_shape(mask: np.ndarray) -> np.ndarray | None:
    """float32[8] of :func:`shape_features` for one bool[H, W] mask, or None under 4 pixels."""
    m = mask.astype(np.uint8)
    area = int(m.sum())
    if area < 4:
        return None
    hu = cv2.HuMoments(cv2.moments(m, binaryImage=True)).ravel()[:3]
    hu = -np.sign(hu) * np.log10(np.abs(hu) + 1e-30)
    contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    c = max(contours, key=cv2.contourArea)
    hull = max(cv2.contourArea(cv2.convexHull(c)), 1.0)
    rw, rh = cv2.minAreaRect(c)[1]
    x, y, bw, bh = cv2.boundingRect(m)
    perimeter = max(cv2.arcLength(c, True), 1.0)
    return np.array([math.log(area), *hu, area / hull, area / (bw * bh), min(rw, rh) / max(rw, rh, 1e-6),
                     4 * math.pi * area / perimeter ** 2], np.float32)


def stack_features(*blocks: Mapping[tuple[int, int], np.ndarray]) -> dict[tuple[int, int], np.ndarray]:
    """One vector per annotation present in every block: each block's dimensions z-scored over those annotations
    and the block scaled by ``1 / sqrt(its dimensions)``, so every block weighs the same in a distance.

    >>> f = stack_features({(1, 1): np.array([0.0]), (2, 1): np.array([2.0])}, {(1, 1): np.array([1.0, 1.0]),
    ...                    (2, 1): np.array([3.0, 1.0]), (3, 1): np.array([0.0, 0.0])})
    >>> [round(float(v), 3) for v in f[(2, 1)]]
    [1.0, 0.707, 0.0]
    """
    keys = sorted(set.intersection(*(set(b) for b in blocks))) if blocks else []
    if not keys:
        return {}
    parts = []
    for b in blocks:
        x = np.stack([np.asarray(b[k], np.float64) for k in keys])
        x = (x - x.mean(0)) / np.where(x.std(0) > 1e-9, x.std(0), 1.0)
        parts.append(x / math.sqrt(x.shape[1]))
    x = np.concatenate(parts, axis=1).astype(np.float32)
    return dict(zip(keys, x))


def _centred_unit_rows(features: Mapping[tuple[int, int], np.ndarray], category_of: Mapping[tuple[int, int], int],
                       keys: Sequence[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """float32[N, D] the features of ``keys`` centred and scaled to unit length (cosine similarity = dot product),
    with int[N] image ids and int[N] categories."""
    x = np.stack([features[key] for key in keys]).astype(np.float32)
    x = x - x.mean(0, keepdims=True)
    x /= np.linalg.norm(x, axis=1, keepdims=True).clip(1e-8)
    return x, np.array([key[0] for key in keys]), np.array([category_of[key] for key in keys])


def margin_evidence(features: Mapping[tuple[int, int], np.ndarray], category_of: Mapping[tuple[int, int], int], *,
                    k: int = 3, eps: float = 1e-3) -> list[AnnotationScore]:
    """One row per annotation: ``log((d_own + eps) / (d_other + eps))``, where ``d_own`` / ``d_other`` is the mean
    cosine distance to its ``k`` nearest annotations of other images with its own class / with any other class
    (``d_own`` = 2, the largest distance, when no other image has its class). Positive: its look-alikes of another
    class are nearer than those of its own (a swap candidate); suggested = the class of the nearest of them.

    Args:
        features: ``{(image_id, annotation_id): float[D]}`` (e.g. :func:`stack_features`).
        category_of: ``{(image_id, annotation_id): category_id}``.
    """
    keys = [key for key in features if key in category_of]
    if len(keys) < 2:
        return []
    x, img, cat = _centred_unit_rows(features, category_of, keys)
    rows = []
    for i0 in range(0, len(keys), 512):
        dist = 1.0 - x[i0: i0 + 512] @ x.T  # (b, N)
        for b in range(dist.shape[0]):
            i = i0 + b
            d = np.where(img == img[i], np.inf, dist[b])
            own, other = np.sort(d[cat == cat[i]])[:k], d[cat != cat[i]]
            own = own[np.isfinite(own)]
            near = np.argsort(other, kind="stable")[:k]
            near = near[np.isfinite(other[near])]
            if not len(near):
                continue
            d_own = float(own.mean()) if len(own) else 2.0
            d_other = float(other[near].mean())
            val = math.log((d_own + eps) / (d_other + eps))
            info = {"appearance_own_dist": round(d_own, 4), "appearance_other_dist": round(d_other, 4)}
            rows.append(AnnotationScore(int(img[i]), int(keys[i][1]), int(cat[i]), val, info,
                                        int(cat[cat != cat[i]][near[0]])))
    return rows


def nearest_annotations(features: Mapping[tuple[int, int], np.ndarray], queries: Sequence[tuple[int, int]],
                        category_of: Mapping[tuple[int, int], int], *, k: int = 3
                        ) -> dict[tuple[int, int], tuple[float, int]]:
    """For each query (a key of ``features`` that is no annotation, e.g. an unlabelled region): the mean cosine
    distance to its ``k`` nearest annotations of other images, and the class of the nearest. Vectors are centred
    on the annotations' mean. A region that looks like annotated objects is a dropped annotation candidate.

    Args:
        features: ``{key: float[D]}`` of the annotations and the queries (e.g. :func:`stack_features`).
        queries: the keys to measure (absent ones are left out).
        category_of: ``{(image_id, annotation_id): category_id}`` of the annotations.
    """
    ann = [key for key in features if key in category_of]
    qs = [q for q in queries if q in features]
    if not ann or not qs:
        return {}
    a = np.stack([features[key] for key in ann]).astype(np.float32)
    mu = a.mean(0, keepdims=True)
    a = a - mu
    a /= np.linalg.norm(a, axis=1, keepdims=True).clip(1e-8)
    img = np.array([key[0] for key in ann])
    cat = np.array([category_of[key] for key in ann])
    out = {}
    for q in qs:
        x = np.asarray(features[q], np.float32) - mu[0]
        d = np.where(img == q[0], np.inf, 1.0 - a @ (x / max(float(np.linalg.norm(x)), 1e-8)))
        near = np.argsort(d, kind="stable")[:k]
        near = near[np.isfinite(d[near])]
        if len(near):
            out[q] = (float(d[near].mean()), int(cat[near[0]]))
    return out


def knn_evidence(features: Mapping[tuple[int, int], np.ndarray], category_of: Mapping[tuple[int, int], int], *,
                 k: int = 7) -> list[AnnotationScore]:
    """One row per annotation: share of its ``k`` nearest annotations (other images) of another class,
    weighted by similarity; suggested = their majority class.

    Args:
        features: ``{(image_id, annotation_id): float[D]}``.
        category_of: ``{(image_id, annotation_id): category_id}``.
    """
    keys = [key for key in features if key in category_of]
    if len(keys) < 2:
        return []
    x, img, cat = _centred_unit_rows(features, category_of, keys)
    rows = []
    for i0 in range(0, len(keys), 512):
        sim = x[i0: i0 + 512] @ x.T  # (b, N)
        for b in range(sim.shape[0]):
            i = i0 + b
            sv = sim[b].copy()
            sv[img == img[i]] = -np.inf
            nn = np.argpartition(-sv, min(k, len(sv) - 1))[:k]
            nn = nn[np.isfinite(sv[nn])]
            if not len(nn):
                continue
            w = np.clip(sv[nn], 0.0, None) + 1e-6
            diff = cat[nn] != cat[i]
            val = float((w * diff).sum() / w.sum())
            sugg = Counter(cat[nn][diff].tolist()).most_common(1)[0][0] if diff.any() else None
            rows.append(AnnotationScore(int(img[i]), int(keys[i][1]), int(cat[i]), val,
                                        {"appearance_other_share": round(val, 4)}, sugg))
    return rows


def pair_counts(rows: list[AnnotationScore], names: Mapping[int, str], *, min_value: float = 0.5,
                min_annotations: int = 2) -> list[dict[str, Any]]:
    """Class pairs (label, suggested) over the rows with ``value >= min_value``: the stills'
    ``label_confusions`` (most annotations first)."""
    c: Counter = Counter()
    for r in rows:
        if r.suggested is not None and r.value >= min_value:
            c[tuple(sorted((names[r.category_id], names[r.suggested])))] += 1
    return [{"pair": list(p), "annotations": n} for p, n in c.most_common() if n >= min_annotations]
