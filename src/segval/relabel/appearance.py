"""Still-image evidence from appearance consistency: an annotation whose look-alikes carry another class.

Each annotation is described by a feature vector (the model's pooled decoder features,
:mod:`segval.relabel.model_evidence`, and/or a colour histogram of its pixels, :func:`colour_features`).
Among the ``k`` nearest annotations of *other images* (cosine similarity), the share carrying another
class than its own is the evidence (swaps, wrong regions); the majority class among those
neighbours is the suggested class, and the pairs (label, suggested) counted over the split are the
class pairs the annotations themselves confuse (``label_confusions`` for stills).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np

from segval.relabel.annotations import AnnotationScore, iter_annotations

__all__ = ["colour_features", "knn_evidence", "pair_counts"]


def colour_features(split: Any, *, background_id: int | None, bins: tuple[int, int, int] = (8, 4, 4),
                    images: Sequence[Any] | None = None) -> dict[tuple[int, int], np.ndarray]:
    """``{(image_id, annotation_id): float32[D]}``: normalised HSV histogram of the annotation's
    pixels (one pixel in from its outline), square-rooted (Hellinger)."""
    out = {}
    for rec, insts in iter_annotations(split, background_id, images):
        hsv = cv2.cvtColor(split.read_image(rec), cv2.COLOR_RGB2HSV)
        for inst in insts:
            core = cv2.erode(inst.mask.astype(np.uint8), np.ones((3, 3), np.uint8))
            if core.sum() < 8:
                core = inst.mask.astype(np.uint8)
            if core.sum() < 4:
                continue
            h = cv2.calcHist([hsv], [0, 1, 2], core, list(bins), [0, 180, 0, 256, 0, 256]).ravel()
            out[(rec.id, inst.annotation_id)] = np.sqrt(h / max(h.sum(), 1.0)).astype(np.float32)
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
    x = np.stack([features[key] for key in keys]).astype(np.float32)
    x = x - x.mean(0, keepdims=True)
    x /= np.linalg.norm(x, axis=1, keepdims=True).clip(1e-8)
    img = np.array([key[0] for key in keys])
    cat = np.array([category_of[key] for key in keys])
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
