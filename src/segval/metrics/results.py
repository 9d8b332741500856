"""metrics.json, the confusion-matrix files and the per-class console table."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from segval.metrics.functional.semantic import METRIC_DEFINITIONS
from segval.io import atomic_path, write_json
from segval.io import optional_float

SCHEMA_VERSION = 1
SUMMARY_KEYS = ("mIoU", "mAcc", "aAcc", "fwIoU", "mDice", "mIoU_detectron2")


def metrics_payload(
    metrics: Mapping[str, Any],
    class_names: Sequence[str],
    *,
    class_ids: Sequence[int] | None = None,
    dataset: Mapping[str, Any] | None = None,
    split: str | None = None,
    checkpoint: str | None = None,
    step: int | None = None,
) -> dict[str, Any]:
    """The ``metrics.json`` document for one evaluation.

    Args:
        metrics: ``semantic_metrics(confmat)`` output.
        class_names: C names in train-index order; ``class_ids`` their taxonomy ids.

    A class whose IoU is undefined (no ground truth and no prediction) has ``"status": "absent"`` and
    null figures; it is left out of every mean.

    When ``metrics`` holds ``"task"`` (set by ``SegmentationModule``), the payload gets ``"task"``, and
    for the instance task ``"instance": {AP, AP50, AP75, APs, APm, APl, per_class: {name: AP}}``
    (COCOeval segm), for the panoptic task ``"panoptic": {PQ, SQ, RQ, PQ_th, ..., RQ_st, n, n_th,
    n_st, per_class: {name: {PQ, SQ, RQ}}}`` (panopticapi), values in [0, 1] and None for NaN.
    """
    per_class = []
    ids = list(class_ids) if class_ids is not None else list(range(len(class_names)))
    for i, name in enumerate(class_names):
        gt, pred = int(metrics["gt_pixels"][i]), int(metrics["pred_pixels"][i])
        status = "present" if gt > 0 else ("predicted_only" if pred > 0 else "absent")
        per_class.append(
            {
                "index": i,
                "id": int(ids[i]),
                "name": name,
                "status": status,
                "IoU": optional_float(metrics["IoU"][i]),
                "Acc": optional_float(metrics["Acc"][i]),
                "Dice": optional_float(metrics["Dice"][i]),
                "Precision": optional_float(metrics["Precision"][i]),
                "gt_pixels": gt,
                "pred_pixels": pred,
            }
        )
    payload = {
        "schema_version": SCHEMA_VERSION,
        "dataset": dict(dataset or {}),
        "split": split,
        "checkpoint": checkpoint,
        "step": step,
        "num_classes": len(class_names),
        "ignore_index": 255,
        "summary": {k: optional_float(metrics[k]) for k in SUMMARY_KEYS if k in metrics},
        "per_class": per_class,
        "definitions": dict(METRIC_DEFINITIONS),
        "confusion_matrix": {"file": "confusion_matrix.npy", "layout": "conf[gt, pred], int64 pixel counts"},
    }
    if metrics.get("task") is not None:
        payload["task"] = str(metrics["task"])
    for block in ("instance", "panoptic"):
        if metrics.get(block) is not None:
            payload[block] = _plain_block(metrics[block])
            payload["definitions"][block] = TASK_DEFINITIONS[block]
    return payload


#: how the instance / panoptic figures are defined (written into metrics.json "definitions")
TASK_DEFINITIONS = {
    "instance": "pycocotools COCOeval segm; predictions without bbox so APs/m/l use mask area (Detectron2); "
                "GT = thing classes of the dataset's COCO, crowd regions ignored; per-class AP at IoU .50:.95, "
                "all areas, 100 detections; null = no non-crowd ground truth",
    "panoptic": "panopticapi pq_compute: match IoU strictly > 0.5, void and crowd handled as panopticapi; "
                "PQ/SQ/RQ averaged over categories with TP+FP+FN > 0 (all, _th things, _st stuff); null for an "
                "empty group or class",
}


def _plain_block(obj: Any) -> Any:
    """Nested figures with NaN -> None (JSON null), ints kept."""
    if isinstance(obj, Mapping):
        return {str(k): _plain_block(v) for k, v in obj.items()}
    if isinstance(obj, int) and not isinstance(obj, bool):
        return obj
    return optional_float(obj)


def write_confusion(confmat: Any, class_names: Sequence[str], stem: str | Path) -> tuple[Path, Path]:
    """Write ``<stem>.npy`` (int64[C, C], conf[gt, pred]) and ``<stem>.csv`` (rows gt, columns pred, named)."""
    stem = Path(stem)
    arr = np.asarray(confmat, dtype=np.int64)
    npy, csv_path = stem.with_suffix(".npy"), stem.with_suffix(".csv")
    with atomic_path(npy, suffix=".npy") as tmp:
        np.save(tmp, arr)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["gt \\ pred", *class_names])
    for name, row in zip(class_names, arr):
        writer.writerow([name, *row.tolist()])
    with atomic_path(csv_path) as tmp:
        tmp.write_text(buf.getvalue(), encoding="utf-8")
    return npy, csv_path


def write_results(payload: Mapping[str, Any], confmat: Any, out_dir: str | Path) -> Path:
    """Write ``metrics.json`` and ``confusion_matrix.{npy,csv}`` into ``out_dir``; returns metrics.json."""
    out_dir = Path(out_dir)
    names = [c["name"] for c in payload["per_class"]]
    write_confusion(confmat, names, out_dir / "confusion_matrix")
    return write_json(out_dir / "metrics.json", payload)


def format_class_table(payload: Mapping[str, Any]) -> str:
    """A fixed-width per-class table (IoU / Acc / Dice in %, pixel share) with the summary row."""

    def pct(x: float | None) -> str:
        return "   -  " if x is None else f"{100 * x:6.2f}"

    rows = payload["per_class"]
    total = sum(r["gt_pixels"] for r in rows) or 1
    width = max(12, *(len(r["name"]) for r in rows))
    lines = [f"{'class':<{width}}  {'IoU':>6}  {'Acc':>6}  {'Dice':>6}  {'pixels':>7}  status"]
    lines.append("-" * len(lines[0]))
    for r in rows:
        share = f"{100 * r['gt_pixels'] / total:6.2f}%"
        lines.append(f"{r['name']:<{width}}  {pct(r['IoU'])}  {pct(r['Acc'])}  {pct(r['Dice'])}  {share}  {r['status']}")
    s = payload["summary"]
    lines.append("-" * len(lines[0]))
    lines.append(
        "  ".join(f"{k} {pct(s.get(k)).strip()}" for k in ("mIoU", "mAcc", "aAcc", "fwIoU") if k in s)
        + "   (%, MMSegmentation / Detectron2 definitions; '-' = absent from GT and prediction)"
    )
    for block, keys, how in (("instance", ("AP", "AP50", "AP75", "APs", "APm", "APl"), "COCOeval segm"),
                             ("panoptic", ("PQ", "SQ", "RQ", "PQ_th", "PQ_st"), "panopticapi")):
        if payload.get(block):
            lines.append("  ".join(f"{k} {pct(payload[block].get(k)).strip()}" for k in keys) + f"   (%, {how})")
    return "\n".join(lines)
