"""Per-annotation evidence tables shared by the still-image evidence kinds.

Every still-image evidence kind (:mod:`segval.relabel.dynamics`, :mod:`segval.relabel.edge_alignment`,
:mod:`segval.relabel.appearance`) produces :class:`AnnotationScore` rows: one per annotation (or per
unlabelled region, ``annotation_id = None``) with a raw value (higher = more likely wrong) and the
numbers behind it. :func:`class_excess` turns raw values into evidence comparable across classes
(the excess over what is usual for the class), :func:`image_scores` into one score per image.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["AnnotationScore", "class_excess", "image_scores", "iter_annotations", "missing_regions"]


@dataclass
class AnnotationScore:
    """One scored annotation (or unlabelled region).

    Attributes:
        image_id: the image.
        annotation_id: the annotation, or None for a region with no annotation (a drop candidate).
        category_id: the annotation's class (for a region: the class the evidence suggests).
        value: the raw evidence value (higher = more likely a label error).
        info: the numbers behind ``value`` (carried into the queue's ``evidence``).
        suggested: a class the evidence suggests instead (swap candidates), or None.
    """

    image_id: int
    annotation_id: int | None
    category_id: int | None
    value: float
    info: dict[str, Any] = field(default_factory=dict)
    suggested: int | None = None


def iter_annotations(split: Any, background_id: int | None, images: Sequence[Any] | None = None
                     ) -> Iterable[tuple[Any, list[Any]]]:
    """``(record, instances)`` per image: the non-crowd, non-background instances (masks decoded)."""
    for rec in images if images is not None else split.images:
        insts = [i for i in split.instances(rec)
                 if not i.iscrowd and (background_id is None or i.category_id != background_id)]
        yield rec, insts


def class_excess(rows: Sequence[AnnotationScore], *, scale: str = "mad", min_scale: float = 1e-3,
                 key: Callable[[AnnotationScore], Any] = lambda r: r.category_id) -> list[float]:
    """Each row's value as its excess over the median of its class, in units of the class's spread.

    ``(v - median_c) / max(spread_c, min_scale)`` with ``spread_c`` = 1.4826 x the median absolute
    deviation (``scale="mad"``) or 1 (``scale="none"``). Classes with a single row use the
    pooled median and spread. A class whose annotations are mostly hard (a thin gripper) does not
    fill the queue, and a rare large deviation stands out in any class.

    >>> rows = [AnnotationScore(1, k, 1, v) for k, v in enumerate([0.1, 0.2, 0.1, 0.9])]
    >>> [round(x, 2) for x in class_excess(rows)]
    [-0.67, 0.67, -0.67, 10.12]
    """
    vals = np.array([r.value for r in rows], float)
    out = np.zeros(len(rows))
    if not len(rows):
        return []
    groups: dict[Any, list[int]] = defaultdict(list)
    for k, r in enumerate(rows):
        groups[key(r)].append(k)
    fin = np.isfinite(vals)
    pooled_med = float(np.median(vals[fin])) if fin.any() else 0.0
    pooled_mad = float(np.median(np.abs(vals[fin] - pooled_med))) * 1.4826 if fin.any() else 1.0
    for _, idx in groups.items():
        v = vals[idx]
        f = v[np.isfinite(v)]
        if len(f) >= 3:
            med = float(np.median(f))
            mad = float(np.median(np.abs(f - med))) * 1.4826
        else:
            med, mad = pooled_med, pooled_mad
        sc = 1.0 if scale == "none" else max(mad, min_scale)
        out[idx] = np.where(np.isfinite(v), (v - med) / sc, np.nan)
    return out.tolist()


def image_scores(rows: Sequence[AnnotationScore], values: Sequence[float] | None = None,
                 image_ids: Iterable[int] = (), *, reduce: str = "max") -> dict[int, float]:
    """One score per image: the max (``reduce="max"``) or the sum of the positive values of its rows
    (``values`` replaces the rows' own values). Images of ``image_ids`` without a finite row score
    the lowest score seen minus one (ranked last, tied)."""
    vals = [r.value for r in rows] if values is None else list(values)
    per: dict[int, list[float]] = defaultdict(list)
    for r, v in zip(rows, vals):
        if v is not None and np.isfinite(v):
            per[r.image_id].append(float(v))
    out = {i: (max(v) if reduce == "max" else float(sum(x for x in v if x > 0))) for i, v in per.items()}
    floor = (min(out.values()) - 1.0) if out else 0.0
    for i in image_ids:
        out.setdefault(int(i), floor)
    return out


def group_by_image(rows: Sequence[AnnotationScore]) -> Mapping[int, list[AnnotationScore]]:
    out: dict[int, list[AnnotationScore]] = defaultdict(list)
    for r in rows:
        out[r.image_id].append(r)
    return out


def missing_regions(candidates: np.ndarray, classes: np.ndarray, min_px: int
                    ) -> Iterable[tuple[np.ndarray, int, int, tuple[int, int, int, int]]]:
    """Connected regions (8-connected) of ``candidates`` of at least ``min_px`` pixels, each with the class
    most of its pixels have in ``classes``: where a model puts an object the labels do not have.

    Args:
        candidates: bool or uint8[H, W], the pixels to group.
        classes: int[H, W], the class of each pixel (e.g. the model's prediction).
        min_px: smaller regions are left out.

    Yields:
        (region bool[H, W], area, majority class, box (x, y, w, h)).
    """
    import cv2

    n, lab, stats, _ = cv2.connectedComponentsWithStats(candidates.astype(np.uint8, copy=False), connectivity=8)
    for k in range(1, n):
        area = int(stats[k, cv2.CC_STAT_AREA])
        if area < min_px:
            continue
        region = lab == k
        cls = Counter(classes[region].tolist()).most_common(1)[0][0]
        yield region, area, int(cls), tuple(int(v) for v in stats[k, :4])
