"""Domain gap: one checkpoint evaluated on the annotation split and on a second domain, per class.

The *source* is the split the annotation team labelled (e.g. ``val``); the *target* another split
or package of the same taxonomy (e.g. images from the robot's own camera, ``robot_cam``). Both
``metrics.json`` come from :func:`segval.commands.eval.run` with the same checkpoint, so every figure
follows the same definitions. Per class: ``IoU_source``, ``IoU_target``, ``gap = IoU_target -
IoU_source`` (negative = worse on the target) and ``relative = gap / IoU_source``; a class absent
from one side (no ground truth and no prediction) has a null gap. The summary gives mIoU, mAcc and
aAcc on both sides and their gaps. Rows are sorted by gap, largest drop first (nulls last).

A target whose taxonomy differs from the source's (names or category ids) is refused before
anything is evaluated (:func:`check_same_taxonomy`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from segval.errors import DatasetError

SCHEMA_VERSION = 1


def check_same_taxonomy(source: Any, target: Any, *, where: object = None) -> None:
    """DatasetError when two taxonomies differ in names or ids (both listed)."""
    a = list(zip(source.ids, source.names, strict=True))
    b = list(zip(target.ids, target.names, strict=True))
    if a != b:
        only_a = [f"{i}:{n}" for i, n in a if (i, n) not in b]
        only_b = [f"{i}:{n}" for i, n in b if (i, n) not in a]
        raise DatasetError(f"the target's taxonomy differs from the source's (only in source: {only_a or '-'}; "
                           f"only in target: {only_b or '-'}); a domain gap is only measured on the same classes: "
                           "relabel the target with the source taxonomy", path=where)


def _sub(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else float(a) - float(b)


def domain_gap(source: Mapping[str, Any], target: Mapping[str, Any]) -> dict[str, Any]:
    """The domain_gap.json document from two metrics.json payloads of the same checkpoint.

    Raises:
        DatasetError: the payloads' classes differ.
    """
    src_rows = {r["name"]: r for r in source["per_class"]}
    tgt_rows = {r["name"]: r for r in target["per_class"]}
    if list(src_rows) != list(tgt_rows):
        raise DatasetError(f"the two evaluations have different classes ({list(src_rows)} vs {list(tgt_rows)})")
    rows = []
    for name, r in src_rows.items():
        t = tgt_rows[name]
        iou_s, iou_t = r.get("IoU"), t.get("IoU")
        gap = _sub(iou_t, iou_s)
        rows.append({"name": name, "id": r.get("id"), "index": r.get("index"), "IoU_source": iou_s, "IoU_target": iou_t,
                     "gap": gap, "relative": None if gap is None or not iou_s else gap / float(iou_s),
                     "Acc_source": r.get("Acc"), "Acc_target": t.get("Acc"),
                     "gt_pixels_source": r.get("gt_pixels"), "gt_pixels_target": t.get("gt_pixels"),
                     "status_source": r.get("status"), "status_target": t.get("status")})
    order = [r["name"] for r in rows]
    rows.sort(key=lambda r: (r["gap"] is None, r["gap"] if r["gap"] is not None else 0.0, r["index"] or 0))
    ss, ts = source.get("summary") or {}, target.get("summary") or {}

    def side(p: Mapping[str, Any]) -> dict[str, Any]:
        d = p.get("dataset") or {}
        return {"dataset": f"{d.get('name')} {d.get('version')}", "source": d.get("source"), "split": p.get("split"),
                "checkpoint": p.get("checkpoint"), "step": p.get("step")}

    summary = {}
    for k in ("mIoU", "mAcc", "aAcc"):
        summary[f"{k}_source"] = ss.get(k)
        summary[f"{k}_target"] = ts.get(k)
        summary[f"{k}_gap"] = _sub(ts.get(k), ss.get(k))
    summary["largest_drops"] = [r["name"] for r in rows if r["gap"] is not None and r["gap"] < 0][:5]
    return {"schema_version": SCHEMA_VERSION, "source": side(source), "target": side(target), "summary": summary,
            "per_class": rows, "class_order": [{"name": n} for n in order],
            "definition": "gap = IoU on the target - IoU on the source (same checkpoint, MMSegmentation IoU); "
                          "relative = gap / IoU_source; null where a class is absent from one side"}


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}"


def format_domain_gap(doc: Mapping[str, Any]) -> str:
    """domain_gap.md: the summary and the per-class table (IoU in %, gap in points)."""
    s, src, tgt = doc["summary"], doc["source"], doc["target"]
    gap = s.get("mIoU_gap")
    lines = [f"# Domain gap: {src['dataset']} / {src['split']} -> {tgt['dataset']} / {tgt['split']}", "",
             f"Checkpoint {src['checkpoint']} (step {src['step']}). mIoU {_pct(s['mIoU_source'])}% -> "
             f"{_pct(s['mIoU_target'])}% ({'n/a' if gap is None else f'{100 * gap:+.2f}'} points); mAcc "
             f"{_pct(s['mAcc_source'])}% -> {_pct(s['mAcc_target'])}%; aAcc {_pct(s['aAcc_source'])}% -> "
             f"{_pct(s['aAcc_target'])}%.", "", f"Definition: {doc['definition']}.", "",
             f"| class | IoU {src['split']} | IoU {tgt['split']} | gap (points) | relative |", "|---|---:|---:|---:|---:|"]
    for r in doc["per_class"]:
        g = "n/a" if r["gap"] is None else f"{100 * r['gap']:+.2f}"
        rel = "n/a" if r["relative"] is None else f"{100 * r['relative']:+.1f}%"
        lines.append(f"| {r['name']} | {_pct(r['IoU_source'])} | {_pct(r['IoU_target'])} | {g} | {rel} |")
    return "\n".join(lines) + "\n"
