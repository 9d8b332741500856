"""Instance AP with pycocotools' COCOeval (segm), as Detectron2's COCOEvaluator reports it.

* Ground truth: the dataset's COCO annotations of the evaluated images, thing classes only, masks as
  compressed RLE with ``area`` = mask pixels; ``iscrowd`` annotations stay in as crowd regions, so
  COCOeval ignores the predictions that fall on them (neither true nor false positives).
* Predictions: ``{image_id, category_id, segmentation (RLE), score}`` WITHOUT ``bbox``, so
  ``loadRes`` takes the area from the mask and APs / APm / APl use mask areas (as Detectron2 does).
* Figures: AP (IoU .50:.95), AP50, AP75, APs, APm, APl and per-class AP (IoU .50:.95, all areas,
  100 detections; Detectron2's per-category AP), in [0, 1]. A figure without ground truth is NaN
  (None in metrics.json): a class whose only annotations are crowd regions has no AP, and is left
  out of the mean as COCOeval does.

Under DDP each rank keeps its own predictions; :func:`segval.metrics.instance.gather_results` collects them on every rank
(``all_gather_object``) before one COCOeval over the whole evaluation set.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from segval.dataset.rle import encode_coco_rle

__all__ = ["AP_KEYS", "coco_ground_truth", "evaluate_segm", "instance_results"]

AP_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl")


def coco_ground_truth(split: Any, records: Sequence[Any]) -> dict[str, Any]:
    """COCO ground truth (thing classes) of ``records`` of a :class:`~segval.dataset.split.SplitData`.

    Returns:
        ``{"images", "annotations", "categories"}`` with RLE segmentations, mask-pixel ``area``,
        ``bbox`` and ``iscrowd``; annotation ids are the dataset's.
    """
    things = [c for c in split.taxonomy.categories if c.isthing]
    thing_ids = {c.id for c in things}
    images, anns = [], []
    for rec in records:
        images.append({"id": int(rec.id), "width": int(rec.width), "height": int(rec.height),
                       "file_name": rec.file_name})
        for inst in split.instances(rec):
            if inst.category_id not in thing_ids or not inst.mask.any():
                continue
            rle, area, bbox = encode_coco_rle(inst.mask)
            anns.append({"id": int(inst.annotation_id), "image_id": int(rec.id), "category_id": int(inst.category_id),
                         "segmentation": rle, "area": float(area), "bbox": bbox, "iscrowd": int(inst.iscrowd)})
    cats = [{"id": c.id, "name": c.name, "isthing": 1} for c in things]
    return {"images": images, "annotations": anns, "categories": cats}


def instance_results(image_id: int, pred: Mapping[str, Any], category_ids: Sequence[int]) -> list[dict[str, Any]]:
    """COCO results of one image from ``{"masks": bool[K, H, W], "labels": long[K] (train indices),
    "scores": float[K]}`` (tensors or arrays); ``category_ids[train index]`` maps labels to COCO ids.
    Empty masks are dropped (COCO cannot score them)."""
    masks = np.asarray(pred["masks"].cpu() if hasattr(pred["masks"], "cpu") else pred["masks"], dtype=bool)
    labels = np.asarray(pred["labels"].cpu() if hasattr(pred["labels"], "cpu") else pred["labels"])
    scores = np.asarray(pred["scores"].float().cpu() if hasattr(pred["scores"], "cpu") else pred["scores"])
    out = []
    for m, lab, s in zip(masks, labels, scores):
        if m.any():
            out.append({"image_id": int(image_id), "category_id": int(category_ids[int(lab)]),
                        "segmentation": encode_coco_rle(m)[0], "score": float(s)})
    return out


def _nan(x: float) -> float:
    return float("nan") if x < 0 else float(x)


def evaluate_segm(ground_truth: Mapping[str, Any], results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Run COCOeval (segm) and return ``{AP, AP50, AP75, APs, APm, APl, per_class: {name: AP}}`` in [0, 1].

    Args:
        ground_truth: a COCO dict (see :func:`coco_ground_truth`).
        results: COCO results ``{image_id, category_id, segmentation, score}`` (a ``bbox`` key is
            dropped so areas are mask areas).

    NaN marks a figure with no ground truth (e.g. APl without large objects, a class whose
    annotations are all crowd).
    """
    gt_ids = {int(im["id"]) for im in ground_truth["images"]}
    unknown = sorted({int(r["image_id"]) for r in results} - gt_ids)
    if unknown:
        raise ValueError(f"predictions for images {unknown[:10]} that are not in the ground truth")
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {k: list(v) for k, v in ground_truth.items() if k in ("images", "annotations", "categories")}
        gt.createIndex()
        clean = [{k: v for k, v in r.items() if k != "bbox"} for r in results]
        if clean:
            dt = gt.loadRes(clean)
        else:  # loadRes refuses an empty list: no detection at all scores 0 where there is ground truth
            dt = COCO()
            dt.dataset = {"images": gt.dataset["images"], "categories": gt.dataset["categories"], "annotations": []}
            dt.createIndex()
        ev = COCOeval(gt, dt, iouType="segm")
        ev.params.imgIds = sorted(gt_ids)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    out: dict[str, Any] = {k: _nan(ev.stats[i]) for i, k in enumerate(AP_KEYS)}
    # precision[T, R, K, A, M]: area "all" (0), maxDets 100 (-1), as Detectron2's per-category AP
    precision = ev.eval["precision"]
    per_class: dict[str, float] = {}
    for k, cat_id in enumerate(ev.params.catIds):
        p = precision[:, :, k, 0, -1]
        p = p[p > -1]
        per_class[gt.cats[cat_id]["name"]] = float(np.mean(p)) if p.size else math.nan
    out["per_class"] = per_class
    return out
