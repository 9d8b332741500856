"""Model-free still-image evidence: does an annotation's outline lie on the image's edges?

A correct outline runs along an intensity / colour edge of the image almost everywhere (the object's
silhouette against what is behind it). A dilated, eroded, shifted or simplified outline leaves it.
Two measures per annotation, on the image's gradient magnitude ``G`` (Sobel of the CIELab image,
normalised by the image's 99th percentile) and its *edge pixels* (``G >= edge_threshold``):

* ``gain``: how much better a slightly moved outline fits the edges than the annotation's own:
  ``(max_T s(T(M)) - s(M)) / max_T s(T(M))`` where ``s`` is the mean of ``G`` over the outline's
  pixels (inner and outer ring, pixels on the image frame left out) and ``T`` runs over dilations
  and erosions of 1..``max_radius`` px and translations of up to ``max_shift`` px. A correct mask is
  its own best fit (0); an eroded mask fits much better dilated back, a shifted one shifted back.
* ``off_edge``: share of the outline's pixels farther than ``off_edge_px`` from any edge pixel
  (simplified polygons cut corners: their chords leave the edges wherever no transform of the whole
  mask can fix it).

Both are raw values (higher = more likely wrong); :func:`~segval.relabel.annotations.class_excess`
compares them with the class's usual values (objects with weak contrast have low support everywhere).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from segval.relabel.annotations import AnnotationScore, iter_annotations

__all__ = ["EdgeConfig", "edge_evidence", "edge_strength", "outline_fit"]


@dataclass(frozen=True)
class EdgeConfig:
    """Parameters of :func:`outline_fit` (see the module doc)."""

    max_radius: int = 4
    max_shift: int = 8
    shift_step: int = 1
    edge_threshold: float = 0.2
    off_edge_px: float = 1.5
    min_outline_px: int = 12
    pad: int = 12


def edge_strength(rgb: np.ndarray) -> np.ndarray:
    """float32[H, W] in [0, 1]: Sobel gradient magnitude of the CIELab image (all channels), over its
    99th percentile (clipped)."""
    lab = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2LAB).astype(np.float32)
    gx = cv2.Sobel(lab, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(lab, cv2.CV_32F, 0, 1, ksize=3)
    g = np.sqrt((gx * gx + gy * gy).sum(axis=-1))
    p = float(np.percentile(g, 99)) or 1.0
    return np.clip(g / p, 0.0, 1.0)


def _outline(m: np.ndarray) -> np.ndarray:
    """bool: the inner and the outer one-pixel ring of mask ``m`` (4-neighbourhood)."""
    u = m.astype(np.uint8)
    k = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    return (cv2.dilate(u, k) != cv2.erode(u, k, borderType=cv2.BORDER_REPLICATE))


def _disk(r: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


def outline_fit(mask: np.ndarray, g: np.ndarray, edges_dist: np.ndarray, cfg: EdgeConfig = EdgeConfig()
                ) -> dict[str, float] | None:
    """The two measures of the module doc for ``mask`` (bool[H, W]) on ``g`` (:func:`edge_strength`)
    and ``edges_dist`` (distance in px to the nearest edge pixel); None when the outline is too short.

    Returns:
        ``{"gain", "off_edge", "support", "best_support", "best": name of the best transform}``.
    """
    h, w = mask.shape
    ys, xs = np.nonzero(mask)
    if not len(ys):
        return None
    p = cfg.pad + cfg.max_shift
    y0, y1, x0, x1 = max(ys.min() - p, 0), min(ys.max() + p + 1, h), max(xs.min() - p, 0), min(xs.max() + p + 1, w)
    m = mask[y0:y1, x0:x1]
    gc = g[y0:y1, x0:x1]
    frame = np.zeros((y1 - y0, x1 - x0), bool)  # the image frame: no edge can be seen there
    if y0 == 0:
        frame[0] = True
    if x0 == 0:
        frame[:, 0] = True
    if y1 == h:
        frame[-1] = True
    if x1 == w:
        frame[:, -1] = True
    frame = cv2.dilate(frame.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    own = _outline(m) & ~frame
    oy, ox = np.nonzero(own)
    if len(oy) < cfg.min_outline_px:
        return None
    support = float(gc[oy, ox].mean())
    off = float((edges_dist[y0:y1, x0:x1][oy, ox] > cfg.off_edge_px).mean())
    best, best_name = support, "identity"
    u8 = m.astype(np.uint8)
    for r in range(1, cfg.max_radius + 1):
        for name, t in (("dilate", cv2.dilate(u8, _disk(r))), ("erode", cv2.erode(u8, _disk(r)))):
            o = _outline(t.astype(bool)) & ~frame
            if o.sum() >= cfg.min_outline_px:
                s = float(gc[o].mean())
                if s > best:
                    best, best_name = s, f"{name}{r}"
    for (dy, dx), s in _shifted_supports(own, gc, frame, cfg, len(oy)):
        if s > best:
            best, best_name = s, f"shift{dy:+d},{dx:+d}"
    gain = (best - support) / best if best > 0 else 0.0
    return {"gain": gain, "off_edge": off, "support": support, "best_support": best, "best": best_name}


def _shifted_supports(own: np.ndarray, gc: np.ndarray, frame: np.ndarray, cfg: EdgeConfig, n_outline: int
                      ) -> list[tuple[tuple[int, int], float]]:
    """``[((dy, dx), mean edge strength under the outline moved by (dy, dx))]`` for every shift of the search,
    in row-major order (dy outer), (0, 0) and shifts that leave too much of the outline outside the crop or on
    the image frame left out. Three correlations of the outline with the crop give every shift at once."""
    m = cfg.max_shift
    tmpl = own.astype(np.float32)
    pad = lambda a: cv2.copyMakeBorder(a.astype(np.float32), m, m, m, m, cv2.BORDER_CONSTANT, value=0.0)  # noqa: E731
    inside = cv2.matchTemplate(pad(np.ones_like(gc)), tmpl, cv2.TM_CCORR)  # outline pixels in the crop
    kept = cv2.matchTemplate(pad(~frame), tmpl, cv2.TM_CCORR)  # ... and off the image frame
    total = cv2.matchTemplate(pad(np.where(frame, 0.0, gc)), tmpl, cv2.TM_CCORR)  # edge strength there
    out = []
    for dy in range(-m, m + 1, cfg.shift_step):
        for dx in range(-m, m + 1, cfg.shift_step):
            if dy == 0 and dx == 0:
                continue
            n_in, n_keep = round(float(inside[m + dy, m + dx])), round(float(kept[m + dy, m + dx]))
            if n_in < max(cfg.min_outline_px, 0.8 * n_outline) or n_keep < cfg.min_outline_px:
                continue
            out.append(((dy, dx), float(total[m + dy, m + dx]) / n_keep))
    return out


def edge_evidence(split: Any, *, background_id: int | None, cfg: EdgeConfig = EdgeConfig(),
                  images: Sequence[Any] | None = None, progress: Any = None) -> dict[str, list[AnnotationScore]]:
    """``{"gain": rows, "off_edge": rows}``: the two measures for every annotation of ``split``."""
    out: dict[str, list[AnnotationScore]] = {"gain": [], "off_edge": []}
    it = iter_annotations(split, background_id, images)
    for rec, insts in (progress(it) if progress else it):
        rgb = split.read_image(rec)
        g = edge_strength(rgb)
        edges = (g >= cfg.edge_threshold).astype(np.uint8)
        dist = cv2.distanceTransform(1 - edges, cv2.DIST_L2, 3)
        for inst in insts:
            fit = outline_fit(inst.mask, g, dist, cfg)
            if fit is None:
                continue
            info = {"edge_gain": round(fit["gain"], 4), "edge_off": round(fit["off_edge"], 4),
                    "edge_support": round(fit["support"], 4), "edge_best": fit["best"]}
            out["gain"].append(AnnotationScore(rec.id, inst.annotation_id, inst.category_id, fit["gain"], info))
            out["off_edge"].append(AnnotationScore(rec.id, inst.annotation_id, inst.category_id, fit["off_edge"], info))
    return out
