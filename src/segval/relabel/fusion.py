"""Fusing still-image evidence kinds into one image ranking that does not lose to its inputs.

Each kind gives rows per annotation (or per unlabelled region, a drop candidate); kinds live on different
scales and fire on different error types (a swap moves the appearance evidence, a 3 px erosion only the
edge evidence, a drop only the model's missing regions), so the fusion works on **calibrated tail
p-values**, in three steps:

1. per kind, each row's value (class-normalised by :func:`~segval.relabel.annotations.class_excess`, or raw
   for kinds already on one absolute scale) becomes ``p = (rows scoring >= it) / N`` over every row of the
   split: most annotations are right, so a kind's bulk is its null distribution;
2. per annotation, the kinds are combined with the **truncated product of its two smallest p-values**
   (Fisher's statistic over the best two, chi-square with 4 degrees of freedom, times the number of kind
   pairs as a Bonferroni correction): an error type fires one or two kinds, so summing every kind (Fisher)
   dilutes a strong kind with noise and the single best (Tippett) ignores corroboration. An unlabelled region
   (a drop candidate) has one kind of evidence by construction, so its p is that kind's p times the number of
   kinds (Bonferroni, :func:`single_kind`): under the pair correction it could never go below about 0.5;
3. per image, the best annotation's p is corrected for the number of annotations it was the best of
   (Šidák: ``1 - (1 - p)^n``), so images with many objects are not ranked up by chance; the image's
   annotation evidence and its model label quality (cleanlab's softmin, when a model exists) are turned
   into tail p-values over the images and combined with Fisher's method.

:func:`fuse_still` returns the image scores (``-log`` of the combined p: higher = relabel first) and, per
image, its best annotation with the kinds that carried it (what the queue item says).
Measured on renders not used for tuning (README, "Finding label errors"): above every single kind and above
the label-quality score alone.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from segval.relabel.annotations import AnnotationScore, class_excess

__all__ = ["AnnotationEvidence", "StillRanking", "fuse_still", "single_kind", "tail_pvalues", "truncated_product"]


def tail_pvalues(values: Sequence[float]) -> np.ndarray:
    """float[N]: ``p_i = #{j: v_j >= v_i} / N`` (ties share the larger p; NaN / -inf rank last, p = 1).

    >>> tail_pvalues([0.9, 0.1, 0.5, 0.5]).tolist()
    [0.25, 1.0, 0.75, 0.75]
    """
    v = np.asarray(values, float)
    v = np.where(np.isfinite(v), v, -np.inf)
    n = len(v)
    if n == 0:
        return np.zeros(0)
    ge = n - np.searchsorted(np.sort(v), v, side="left")
    return np.where(np.isfinite(v), ge / n, 1.0)


def truncated_product(neg_log_p: Sequence[float], n_kinds: int) -> float:
    """p of the two smallest p-values of ``n_kinds`` (given as ``-log p``; absent kinds count as p = 1):
    chi-square survival of ``2 (-log p1 - log p2)`` with 4 degrees of freedom, times ``C(n_kinds, 2)``.

    >>> round(truncated_product([math.log(100), math.log(100)], 2), 6)  # p1 = p2 = 0.01
    0.001021
    """
    top = sorted(neg_log_p, reverse=True)[:2] + [0.0, 0.0]
    s = top[0] + top[1]  # chi2(4) survival at 2s is exp(-s) (1 + s)
    pairs = max(n_kinds * (n_kinds - 1) // 2, 1)
    return min(1.0, math.exp(-s) * (1.0 + s) * pairs)


def single_kind(neg_log_p: Sequence[float], n_kinds: int) -> float:
    """p of the smallest p-value of ``n_kinds`` (given as ``-log p``), times ``n_kinds`` (Bonferroni): the p of an
    item only one kind can score (an unlabelled region).

    >>> round(single_kind([math.log(100)], 3), 6)  # p = 0.01 among 3 kinds
    0.03
    """
    best = max(list(neg_log_p) + [0.0])
    return min(1.0, math.exp(-best) * max(n_kinds, 1))


@dataclass
class AnnotationEvidence:
    """The fused evidence of one annotation (or unlabelled region).

    Attributes:
        image_id, annotation_id (None: a region with no annotation), category_id (for a region: the class
        the evidence suggests), suggested: a class the evidence suggests instead (swaps), or None.
        p: the annotation's combined p-value (step 2).
        kinds: ``-log p`` of each kind that scored it.
        rows: the kinds' rows (their ``info`` says what was measured).
    """

    image_id: int
    annotation_id: int | None
    category_id: int | None
    p: float
    kinds: dict[str, float] = field(default_factory=dict)
    rows: dict[str, AnnotationScore] = field(default_factory=dict)
    suggested: int | None = None

    def top_kinds(self, n: int = 2) -> list[str]:
        """The kinds with the strongest evidence, strongest first."""
        return [k for k, _ in sorted(self.kinds.items(), key=lambda kv: -kv[1])[:n]]


@dataclass
class StillRanking:
    """What :func:`fuse_still` returns.

    Attributes:
        scores: ``{image_id: -log p}`` of every image (higher = relabel first).
        best: ``{image_id: [AnnotationEvidence]}`` the image's annotations, most suspicious first.
        kinds: the kinds fused (those with rows), with their weights.
    """

    scores: dict[int, float]
    best: dict[int, list[AnnotationEvidence]]
    kinds: dict[str, float]


def _annotation_table(rows: Mapping[str, Sequence[AnnotationScore]], weights: Mapping[str, float],
                      raw: Iterable[str]) -> dict[tuple, AnnotationEvidence]:
    """Step 1: every row's ``w * -log p`` under its annotation (regions are items of their own)."""
    raw = set(raw)
    items: dict[tuple, AnnotationEvidence] = {}
    for kind, w in weights.items():
        rs = rows.get(kind) or []
        if not rs or w <= 0:
            continue
        z = [r.value for r in rs] if kind in raw else class_excess(rs)
        p = tail_pvalues(z)
        for k, r in enumerate(rs):
            key = (r.image_id, r.annotation_id if r.annotation_id is not None else ("region", kind, k))
            it = items.setdefault(key, AnnotationEvidence(r.image_id, r.annotation_id, r.category_id, 1.0))
            v = w * -math.log(p[k])
            if v >= it.kinds.get(kind, -1.0):
                it.kinds[kind], it.rows[kind] = v, r
            if r.suggested is not None and it.suggested is None:
                it.suggested = r.suggested
    return items


def fuse_still(rows: Mapping[str, Sequence[AnnotationScore]], image_ids: Iterable[int], *,
               weights: Mapping[str, float], raw: Iterable[str] = (),
               label_quality: Mapping[int, float] | None = None) -> StillRanking:
    """Fuse the still-image evidence kinds of a split (see the module doc).

    Args:
        rows: ``{kind: rows}`` (kinds absent or with weight 0 are left out).
        image_ids: every image of the split (images without evidence score 0).
        weights: per kind, a factor on its ``-log p`` (1: as measured).
        raw: kinds ranked by their raw values (shares on one scale for every class), not class-normalised.
        label_quality: ``{image_id: cleanlab softmin}`` of a model (lower = more likely wrong), or None.
    """
    ids = [int(i) for i in image_ids]
    items = _annotation_table(rows, weights, raw)
    used = {k: float(w) for k, w in weights.items() if w > 0 and rows.get(k)}
    per_image: dict[int, list[AnnotationEvidence]] = {i: [] for i in ids}
    for it in items.values():
        combine = truncated_product if it.annotation_id is not None else single_kind
        it.p = combine(list(it.kinds.values()), len(used))
        per_image.setdefault(it.image_id, []).append(it)
    annotation_score = {}
    for i, its in per_image.items():
        its.sort(key=lambda e: (e.p, -sum(e.kinds.values())))
        if its:  # Sidak over the image's annotations: 1 - (1 - p_min)^n
            p = -math.expm1(len(its) * math.log1p(-min(its[0].p, 1.0 - 1e-12)))
            annotation_score[i] = -math.log(max(p, 1e-300))
        else:
            annotation_score[i] = 0.0
    combined = -np.log(tail_pvalues([annotation_score[i] for i in ids]))
    if label_quality is not None:
        lq = [-label_quality[i] if math.isfinite(label_quality.get(i, math.nan)) else -math.inf for i in ids]
        combined = combined - np.log(tail_pvalues(lq))
    return StillRanking({i: float(v) for i, v in zip(ids, combined)}, per_image, used)
