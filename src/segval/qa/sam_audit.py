"""SAM-assist audit: how far manual correction moved SAM 2's proposed masks (``segval qa sam-audit``).

Inputs: ``proposals.json`` written by ``segval relabel`` beside queue.json (a list of
``{item_id, image_id, category_id, segmentation: COCO RLE, score, source_annotation_id, model}``,
see the README's relabel loop section) and the package version the corrections were imported into.

**The correction of a proposal** is, on the proposal's image in that version:

1. the annotation ``source_annotation_id`` when it is still there (the import keeps the id of an
   annotation it matched), whatever its category (a changed category is a correction too: IoU
   is measured on the masks);
2. else the annotation of the proposal's category with the highest mask IoU with the proposal
   (the annotator redrew it under a new id);
3. else none: IoU 0 (the proposal was rejected).

**Per class** (the proposal's category): proposals, mean / median / minimum IoU, and the share of
proposals below ``min_iou`` (0.90). A class is **flagged** when its mean IoU is below ``min_iou``.

**Recommended review sample** of a class's SAM-assisted masks (the rule): estimate the class's
defect rate p (share of proposals below ``min_iou``) to within ``margin`` (±5 points) at 95 %
confidence: Cochran's n0 = z² q (1 − q) / margin² (z = 1.96), q = p clipped to [0.05, 0.5] (so more
defects never ask for a smaller sample and p = 1 takes the worst case 0.5), with the
finite-population correction n = ceil(n0 / (1 + (n0 − 1) / N)), N = the class's proposals;
recommended = max(n, ceil(base_fraction × N)) (base 15 %), capped at N. Unflagged classes keep
ceil(base_fraction × N).
"""

from __future__ import annotations

import json
import math
import os
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from segval.errors import ConfigError, DatasetError

MIN_IOU = 0.90
BASE_FRACTION = 0.15
MARGIN = 0.05
Z95 = 1.96


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two boolean masks (1.0 when both are empty)."""
    union = int(np.count_nonzero(a | b))
    return 1.0 if union == 0 else int(np.count_nonzero(a & b)) / union


def recommended_sample(population: int, defect_rate: float, flagged: bool, *, base_fraction: float = BASE_FRACTION,
                       margin: float = MARGIN, z: float = Z95) -> int:
    """The review sample size of the module doc's rule.

    >>> recommended_sample(100, 0.5, True)   # n0 = 384.16 -> 80 with N = 100
    80
    >>> recommended_sample(100, 0.5, False)
    15
    """
    base = min(population, int(math.ceil(base_fraction * population - 1e-9)))
    if not flagged or population == 0:
        return base
    q = min(max(float(defect_rate), 0.05), 0.5)
    n0 = z * z * q * (1.0 - q) / (margin * margin)
    n = int(math.ceil(n0 / (1.0 + (n0 - 1.0) / population) - 1e-9))
    return min(population, max(n, base))


def read_proposals(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The proposals list, checked (DatasetError naming the file and the entry)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError("proposals file not found; pass the proposals.json written by `segval relabel` beside "
                           "queue.json", path=path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DatasetError(f"invalid JSON at line {err.lineno}, column {err.colno}: {err.msg}", path=path) from None
    if not isinstance(data, list):
        raise DatasetError(f"proposals.json must be a list of proposals, got {type(data).__name__}", path=path)
    for k, p in enumerate(data):
        seg = p.get("segmentation") if isinstance(p, Mapping) else None
        if not isinstance(p, Mapping) or "image_id" not in p or "category_id" not in p or not isinstance(seg, Mapping) \
                or "counts" not in seg or "size" not in seg:
            raise DatasetError(f"proposal {k} needs image_id, category_id and segmentation {{size, counts}} "
                               f"(COCO RLE), got keys {sorted(p) if isinstance(p, Mapping) else type(p).__name__}",
                               path=path)
    return list(data)


def _decode(seg: Mapping[str, Any], h: int, w: int, where: str, path: Path) -> np.ndarray:
    from pycocotools import mask as mask_utils

    size = [int(x) for x in seg["size"]]
    if size != [h, w]:
        raise DatasetError(f"{where}: RLE size {size} is not the image size [{h}, {w}]", path=path)
    counts = seg["counts"]
    rle = {"size": size, "counts": counts.encode() if isinstance(counts, str) else counts}
    if isinstance(counts, list):
        rle = mask_utils.frPyObjects(rle, h, w)
    return mask_utils.decode(rle).astype(bool)


def audit(proposals: Sequence[Mapping[str, Any]], pkg: Any, split: str, *, min_iou: float = MIN_IOU,
          base_fraction: float = BASE_FRACTION, margin: float = MARGIN,
          proposals_path: str | os.PathLike = "proposals.json") -> dict[str, Any]:
    """The audit document (see the module doc): ``{dataset, split, min_iou, rule, summary, classes: [...],
    proposals: [{item_id, image_id, category_id, class, matched_annotation_id, how, IoU, score}]}``."""
    if not 0.0 < float(min_iou) <= 1.0:
        raise ConfigError(f"min_iou must be in (0, 1], got {min_iou!r}")
    if not 0.0 < float(base_fraction) <= 1.0 or not 0.0 < float(margin) < 1.0:
        raise ConfigError(f"base_fraction must be in (0, 1] and margin in (0, 1), got {base_fraction!r}, {margin!r}")
    path = Path(proposals_path)
    sd = pkg.split(split)
    names = {c.id: c.name for c in pkg.taxonomy}
    rows = []
    for k, p in enumerate(proposals):
        image_id, cat = int(p["image_id"]), int(p["category_id"])
        where = f"proposal {k} (item {p.get('item_id')!r}, image id {image_id})"
        if cat not in names:
            raise DatasetError(f"{where}: category id {cat} is not in the taxonomy of {pkg.root} ({sorted(names)})",
                               path=path)
        try:
            rec = sd.image(image_id)
        except KeyError:
            raise DatasetError(f"{where}: image id {image_id} is not in split {split!r} of {pkg.root}; audit against "
                               "the version the corrections were imported into (and its split)", path=path) from None
        prop = _decode(p["segmentation"], rec.height, rec.width, where, path)
        anns = {int(a["id"]): (a, rl) for a, rl in sd.masks(rec)}
        src = p.get("source_annotation_id")
        match, how, iou = None, "none", 0.0
        if src is not None and int(src) in anns:
            match, how = int(src), "source_annotation"
            iou = mask_iou(prop, anns[match][1].decode())
        else:
            for aid, (a, rl) in sorted(anns.items()):
                if int(a["category_id"]) != cat:
                    continue
                v = mask_iou(prop, rl.decode())
                if match is None or v > iou:
                    match, how, iou = aid, "best_iou", v
        rows.append({"item_id": p.get("item_id"), "image_id": image_id, "category_id": cat, "class": names[cat],
                     "matched_annotation_id": match, "how": how, "IoU": iou, "score": p.get("score"),
                     "model": p.get("model")})
    by_class: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        by_class[r["class"]].append(r["IoU"])
    classes = []
    for name in [n for n in names.values() if n in by_class]:
        v = np.asarray(by_class[name], dtype=np.float64)
        mean = float(v.mean())
        below = float(np.mean(v < min_iou))
        flagged = mean < min_iou
        classes.append({"name": name, "proposals": int(v.size), "mean_IoU": mean, "median_IoU": float(np.median(v)),
                        "min_IoU": float(v.min()), "share_below": below, "flagged": flagged,
                        "recommended_sample": recommended_sample(int(v.size), below, flagged,
                                                                 base_fraction=base_fraction, margin=margin)})
    all_iou = [r["IoU"] for r in rows]
    return {
        "dataset": {"name": pkg.name, "version": str(pkg.version), "root": str(pkg.root)},
        "split": split, "proposals_file": str(path), "min_iou": float(min_iou),
        "rule": {"base_fraction": base_fraction, "margin": margin, "z": Z95,
                 "text": "flagged when a class's mean IoU < min_iou; recommended = max(ceil(n0 / (1 + (n0 - 1) / N)), "
                         "ceil(base_fraction x N)) with n0 = z^2 q (1 - q) / margin^2, q = share below min_iou clipped "
                         "to [0.05, 0.5], N = the class's proposals"},
        "summary": {"proposals": len(rows), "mean_IoU": float(np.mean(all_iou)) if all_iou else None,
                    "flagged_classes": [c["name"] for c in classes if c["flagged"]],
                    "rejected": sum(r["how"] == "none" for r in rows)},
        "classes": classes,
        "proposals": rows,
    }


def format_audit(doc: Mapping[str, Any]) -> str:
    """sam_audit.md."""
    d = doc["dataset"]
    s = doc["summary"]
    mean = "n/a" if s["mean_IoU"] is None else f"{100 * s['mean_IoU']:.1f}%"
    lines = [f"# SAM-assist audit: {d['name']} {d['version']} / {doc['split']}", "",
             f"{s['proposals']} proposals against their manual corrections; mean IoU {mean}; {s['rejected']} rejected "
             f"(no correction of their class). Flagged: mean IoU < {100 * doc['min_iou']:.0f}%.", "",
             f"Rule: {doc['rule']['text']}.", "",
             "| class | proposals | mean IoU | median | min | below target | flagged | recommended sample |",
             "|---|---:|---:|---:|---:|---:|---|---:|"]
    for c in doc["classes"]:
        lines.append(f"| {c['name']} | {c['proposals']} | {100 * c['mean_IoU']:.1f}% | {100 * c['median_IoU']:.1f}% | "
                     f"{100 * c['min_IoU']:.1f}% | {100 * c['share_below']:.0f}% | {'**yes**' if c['flagged'] else ''} | "
                     f"{c['recommended_sample']} |")
    return "\n".join(lines) + "\n"
