"""Class-count targets and "double the data" recommendations.

Rules (the seed's figures; every number is configurable):

* **Instance target.** A class needs at least ``base`` (500) instances x its *factor*. The factor
  is its group's (``rigid`` 1, ``stuff`` 1, ``deformable`` 3, ``thin`` 3) and, for a class marked
  ``transparent: true`` in dataset.yaml's taxonomy, at least ``transparent`` (5): the largest
  applicable factor counts. Target = ceil(base x factor). The background class is left out.
  Instances are non-crowd annotations (``segval qa``: of the checked splits pooled; the findings:
  of the train split). The QA rule ``class_count`` trips when instances < target (so 499 of 500
  trips, 500 does not).
* **Double the data.** A class whose IoU on the evaluated split is below ``iou_threshold`` (0.60)
  gets the recommendation to double its training data: ``images_needed`` = the train images that
  hold it now (doubling), or, for a class never in the train split, the median train images of the
  other classes. Where the instance target is not met either, ``images_for_target`` estimates the
  images needed to reach it at the class's current instances per image.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from segval.report.markdown_safe import md_escape
from segval.errors import ConfigError

BASE_INSTANCES = 500
DEFAULT_FACTORS: dict[str, float] = {"rigid": 1.0, "stuff": 1.0, "deformable": 3.0, "thin": 3.0, "transparent": 5.0}
IOU_THRESHOLD = 0.60
DEFINITION = ("instance target = ceil(base x factor), factor = max(group factor, transparent factor if the class is "
              "transparent); trips when instances < target; double the data when IoU < iou_threshold "
              "(images_needed = current train images of the class)")

DATA_TARGETS_SCHEMA: dict[str, Any] = {
    "definition": "str", "base": "int", "factors": "{group | transparent: float}", "iou_threshold": "float",
    "classes": [{
        "name": "str", "group": "str | null", "transparent": "bool", "factor": "float",
        "instances": "int | null (train split; null without train statistics)", "target": "int",
        "short_by": "int | null, target - instances when below", "IoU": "float | null",
        "double_data": "bool, IoU < iou_threshold", "images": "int | null, train images holding the class",
        "images_needed": "int | null, images to add to double the data",
        "images_for_target": "int | null, images to add to reach the instance target at the current "
                             "instances per image",
    }],
    "recommendations": "[str], one sentence per class below a target",
}


def check_factors(factors: Mapping[str, Any] | None) -> dict[str, float]:
    """The default factors updated by ``factors`` (ConfigError on an unknown key or a factor <= 0)."""
    out = dict(DEFAULT_FACTORS)
    for k, v in (factors or {}).items():
        if k not in DEFAULT_FACTORS:
            raise ConfigError(f"count factor {k!r} is not one of {list(DEFAULT_FACTORS)}")
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
            raise ConfigError(f"count factor {k} must be a number > 0, got {v!r}")
        out[k] = float(v)
    return out


def class_factor(group: str | None, transparent: bool, factors: Mapping[str, float]) -> float:
    """The factor of a class (see the module doc)."""
    f = float(factors.get(group or "rigid", 1.0))
    return max(f, float(factors["transparent"])) if transparent else f


def target_of(group: str | None, transparent: bool, *, base: int = BASE_INSTANCES,
              factors: Mapping[str, float] = DEFAULT_FACTORS) -> int:
    """Instance target of a class: ``ceil(base x factor)`` (``target_of("thin", False) == 1500``)."""
    return int(math.ceil(base * class_factor(group, transparent, factors) - 1e-9))


def count_targets(instances: Mapping[int, int], taxonomy: Any, *, base: int = BASE_INSTANCES,
                  factors: Mapping[str, float] | None = None) -> list[dict[str, Any]]:
    """One row per non-background class: ``{name, id, group, transparent, factor, instances, target,
    short_by, met}`` from ``instances`` (category id -> instance count)."""
    if isinstance(base, bool) or not isinstance(base, int) or base < 1:
        raise ConfigError(f"the instance target base must be an integer >= 1, got {base!r}")
    factors = check_factors(factors)
    rows = []
    for c in taxonomy:
        if c.id == taxonomy.background_id:
            continue
        n = int(instances.get(c.id, 0))
        t = target_of(c.group, c.transparent, base=base, factors=factors)
        rows.append({"name": c.name, "id": c.id, "group": c.group, "transparent": c.transparent,
                     "factor": class_factor(c.group, c.transparent, factors), "instances": n, "target": t,
                     "short_by": max(0, t - n), "met": n >= t})
    return rows


def transparent_classes(dataset: Mapping[str, Any] | None) -> set[str]:
    """Names of classes marked ``transparent: true`` in the dataset.yaml of ``dataset["source"]`` (a
    metrics.json ``dataset`` block); empty when that package cannot be read."""
    src = (dataset or {}).get("source")
    if not src:
        return set()
    meta = Path(str(src)) / "dataset.yaml"
    try:
        data = yaml.safe_load(meta.read_text(encoding="utf-8")) if meta.is_file() else None
    except (OSError, yaml.YAMLError):
        return set()
    tax = (data or {}).get("taxonomy") if isinstance(data, Mapping) else None
    return {str(e["name"]) for e in tax or [] if isinstance(e, Mapping) and e.get("transparent") is True and "name" in e}


def data_targets(classes: Sequence[Mapping[str, Any]], train_stats: Mapping[str, Mapping[str, Any]] | None,
                 dataset: Mapping[str, Any] | None = None, *, transparent: set[str] | None = None,
                 base: int = BASE_INSTANCES, factors: Mapping[str, float] | None = None,
                 iou_threshold: float = IOU_THRESHOLD, background: str | None = None) -> dict[str, Any]:
    """The findings' ``data_targets`` block (:data:`DATA_TARGETS_SCHEMA`) from the diagnosed ``classes``
    (``name, group, IoU, status``) and the train-split statistics (``images, instances`` per class)."""
    factors = check_factors(factors)
    transparent = transparent_classes(dataset) if transparent is None else set(transparent)
    stats = train_stats or {}
    med_vals = sorted(float(s["images"]) for s in stats.values() if (s.get("images") or 0) > 0)
    median_images = med_vals[len(med_vals) // 2] if len(med_vals) % 2 else (
        (med_vals[len(med_vals) // 2 - 1] + med_vals[len(med_vals) // 2]) / 2 if med_vals else None)
    rows, recs = [], []
    for c in classes:
        name = str(c["name"])
        if name == background:
            continue
        st = stats.get(name)
        images = None if st is None else int(st.get("images") or 0)
        inst = None if st is None else int(st.get("instances") or 0)
        if inst == 0 and (st or {}).get("pixels"):
            inst = None  # painted without annotations (background, label-map stuff): no instance count
        t = target_of(c.get("group"), name in transparent, base=base, factors=factors)
        iou = c.get("IoU")
        double = iou is not None and c.get("status") != "absent" and float(iou) < iou_threshold
        needed = None
        if double and images is not None:
            needed = images if images > 0 else (int(math.ceil(median_images)) if median_images else None)
        for_target = None
        if inst is not None and inst < t and images:
            per_image = inst / images if inst else None
            for_target = int(math.ceil((t - inst) / per_image)) if per_image else None
        row = {"name": name, "group": c.get("group"), "transparent": name in transparent,
               "factor": class_factor(c.get("group"), name in transparent, factors), "instances": inst, "target": t,
               "short_by": None if inst is None else max(0, t - inst), "IoU": iou, "double_data": double,
               "images": images, "images_needed": needed, "images_for_target": for_target}
        rows.append(row)
        if double:
            more = f" (about {needed} more images)" if needed is not None else ""
            recs.append(f"{name}: IoU {100 * float(iou):.1f}% < {100 * iou_threshold:.0f}%: double its training "
                        f"data{more}")
        if inst is not None and inst < t:
            more = f", about {for_target} more images at its current instances per image" if for_target else ""
            recs.append(f"{name}: {inst} train instances < target {t} ({base} x {row['factor']:g}, "
                        f"{'transparent' if name in transparent else c.get('group')}){more}")
    return {"definition": DEFINITION, "base": base, "factors": factors, "iou_threshold": iou_threshold,
            "classes": rows, "recommendations": recs}


def format_count_targets(rows: Sequence[Mapping[str, Any]]) -> str:
    """The qa.md table of :func:`count_targets`."""
    lines = ["| class | group | transparent | instances | target | short by |", "|---|---|---|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {md_escape(r['name'])} | {md_escape(r['group'])} | {'yes' if r['transparent'] else ''} | {r['instances']} | "
                     f"{r['target']} | {r['short_by'] or ''} |")
    return "\n".join(lines)
