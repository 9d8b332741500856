"""Still-image evidence from training dynamics (:mod:`segval.callbacks.training_dynamics`).

The recorder keeps, per train pixel, the area under the margin ``aum`` of its label (averaged over
the passes of one in-sample training) and the best other class at the end. Per annotation, at the
recorded resolution (its *visible* pixels: the annotation's mask where the label map holds its class):

* ``region``: share of its core pixels (visible, eroded by one pixel, so the blurred boundary does
  not count) whose AUM is negative: the label was not the model's choice on average over training.
  Swaps and wrong regions: the whole region carries a class the network does not fit. The class the
  model prefers there (majority of ``other``) is the suggested class (a swap pair).
* ``boundary``: the model's disagreement in a ring around the outline: labelled pixels of the
  annotation just inside its outline that the model gives to another class, plus pixels just outside
  it (labelled something else) that the model gives to this annotation's class, over the ring's size.
  Dilated, eroded and shifted outlines.
* ``missing``: connected regions labelled background where the model prefers an object class
  throughout training (negative AUM): dropped annotations. Value: the region's pixels (at full
  resolution) times its mean ``-aum``, its class the model's majority ``other``.

Raw values are compared with the same class's annotations (:func:`~segval.relabel.annotations.class_excess`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from segval.metrics.training_dynamics import Dynamics
from segval.relabel.annotations import AnnotationScore, iter_annotations, missing_regions

__all__ = ["dynamics_evidence"]

_K3 = np.ones((3, 3), np.uint8)


def _down(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """bool[H, W] -> bool[h, w]: pixels at least half covered."""
    if mask.shape == shape:
        return mask.astype(bool)
    return cv2.resize(mask.astype(np.float32), (shape[1], shape[0]), interpolation=cv2.INTER_AREA) >= 0.5


def dynamics_evidence(split: Any, dyn: Dynamics, *, background_id: int | None, index_of: Any,
                      ring_px: int = 1, min_missing_px: int = 4, images: Sequence[Any] | None = None,
                      ) -> dict[str, list[AnnotationScore]]:
    """Per-annotation rows of the three dynamics kinds (see the module doc).

    Args:
        split: the package split the dynamics were recorded on.
        dyn: :func:`segval.callbacks.training_dynamics.load_dynamics` of the run.
        background_id: the taxonomy's background category (None: no missing-region evidence).
        index_of: category id -> train index (``taxonomy.index_of``).
        ring_px: ring width (recorded pixels) of the boundary evidence.
        min_missing_px: smallest missing region (recorded pixels).

    Returns:
        ``{"region": rows, "region_aum": rows (value: -mean AUM of the core), "boundary": rows,
        "missing": rows}``.
    """
    out: dict[str, list[AnnotationScore]] = {"region": [], "region_aum": [], "boundary": [], "missing": []}
    bg_idx = index_of(background_id) if background_id is not None else None
    cat_of_index: dict[int, int] = {}
    k_ring = np.ones((2 * ring_px + 1, 2 * ring_px + 1), np.uint8)
    for rec, insts in iter_annotations(split, background_id, images):
        px = dyn.pixels.get(int(rec.id))
        if px is None:
            continue
        aum = px["aum"].astype(np.float32)  # (h, w)
        other = px["other"].astype(np.int64)
        target = px["target"].astype(np.int64)
        shape = aum.shape
        area_scale = (rec.height * rec.width) / float(shape[0] * shape[1])  # full-res px per recorded px
        neg = aum < 0
        for inst in insts:
            ci = index_of(inst.category_id)
            cat_of_index[ci] = inst.category_id
            m = _down(inst.mask, shape)
            vis = m & (target == ci)
            if not vis.any():
                continue
            core = cv2.erode(vis.astype(np.uint8), _K3).astype(bool)
            if core.sum() < 2:
                core = vis
            share = float(neg[core].mean())
            bad = core & neg
            sugg = None
            if bad.any():
                sugg_idx, _ = Counter(other[bad].tolist()).most_common(1)[0]
                sugg = sugg_idx
            out["region"].append(AnnotationScore(rec.id, inst.annotation_id, inst.category_id, share,
                                                 {"dyn_region_neg_share": round(share, 4),
                                                  "dyn_region_aum": round(float(aum[core].mean()), 4),
                                                  "pixels": int(core.sum() * area_scale)}, sugg))
            mean_aum = float(aum[core].mean())
            out["region_aum"].append(AnnotationScore(rec.id, inst.annotation_id, inst.category_id, -mean_aum,
                                                     {"dyn_region_aum": round(mean_aum, 4)}, sugg))
            u8 = vis.astype(np.uint8)
            inner = vis & ~cv2.erode(u8, k_ring).astype(bool)
            outer = cv2.dilate(u8, k_ring).astype(bool) & ~vis & (target != 255)
            # inside: labelled this class, model prefers another; outside: model prefers this class
            wrong_in = int((inner & neg).sum())
            wrong_out = int((outer & neg & (other == ci)).sum())
            ring = int(inner.sum() + outer.sum())
            val = (wrong_in + wrong_out) / max(ring, 1)
            out["boundary"].append(AnnotationScore(rec.id, inst.annotation_id, inst.category_id, val,
                                                   {"dyn_boundary": round(val, 4), "dyn_inner_wrong": wrong_in,
                                                    "dyn_outer_claimed": wrong_out}))
        if bg_idx is not None:
            cand = ((target == bg_idx) & neg & (other != bg_idx)).astype(np.uint8)
            for sel, area, cls_idx, (x, y, w, h) in missing_regions(cand, other, min_missing_px):
                strength = float(-aum[sel].mean())
                s = 1.0 / np.sqrt(area_scale)
                tax = getattr(split, "taxonomy", None)
                cat = int(tax.ids[cls_idx]) if tax is not None else cat_of_index.get(cls_idx, cls_idx)
                out["missing"].append(AnnotationScore(
                    rec.id, None, cat, area * area_scale * strength,
                    {"dyn_missing_pixels": int(area * area_scale), "dyn_missing_aum": round(-strength, 4),
                     "region": [x / s, y / s, w / s, h / s]}, cat))
    return out
