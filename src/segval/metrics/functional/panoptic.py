"""Panoptic quality PQ = SQ x RQ with the COCO panoptic definition (panopticapi ``pq_compute``).

Per image (:func:`pq_image_stats`), following ``panopticapi.evaluation.pq_compute_single_core``:

* a ground-truth and a predicted segment of the same category match when IoU is **strictly** > 0.5,
  with the prediction's void pixels (ground-truth id 0) left out of the union;
* crowd ground-truth segments are never matched and never count as false negatives; an unmatched
  prediction is not a false positive when more than half of it lies on void or on the (last listed)
  crowd segment of its category;
* everything else unmatched is a false negative / false positive.

Per category the image statistics add up (IoU sum, TP, FP, FN: a state summed across ranks,
:class:`segval.metrics.panoptic.PanopticQualityStats`), and :func:`pq_summary` gives ``PQ = IoU / (TP + FP/2 + FN/2)``,
``SQ = IoU / TP`` (0 when TP = 0), ``RQ = TP / (TP + FP/2 + FN/2)``, averaged over the categories
with any TP / FP / FN: for all, things (``_th``) and stuff (``_st``). A group without such a
category is NaN (panopticapi divides by zero there), and so is a class's own entry (panopticapi
writes 0 there and leaves it out of the mean, as we do).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from torch import Tensor

__all__ = ["pq_image_stats", "pq_summary"]

OFFSET = 256 * 256 * 256
VOID = 0


def _areas(ids: np.ndarray, segments: Sequence[Mapping[str, Any]], what: str) -> dict[int, dict[str, Any]]:
    values, counts = np.unique(ids, return_counts=True)
    area = dict(zip(values.tolist(), counts.tolist()))
    out: dict[int, dict[str, Any]] = {}
    for s in segments:
        sid = int(s["id"])
        if sid == VOID:
            raise ValueError(f"{what} segment id 0 is void, not a segment")
        if sid in out:
            raise ValueError(f"{what} segment id {sid} is listed twice: segments may not overlap")
        if sid not in area:
            raise ValueError(f"{what} segment {sid} is listed but has no pixel in the id map")
        out[sid] = {"category_id": int(s["category_id"]), "iscrowd": int(s.get("iscrowd", 0) or 0), "area": area[sid]}
    missing = sorted(set(area) - set(out) - {VOID})
    if missing:
        raise ValueError(f"{what} id map holds segment ids {missing[:10]} that are not listed in its segments")
    return out


def pq_image_stats(
    gt_ids: np.ndarray,
    gt_segments: Sequence[Mapping[str, Any]],
    pred_ids: np.ndarray,
    pred_segments: Sequence[Mapping[str, Any]],
    category_ids: Sequence[int],
) -> np.ndarray:
    """PQ statistics of one image.

    Args:
        gt_ids: int[H, W] ground-truth segment ids (0 = void).
        gt_segments: ``[{"id", "category_id", "iscrowd"}]``, every non-zero id of ``gt_ids`` once.
        pred_ids: int[H, W] predicted segment ids (0 = no prediction).
        pred_segments: ``[{"id", "category_id"}]``, every non-zero id of ``pred_ids`` once.
        category_ids: the K categories, in the order of the returned rows.

    Returns:
        float64[K, 4]: per category (IoU sum, TP, FP, FN).

    Raises:
        ValueError: shapes differ, an id map holds an unlisted id, a listed segment has no pixel or
            is listed twice, a category is not among ``category_ids``.

    Example:
        >>> gt = np.array([[1, 1, 2, 2]]); pred = np.array([[1, 1, 1, 2]])
        >>> pq_image_stats(gt, [{"id": 1, "category_id": 7}, {"id": 2, "category_id": 7}],
        ...                pred, [{"id": 1, "category_id": 7}, {"id": 2, "category_id": 7}], [7]).tolist()
        [[0.6666666666666666, 1.0, 1.0, 1.0]]
    """
    gt_ids = np.asarray(gt_ids).astype(np.int64)
    pred_ids = np.asarray(pred_ids).astype(np.int64)
    if gt_ids.shape != pred_ids.shape:
        raise ValueError(f"ground truth {gt_ids.shape} and prediction {pred_ids.shape} id maps differ in shape")
    index = {int(c): k for k, c in enumerate(category_ids)}
    gt = _areas(gt_ids, gt_segments, "ground-truth")
    pred = _areas(pred_ids, pred_segments, "predicted")
    for what, segs in (("ground-truth", gt), ("predicted", pred)):
        for sid, s in segs.items():
            if s["category_id"] not in index:
                raise ValueError(f"{what} segment {sid} has category {s['category_id']}, not in {list(index)}")
    stats = np.zeros((len(index), 4), dtype=np.float64)
    pairs, counts = np.unique(gt_ids * OFFSET + pred_ids, return_counts=True)
    inter = {(int(p // OFFSET), int(p % OFFSET)): int(c) for p, c in zip(pairs, counts)}
    gt_matched, pred_matched = set(), set()
    for (g, p), n in inter.items():
        if g not in gt or p not in pred:
            continue
        if gt[g]["iscrowd"] == 1 or gt[g]["category_id"] != pred[p]["category_id"]:
            continue
        union = pred[p]["area"] + gt[g]["area"] - n - inter.get((VOID, p), 0)
        iou = n / union
        if iou > 0.5:
            k = index[gt[g]["category_id"]]
            stats[k, 0] += iou
            stats[k, 1] += 1
            gt_matched.add(g)
            pred_matched.add(p)
    crowd: dict[int, int] = {}
    for g, s in gt.items():
        if g in gt_matched:
            continue
        if s["iscrowd"] == 1:
            crowd[s["category_id"]] = g
            continue
        stats[index[s["category_id"]], 3] += 1
    for p, s in pred.items():
        if p in pred_matched:
            continue
        n = inter.get((VOID, p), 0)
        if s["category_id"] in crowd:
            n += inter.get((crowd[s["category_id"]], p), 0)
        if n / s["area"] > 0.5:
            continue
        stats[index[s["category_id"]], 2] += 1
    return stats


def pq_summary(stats: np.ndarray | Tensor, names: Sequence[str], isthing: Sequence[bool]) -> dict[str, Any]:
    """PQ / SQ / RQ for all, things (``_th``) and stuff (``_st``), plus per class, from summed stats.

    Args:
        stats: float[K, 4] (IoU sum, TP, FP, FN) per category.
        names, isthing: the K category names and kinds.

    Returns:
        ``{"PQ", "SQ", "RQ", "PQ_th", ..., "RQ_st", "n", "n_th", "n_st", "per_class": {name: {PQ, SQ, RQ}}}``;
        NaN for a group / class without any TP, FP or FN.
    """
    s = np.asarray(stats.cpu() if isinstance(stats, Tensor) else stats, dtype=np.float64)
    per_class: dict[str, dict[str, float]] = {}
    rows: list[tuple[bool, float, float, float]] = []
    for k, name in enumerate(names):
        iou, tp, fp, fn = s[k]
        if tp + fp + fn == 0:
            per_class[name] = {"PQ": math.nan, "SQ": math.nan, "RQ": math.nan}
            continue
        denom = tp + 0.5 * fp + 0.5 * fn
        pq, sq, rq = iou / denom, (iou / tp if tp else 0.0), tp / denom
        per_class[name] = {"PQ": float(pq), "SQ": float(sq), "RQ": float(rq)}
        rows.append((bool(isthing[k]), float(pq), float(sq), float(rq)))
    out: dict[str, Any] = {}
    for suffix, keep in (("", lambda t: True), ("_th", lambda t: t), ("_st", lambda t: not t)):
        group = [r for r in rows if keep(r[0])]
        for j, key in enumerate(("PQ", "SQ", "RQ"), start=1):
            out[key + suffix] = float(np.mean([r[j] for r in group])) if group else math.nan
        out["n" + suffix] = len(group)
    out["per_class"] = per_class
    return out
