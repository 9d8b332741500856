"""Why is a weak class weak? Findings from the confusion matrix, train statistics and side evidence.

:func:`diagnose` turns one evaluation (the ``metrics.json`` payload and its confusion matrix) plus
whatever evidence is at hand (train-split class statistics, boundary IoU, per-image rows,
inter-annotator agreement) into the ``findings.json`` document (:data:`FINDINGS_SCHEMA`).

A class is **weak** when its IoU is below its threshold (:class:`DiagnosisConfig`: a default, or
one per taxonomy group). A class with neither ground truth nor prediction is **absent**: its IoU
is undefined and it is never treated as 0. For each weak class every applicable cause is
reported with a ``strength`` in [0, 1] (the ranking key, strongest first):

====================== ========================================================================
cause                  fires when / strength
====================== ========================================================================
confusion              the class loses >= ``confusion_min_share`` of its ground-truth pixels to
                       one other class (the argmax off-diagonal of its confusion row).
                       strength = that share (conf[i, j] / GT_i). Symmetric when the partner
                       loses a comparable share back: min(a, b) / max(a, b) >= ``symmetric_ratio``
                       (a guideline problem); else one-way. A class predicted but without ground
                       truth in the split: the share of its predictions that are one other class.
few_examples           images, instances or pixels of the class in the TRAIN split below
                       ``few_examples_ratio`` x the median class (medians over classes having
                       some). strength = 1 - smallest ratio; 1.0 when never in the training data.
boundary               Acc >= ``boundary_acc_min`` and Acc - IoU >= ``iou_gap`` (strength: the gap
                       Acc - IoU), or boundary IoU < ``boundary_iou_ratio`` x IoU (strength:
                       1 - boundary IoU / IoU); the larger when both fire.
small_objects          median train instance area < ``small_object_area`` px.
                       strength = 1 - median area / ``small_object_area``.
annotator_disagreement inter-annotator IoU of the class below its group target.
                       strength = (target - agreement) / target.
unexplained            weak, but none of the checks that ran found a cause; strength 0. The
                       summary says which checks could not run and suggests training longer or
                       a bigger model: no cause is invented.
====================== ========================================================================

A class of the taxonomy that never occurs in the training split gets a ``few_examples`` cause
with ``evidence.never_in_training = true`` (strength 1), whatever its status.

Example:
    >>> findings = diagnose(payload, confmat, taxonomy_groups={"mug": "rigid"},
    ...                     train_stats=class_statistics(pkg.split("train")))   # doctest: +SKIP
    >>> print(format_findings(findings))                                       # doctest: +SKIP
    >>> write_findings(findings, run_dir / "findings.json")                    # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from segval.io import optional_float, shipped_defaults
from segval.dataset.taxonomy import GROUPS
from segval.io import write_json

__all__ = [
    "CAUSES",
    "DEFAULT_AGREEMENT_TARGETS",
    "FINDINGS_SCHEMA",
    "SCHEMA_VERSION",
    "DiagnosisConfig",
    "diagnose",
    "format_findings",
    "write_findings",
]

SCHEMA_VERSION = 1
#: Cause names, in the order they are checked (ties in strength keep this order).
CAUSES = ("confusion", "few_examples", "boundary", "small_objects", "annotator_disagreement", "unexplained")
#: Inter-annotator IoU targets per taxonomy group (an agreement file's ``targets`` override them).
#: the defaults of DiagnosisConfig: conf/analyze.yaml's diagnosis: block
_DEFAULTS = shipped_defaults("analyze", "diagnosis")
DEFAULT_AGREEMENT_TARGETS: dict[str, float] = dict(_DEFAULTS["agreement_targets"])

FINDINGS_SCHEMA: dict[str, Any] = {
    "schema_version": "int, 1",
    "dataset": "object, the metrics.json 'dataset' (name, version, source, taxonomy ids, class names)",
    "split": "str, the evaluated split (e.g. 'val')",
    "step": "int | null, the global step of the evaluated checkpoint",
    "thresholds": {
        "default": "float, IoU below which a class is weak",
        "by_group": "{group: float} for rigid, deformable, thin, stuff (the default unless overridden)",
    },
    "summary": {
        "mIoU": "float | null, from metrics.json (MMSegmentation nan-mean)",
        "weak_classes": "[name], weak classes, lowest IoU first",
        "absent_classes": "[name], no ground truth and no prediction in the split (IoU undefined, not 0)",
        "never_in_training": "[name], classes with no image, instance or pixel in the training split "
        "([] when no train statistics were given)",
    },
    "inputs": "{train_stats, boundary_iou, per_image, agreement: bool}, which evidence was available",
    "data_targets": "object, class-count targets and 'double the data' recommendations: see "
    "segval.qa.targets.DATA_TARGETS_SCHEMA",
    "config": "object, the DiagnosisConfig used (all fields)",
    "classes": [
        {
            "name": "str",
            "id": "int, category id",
            "index": "int, train index (row / column of the confusion matrix)",
            "group": "str | null, rigid | deformable | thin | stuff (null when unknown)",
            "status": "'weak' (IoU < threshold) | 'ok' | 'absent' (no GT and no prediction)",
            "IoU": "float | null", "Acc": "float | null", "boundary_IoU": "float | null",
            "threshold": "float, the IoU threshold of this class (its group's)",
            "causes": [
                {
                    "cause": "confusion | few_examples | boundary | small_objects | annotator_disagreement "
                    "| unexplained",
                    "strength": "float in [0, 1], the ranking key; causes are sorted by it, largest first",
                    "evidence": "object, the numbers behind the cause (per cause: see the diagnosis module)",
                    "summary": "str, one sentence with the numbers",
                }
            ],
            "worst_images": [
                {
                    "image_id": "int",
                    "score": "float, pixels of this class predicted as another class in the image (higher = worse)",
                    "label_quality": "float | null, cleanlab softmin label quality of the image (lower = worse)",
                    "reason": "str",
                }
            ],
            "actions": "[str], what to do, strongest cause first: relabel ..., collect more ..., "
            "clarify the guideline between A and B, merge A and B, train longer ...",
            "AP": "float | null, the class's COCO mask AP when the task is instance (metrics.json "
            "instance.per_class); null for other tasks, stuff classes and classes without ground truth",
        }
    ],
}


# ---------------------------------------------------------------------------------- config
@dataclass
class DiagnosisConfig:
    """Thresholds of the diagnosis (all fractions in [0, 1] unless stated); the defaults are conf/analyze.yaml's
    ``diagnosis:`` block (one place).

    Attributes:
        threshold: a class is weak when its IoU is below this.
        thresholds_by_group: per-group thresholds overriding ``threshold`` (keys: rigid,
            deformable, thin, stuff).
        few_examples_ratio: few examples when the class has less than this fraction of the
            median class's train images, instances or pixels.
        small_object_area: small objects when the median train instance area (px) is below this.
        boundary_acc_min: the high-Acc/low-IoU boundary rule needs at least this Acc ...
        iou_gap: ... and Acc - IoU at least this.
        boundary_iou_ratio: boundary rule when boundary IoU < this x IoU.
        confusion_min_share: confusion when at least this share of the class's GT pixels go to
            one other class.
        symmetric_ratio: a confusion is symmetric when min(a, b) / max(a, b) of the two classes'
            shares lost to each other is at least this.
        merge_iou: symmetric confusion with both IoUs below this suggests merging the classes.
        worst_k: worst images listed per weak class.
        agreement_targets: inter-annotator IoU target per group (an agreement's ``targets``
            override these; a class without a known group gets the lowest target).
    """

    threshold: float = _DEFAULTS["threshold"]
    thresholds_by_group: dict[str, float] = field(default_factory=lambda: dict(_DEFAULTS["thresholds_by_group"]))
    few_examples_ratio: float = _DEFAULTS["few_examples_ratio"]
    small_object_area: float = float(_DEFAULTS["small_object_area"])
    boundary_acc_min: float = _DEFAULTS["boundary_acc_min"]
    iou_gap: float = _DEFAULTS["iou_gap"]
    boundary_iou_ratio: float = _DEFAULTS["boundary_iou_ratio"]
    confusion_min_share: float = _DEFAULTS["confusion_min_share"]
    symmetric_ratio: float = _DEFAULTS["symmetric_ratio"]
    merge_iou: float = _DEFAULTS["merge_iou"]
    worst_k: int = _DEFAULTS["worst_k"]
    agreement_targets: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_AGREEMENT_TARGETS))

    def __post_init__(self) -> None:
        for name in ("threshold", "few_examples_ratio", "boundary_acc_min", "iou_gap", "boundary_iou_ratio",
                     "confusion_min_share", "symmetric_ratio", "merge_iou"):
            setattr(self, name, _fraction(getattr(self, name), name))
        self.thresholds_by_group = _group_map(self.thresholds_by_group, "thresholds_by_group")
        self.agreement_targets = _group_map(self.agreement_targets, "agreement_targets")
        area = self.small_object_area
        if isinstance(area, bool) or not isinstance(area, (int, float)) or not area > 0:
            raise ValueError(f"small_object_area must be a number of pixels > 0, got {area!r}")
        self.small_object_area = float(area)
        if isinstance(self.worst_k, bool) or not isinstance(self.worst_k, int) or self.worst_k < 0:
            raise ValueError(f"worst_k must be an integer >= 0, got {self.worst_k!r}")

    @classmethod
    def from_mapping(cls, cfg: Mapping[str, Any] | None) -> DiagnosisConfig:
        """Build from a mapping (e.g. a Hydra node); unknown keys are a ValueError naming them."""
        cfg = dict(cfg or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise ValueError(f"unknown diagnosis setting(s) {unknown}; allowed: {sorted(known)}")
        return cls(**cfg)

    def threshold_for(self, group: str | None) -> float:
        """The IoU threshold of a class of ``group`` (the default for an unknown group)."""
        return self.thresholds_by_group.get(group, self.threshold) if group is not None else self.threshold

    def to_dict(self) -> dict[str, Any]:
        """All fields as plain JSON values."""
        return dataclasses.asdict(self)


def _fraction(x: Any, name: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not 0.0 <= float(x) <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1], got {x!r}")
    return float(x)


def _group_map(m: Any, name: str) -> dict[str, float]:
    if m is None:
        return {}
    if not isinstance(m, Mapping):
        raise ValueError(f"{name} must be a mapping {{group: value}}, got {type(m).__name__}")
    out = {}
    for g, v in m.items():
        if g not in GROUPS:
            raise ValueError(f"{name}: group must be one of {list(GROUPS)}, got {g!r}")
        out[str(g)] = _fraction(v, f"{name}[{g!r}]")
    return out


# ---------------------------------------------------------------------------------- helpers


def _pct(x: float) -> str:
    """A share as a percentage: '41%', '3.5%' (one decimal below 10%)."""
    p = 100.0 * x
    return f"{p:.0f}%" if p >= 9.95 or p == 0 else f"{p:.1f}%"


def _count(n: float) -> str:
    return f"{int(round(n)):,}"


def _metric_key(name: str) -> str:
    return name.replace("/", "_")


def _boundary_map(boundary_iou: Any) -> dict[str, float | None]:
    """{name: boundary IoU} from such a dict or from a ``boundary_iou.json`` document."""
    if boundary_iou is None:
        return {}
    if isinstance(boundary_iou, Mapping) and isinstance(boundary_iou.get("per_class"), list):
        return {str(r["name"]): optional_float(r.get("boundary_IoU")) for r in boundary_iou["per_class"]}
    if not isinstance(boundary_iou, Mapping):
        raise ValueError(f"boundary_iou must be a mapping {{class name: IoU}}, got {type(boundary_iou).__name__}")
    return {str(k): optional_float(v) for k, v in boundary_iou.items()}


@dataclass
class _Ctx:
    """What every check needs."""

    names: list[str]
    conf: np.ndarray  # int64[C, C], conf[gt, pred]
    gt: np.ndarray  # int64[C]
    pred: np.ndarray  # int64[C]
    iou: list[float | None]
    acc: list[float | None]
    groups: list[str | None]
    biou: dict[str, float | None]
    train: Mapping[str, Mapping[str, Any]] | None
    medians: dict[str, float | None]
    agreement: Mapping[str, Any] | None
    targets: dict[str, float]
    split: str
    cfg: DiagnosisConfig


def _cause(name: str, strength: float, evidence: dict[str, Any], summary: str) -> dict[str, Any]:
    return {"cause": name, "strength": float(min(1.0, max(0.0, strength))), "evidence": evidence, "summary": summary}


# ---------------------------------------------------------------------------------- causes
def _confusion(ctx: _Ctx, i: int) -> dict[str, Any] | None:
    conf, names, cfg = ctx.conf, ctx.names, ctx.cfg
    a = names[i]
    gt_i = int(ctx.gt[i])
    if gt_i == 0:  # predicted only: every prediction is a false positive
        pred_i = int(ctx.pred[i])
        col = conf[:, i].copy()
        col[i] = 0
        if pred_i == 0 or col.sum() == 0:
            return None
        j = int(np.argmax(col))
        share = int(col[j]) / pred_i
        if share < cfg.confusion_min_share:
            return None
        ev = {"partner": names[j], "partner_index": j, "direction": "false_positive", "pixels": int(col[j]),
              "pred_pixels": pred_i, "share_of_predictions": share, "gt_pixels": 0, "symmetric": False}
        return _cause("confusion", share, ev,
                      f"{a} has no ground truth in the {ctx.split} split but is predicted on {_count(pred_i)} px, "
                      f"{_pct(share)} of them {names[j]}: its IoU of 0 only counts these false positives")
    row = conf[i].copy()
    row[i] = 0
    missed = int(row.sum())
    if missed == 0:
        return None
    j = int(np.argmax(row))  # ties: the lowest index
    lost = int(row[j]) / gt_i
    if lost < cfg.confusion_min_share:
        return None
    gt_j = int(ctx.gt[j])
    back = int(conf[j, i]) / gt_j if gt_j else 0.0
    symmetric = min(lost, back) / max(lost, back) >= cfg.symmetric_ratio
    b = names[j]
    ev = {"partner": b, "partner_index": j, "direction": "missed", "pixels": int(row[j]), "gt_pixels": gt_i,
          "share_of_gt": lost, "share_of_missed": int(row[j]) / missed, "partner_pixels_to_class": int(conf[j, i]),
          "partner_share_to_class": back, "symmetric": bool(symmetric), "partner_IoU": ctx.iou[j]}
    if symmetric:
        text = (f"{a} loses {_pct(lost)} of its pixels to {b}; {b} loses {_pct(back)} to {a}: "
                "symmetric, likely a guideline problem")
    else:
        text = (f"{a} loses {_pct(lost)} of its pixels to {b} ({_pct(int(row[j]) / missed)} of all it misses); "
                f"{b} loses only {_pct(back)} to {a}: one-way")
    return _cause("confusion", lost, ev, text)


def _train_value(ctx: _Ctx, name: str, measure: str) -> float | None:
    st = (ctx.train or {}).get(name)
    return None if st is None else optional_float(st.get(measure))


def _medians(train: Mapping[str, Mapping[str, Any]] | None) -> dict[str, float | None]:
    """Median of images / instances / pixels over the classes that have some."""
    out: dict[str, float | None] = {}
    for m in ("images", "instances", "pixels"):
        vals = [v for st in (train or {}).values() if (v := optional_float(st.get(m))) is not None and v > 0]
        out[m] = float(np.median(vals)) if vals else None
    return out


def _never_in_training(ctx: _Ctx, name: str) -> bool:
    if ctx.train is None or name not in ctx.train:
        return False
    return all((_train_value(ctx, name, m) or 0) == 0 for m in ("images", "instances", "pixels"))


def _few_examples(ctx: _Ctx, i: int) -> dict[str, Any] | None:
    name = ctx.names[i]
    if ctx.train is None or name not in ctx.train:
        return None
    if _never_in_training(ctx, name):
        med = ctx.medians["images"]
        ev = {"never_in_training": True, "images": 0, "instances": 0, "pixels": 0, "ratio": 0.0,
              "limiting": "images", "median_images": med, "more_images": int(math.ceil(med)) if med else None}
        return _cause("few_examples", 1.0, ev, f"{name} is never in the training data (0 images, 0 instances, 0 pixels)")
    ev: dict[str, Any] = {"never_in_training": False}
    ratios = {}
    for m in ("images", "instances", "pixels"):
        v, med = _train_value(ctx, name, m), ctx.medians[m]
        if v is None or not med:
            continue
        # a class with pixels but no instances is painted without annotations (background, label-map
        # stuff): its instance count says nothing
        if m == "instances" and v == 0 and (_train_value(ctx, name, "pixels") or 0) > 0:
            continue
        ratios[m] = v / med
        ev[m] = {"value": int(v), "median": med, "ratio": v / med}
    if not ratios:
        return None
    limiting = min(ratios, key=ratios.get)
    ratio = ratios[limiting]
    if ratio >= ctx.cfg.few_examples_ratio:
        return None
    med_img, img = ctx.medians["images"], _train_value(ctx, name, "images") or 0
    more = int(math.ceil(med_img - img)) if med_img and med_img > img else 0
    ev.update(limiting=limiting, ratio=ratio, more_images=more)
    parts = [f"{_count(ev[m]['value'])} {m} ({_pct(ev[m]['ratio'])} of the median class's {_count(ev[m]['median'])})"
             for m in ratios if ratios[m] < ctx.cfg.few_examples_ratio]
    return _cause("few_examples", 1.0 - ratio, ev, f"{name} is rare in the training split: " + ", ".join(parts))


def _boundary(ctx: _Ctx, i: int) -> dict[str, Any] | None:
    name, cfg = ctx.names[i], ctx.cfg
    iou, acc, biou = ctx.iou[i], ctx.acc[i], ctx.biou.get(name)
    if iou is None:
        return None
    strengths, texts, rules = [], [], []
    ev: dict[str, Any] = {"IoU": iou, "Acc": acc, "boundary_IoU": biou}
    if acc is not None and acc >= cfg.boundary_acc_min and acc - iou >= cfg.iou_gap:
        pred_i = int(ctx.pred[i])
        col = ctx.conf[:, i].copy()
        col[i] = 0
        fp = int(col.sum())
        ev["acc_iou_gap"] = acc - iou
        ev["false_positive_share"] = fp / pred_i if pred_i else 0.0
        text = f"{name} is found (Acc {_pct(acc)}) but its IoU is only {_pct(iou)}"
        if fp:
            j = int(np.argmax(col))
            ev["false_positives_mostly"] = ctx.names[j]
            ev["false_positives_mostly_share"] = int(col[j]) / fp
            text += (f": {_pct(fp / pred_i)} of what is predicted as {name} is something else "
                     f"(mostly {ctx.names[j]}, {_pct(int(col[j]) / fp)}), so its outlines are too loose")
        strengths.append(acc - iou)
        texts.append(text)
        rules.append("high_acc_low_iou")
    if biou is not None and iou > 0 and biou < cfg.boundary_iou_ratio * iou:
        ev["boundary_ratio"] = biou / iou
        strengths.append(1.0 - biou / iou)
        whose = "its" if texts else f"{name}'s"
        texts.append(f"{whose} boundary IoU {_pct(biou)} is {biou / iou:.2f}x its IoU ({_pct(iou)}): "
                     "the outlines are wrong while the interiors are right")
        rules.append("low_boundary_iou")
    if not rules:
        return None
    ev["rules"] = rules
    return _cause("boundary", max(strengths), ev, "; ".join(texts))


def _small_objects(ctx: _Ctx, i: int) -> dict[str, Any] | None:
    name, limit = ctx.names[i], ctx.cfg.small_object_area
    area = _train_value(ctx, name, "median_instance_area")
    if area is None or area >= limit:
        return None
    med_img, img = ctx.medians["images"], _train_value(ctx, name, "images") or 0
    more = int(math.ceil(med_img - img)) if med_img and med_img > img else 0
    ev = {"median_instance_area": area, "small_object_area": limit, "more_images": more}
    side = math.sqrt(limit)
    side_txt = f" = {side:.0f}x{side:.0f}" if side.is_integer() else ""
    return _cause("small_objects", 1.0 - area / limit, ev,
                  f"{name}'s median training instance covers {_count(area)} px (< {_count(limit)} px{side_txt}): "
                  "small objects")


def _disagreement(ctx: _Ctx, i: int) -> dict[str, Any] | None:
    if ctx.agreement is None:
        return None
    name, group = ctx.names[i], ctx.groups[i]
    agree = optional_float((ctx.agreement.get("per_class") or {}).get(name))
    if agree is None:
        return None
    target = ctx.targets.get(group) if group is not None else None
    target_from = group
    if target is None:
        target, target_from = min(ctx.targets.values()), "lowest"
    if agree >= target or target <= 0:
        return None
    ev = {"agreement_IoU": agree, "target": target, "group": group, "target_from": target_from}
    which = f"{group} classes" if target_from == group else "any group, the class has none"
    return _cause("annotator_disagreement", (target - agree) / target, ev,
                  f"annotators agree on {name} with only {_pct(agree)} IoU (target {_pct(target)} for {which}): "
                  "the labels themselves are inconsistent")


def _unexplained(ctx: _Ctx, i: int, inputs: Mapping[str, bool]) -> dict[str, Any]:
    name = ctx.names[i]
    checked = ["confusion"]
    not_checked = {}
    if inputs["train_stats"]:
        checked += ["few_examples", "small_objects"]
    else:
        not_checked["few_examples"] = not_checked["small_objects"] = "no train statistics"
    checked.append("boundary")
    if not inputs["boundary_iou"]:
        not_checked["boundary (boundary IoU rule)"] = "no boundary IoU"
    if inputs["agreement"]:
        checked.append("annotator_disagreement")
    else:
        not_checked["annotator_disagreement"] = "no agreement result"
    ev = {"IoU": ctx.iou[i], "checked": checked, "not_checked": not_checked}
    missing = ""
    if not_checked:
        missing = " (not checked: " + ", ".join(f"{k}: {v}" for k, v in not_checked.items()) + ")"
    return _cause("unexplained", 0.0, ev,
                  f"no cause found for {name} by the checks that ran{missing}; the model may be under-trained "
                  "for it: train longer or use a bigger model")


# ---------------------------------------------------------------------------------- worst images
def _worst_images(rows: Sequence[Mapping[str, Any]], name: str, k: int) -> list[dict[str, Any]] | None:
    """Rank per-image rows by disagree_<name> (desc), then label_quality (asc), then image id."""
    if not rows or k == 0:
        return [] if rows is not None else None
    key = f"disagree_{name}"
    if key not in rows[0]:
        key = f"disagree_{_metric_key(name)}"
        if key not in rows[0]:
            return []
    ranked = []
    for r in rows:
        d = optional_float(r.get(key))
        if d is None or d <= 0:
            continue
        lq = optional_float(r.get("label_quality"))
        ranked.append((-d, lq if lq is not None else math.inf, int(float(r["image_id"])), d, lq, r))
    ranked.sort(key=lambda t: t[:3])
    out = []
    for _, _, image_id, d, lq, r in ranked[:k]:
        reason = f"{_count(d)} px of {name} predicted as another class"
        tg, tp = str(r.get("top_confused_gt") or ""), str(r.get("top_confused_pred") or "")
        tn = optional_float(r.get("top_confused_pixels"))
        if name in (tg, tp) and tn:
            reason += f"; the image's top confusion is {tg} -> {tp} ({_count(tn)} px)"
        if lq is not None:
            reason += f"; label quality {lq:.3f}"
        out.append({"image_id": image_id, "score": d, "label_quality": lq, "reason": reason})
    return out


# ---------------------------------------------------------------------------------- actions
def _actions(ctx: _Ctx, i: int, causes: list[dict[str, Any]], worst: list[dict[str, Any]] | None) -> list[str]:
    name, cfg = ctx.names[i], ctx.cfg
    if worst:
        ids = ", ".join(str(w["image_id"]) for w in worst[:5]) + (", ..." if len(worst) > 5 else "")
        relabel_target = f"the {len(worst)} worst images of {name} (ids {ids})"
    else:
        relabel_target = (f"the images where {name} is most often missed (per_image.csv, sorted by "
                          f"disagree_{_metric_key(name)})")
    out: list[str] = []
    checks: list[str] = []  # what to look at when relabelling: one relabel action for all causes

    def relabel(check: str) -> None:
        if not checks:
            out.append("\0relabel")  # placeholder: the relabel action sits where its strongest cause is
        checks.append(check)

    for c in causes:
        ev, kind = c["evidence"], c["cause"]
        if kind == "confusion":
            b = ev["partner"]
            if ev["direction"] == "false_positive":
                out.append(f"add images of {name} to the {ctx.split} split (it has none there)")
                out.append(f"check the images where {b} is predicted as {name}")
            elif ev["symmetric"]:
                out.append(f"clarify the guideline between {name} and {b}")
                iou_a, iou_b = ctx.iou[i], ev["partner_IoU"]
                if iou_a is not None and iou_b is not None and max(iou_a, iou_b) < cfg.merge_iou:
                    out.append(f"merge {name} and {b} (both IoU below {_pct(cfg.merge_iou)} and confused both ways)")
                relabel(f"{name} vs {b}")
            else:
                relabel(f"whether {name} is labelled where the model sees {b}")
        elif kind == "few_examples":
            if ev.get("never_in_training"):
                more = f": aim for {ev['more_images']} images" if ev.get("more_images") else ""
                out.append(f"collect images of {name} for the training split (it has none){more}")
            elif ev.get("more_images"):
                out.append(f"collect more training images of {name}: aim for {ev['more_images']} more images "
                           f"(the median class has {_count(ctx.medians['images'] or 0)})")
            else:
                out.append(f"collect more training examples of {name}: it has {_pct(ev['ratio'])} of the median "
                           f"class's {ev['limiting']}")
        elif kind == "small_objects":
            few = any(x["cause"] == "few_examples" for x in causes)
            more = f"; aim for {ev['more_images']} more images" if ev.get("more_images") and not few else ""
            out.append(f"collect more images of {name} where it is larger (closer views), or train at a higher "
                       f"input resolution{more}")
        elif kind == "boundary":
            relabel(f"the outlines of {name}")
        elif kind == "annotator_disagreement":
            out.append(f"clarify the guideline for {name} (annotators disagree)")
            relabel(f"the labels of {name} against the guideline")
        elif kind == "unexplained":
            out.append(f"train longer or use a bigger model (no data problem found for {name}); if it stays weak, "
                       f"look at {relabel_target}")
    out = [f"relabel {relabel_target}: check " + "; ".join(checks) if a == "\0relabel" else a for a in out]
    seen: set[str] = set()
    return [a for a in out if not (a in seen or seen.add(a))]


# ---------------------------------------------------------------------------------- diagnose
def _data_targets(classes: Sequence[Mapping[str, Any]], train_stats: Any, dataset: Any) -> dict[str, Any]:
    from segval.qa.targets import data_targets  # the rules live there (stream T)

    return data_targets(classes, train_stats, dataset)


def diagnose(
    metrics: Mapping[str, Any],
    confmat: Any,
    *,
    taxonomy_groups: Mapping[str, str] | None = None,
    train_stats: Mapping[str, Mapping[str, Any]] | None = None,
    boundary_iou: Mapping[str, Any] | None = None,
    per_image: Sequence[Mapping[str, Any]] | None = None,
    agreement: Mapping[str, Any] | None = None,
    config: DiagnosisConfig | None = None,
) -> dict[str, Any]:
    """The ``findings.json`` document of one evaluation (see :data:`FINDINGS_SCHEMA`).

    Args:
        metrics: the ``metrics.json`` payload (:func:`segval.metrics.results.metrics_payload`).
        confmat: int[C, C] ``conf[gt, pred]`` of the same evaluation (numpy or tensor).
        taxonomy_groups: {class name: rigid | deformable | thin | stuff}; picks the threshold
            and the agreement target of each class.
        train_stats: :func:`segval.analysis.class_stats.class_statistics` of the TRAIN split;
            enables ``few_examples``, ``small_objects`` and "never in training data".
        boundary_iou: {class name: boundary IoU or None}, or the ``boundary_iou.json`` document.
        per_image: rows of ``per_image.csv`` (strings or numbers; :func:`segval.metrics.per_image_csv.read_per_image_csv`);
            enables ``worst_images``.
        agreement: ``{"per_class": {name: inter-annotator IoU}, "targets": {group: IoU}}``
            (targets optional); enables ``annotator_disagreement``.
        config: thresholds (default :class:`DiagnosisConfig`).

    Returns:
        The findings document: JSON-ready (no NaN; undefined figures are None).

    Raises:
        ValueError: ``confmat`` is not C x C for the C classes of ``metrics``, or a bad argument.
    """
    cfg = config if config is not None else DiagnosisConfig()
    if not isinstance(cfg, DiagnosisConfig):
        raise ValueError(f"config must be a DiagnosisConfig, got {type(cfg).__name__}")
    per_class = list(metrics.get("per_class") or [])
    if not per_class:
        raise ValueError("metrics must be a metrics.json payload with a non-empty 'per_class' list")
    C = len(per_class)
    conf = np.asarray(confmat.cpu() if hasattr(confmat, "cpu") else confmat)
    if conf.shape != (C, C):
        raise ValueError(f"confmat must be int[{C}, {C}] (conf[gt, pred]) for the {C} classes of metrics, "
                         f"got shape {list(conf.shape)}")
    conf = conf.astype(np.int64)
    per_class = sorted(per_class, key=lambda r: int(r["index"]))
    names = [str(r["name"]) for r in per_class]
    groups = [None if taxonomy_groups is None else taxonomy_groups.get(n) for n in names]
    targets = dict(cfg.agreement_targets)
    if agreement is not None:
        if not isinstance(agreement, Mapping) or not isinstance(agreement.get("per_class", {}), Mapping):
            raise ValueError('agreement must be {"per_class": {name: IoU}, "targets": {group: IoU}} (targets optional)')
        targets.update({str(g): float(v) for g, v in (agreement.get("targets") or {}).items()})
    split = str(metrics.get("split") or "evaluated")
    ctx = _Ctx(
        names=names, conf=conf, gt=conf.sum(axis=1), pred=conf.sum(axis=0),
        iou=[optional_float(r.get("IoU")) for r in per_class], acc=[optional_float(r.get("Acc")) for r in per_class],
        groups=groups, biou=_boundary_map(boundary_iou), train=train_stats, medians=_medians(train_stats),
        agreement=agreement, targets=targets, split=split, cfg=cfg,
    )
    inputs = {"train_stats": train_stats is not None, "boundary_iou": boundary_iou is not None,
              "per_image": per_image is not None, "agreement": agreement is not None}
    rows = list(per_image) if per_image is not None else None

    classes = []
    for i, r in enumerate(per_class):
        name, iou = names[i], ctx.iou[i]
        thr = cfg.threshold_for(groups[i])
        absent = r.get("status") == "absent" or iou is None
        status = "absent" if absent else ("weak" if iou < thr else "ok")
        causes: list[dict[str, Any]] = []
        if status == "weak":
            for check in (_confusion, _few_examples, _boundary, _small_objects, _disagreement):
                c = check(ctx, i)
                if c is not None:
                    causes.append(c)
            if not causes:
                causes.append(_unexplained(ctx, i, inputs))
        elif _never_in_training(ctx, name):
            causes.append(_few_examples(ctx, i))  # type: ignore[arg-type]
        causes.sort(key=lambda c: -c["strength"])  # stable: ties keep the CAUSES order
        worst = _worst_images(rows, name, cfg.worst_k) if status == "weak" else None
        classes.append({
            "name": name,
            "id": int(r.get("id", i)),
            "index": int(r["index"]),
            "group": groups[i],
            "status": status,
            "IoU": iou,
            "Acc": ctx.acc[i],
            "boundary_IoU": ctx.biou.get(name),
            "threshold": thr,
            "causes": causes,
            "worst_images": worst or [],
            "actions": _actions(ctx, i, causes, worst) if causes else [],
            # instance task: the class's COCO mask AP (IoU .50:.95) from metrics.json; else null
            "AP": optional_float((metrics["instance"].get("per_class") or {}).get(name))
            if metrics.get("task") == "instance" and isinstance(metrics.get("instance"), Mapping) else None,
        })

    weak = sorted((c for c in classes if c["status"] == "weak"), key=lambda c: (c["IoU"], c["index"]))
    return {
        "schema_version": SCHEMA_VERSION,
        "dataset": dict(metrics.get("dataset") or {}),
        "split": metrics.get("split"),
        "step": metrics.get("step"),
        "thresholds": {"default": cfg.threshold, "by_group": {g: cfg.threshold_for(g) for g in GROUPS}},
        "summary": {
            "mIoU": optional_float((metrics.get("summary") or {}).get("mIoU")),
            "weak_classes": [c["name"] for c in weak],
            "absent_classes": [c["name"] for c in classes if c["status"] == "absent"],
            "never_in_training": [n for n in names if _never_in_training(ctx, n)],
        },
        "inputs": inputs,
        "config": cfg.to_dict(),
        "classes": classes,
        # instance targets and "double the data" (segval.qa.targets.DATA_TARGETS_SCHEMA)
        "data_targets": _data_targets(classes, train_stats, metrics.get("dataset")),
    }


# ---------------------------------------------------------------------------------- output
def _short(c: Mapping[str, Any]) -> str:
    """A few words for the console: the cause and its key number."""
    ev, kind = c["evidence"], c["cause"]
    if kind == "confusion":
        if ev["direction"] == "false_positive":
            return f"confusion: no ground truth here; {_pct(ev['share_of_predictions'])} of its predictions are {ev['partner']}"
        return (f"confusion: {_pct(ev['share_of_gt'])} of its pixels go to {ev['partner']} "
                f"({'symmetric' if ev['symmetric'] else 'one-way'})")
    if kind == "few_examples":
        if ev.get("never_in_training"):
            return "few examples: never in the training data"
        m = ev["limiting"]
        return f"few examples: {_count(ev[m]['value'])} train {m} ({_pct(ev[m]['ratio'])} of the median class)"
    if kind == "boundary":
        if "high_acc_low_iou" in ev["rules"]:
            return f"boundary: Acc {_pct(ev['Acc'])} but IoU {_pct(ev['IoU'])} (loose outlines)"
        return f"boundary: boundary IoU {_pct(ev['boundary_IoU'])} = {ev['boundary_ratio']:.2f}x IoU"
    if kind == "small_objects":
        return f"small objects: median instance {_count(ev['median_instance_area'])} px < {_count(ev['small_object_area'])} px"
    if kind == "annotator_disagreement":
        return f"annotator disagreement: agreement IoU {_pct(ev['agreement_IoU'])} < target {_pct(ev['target'])}"
    return "unexplained: no data cause found (train longer / bigger model?)"


def format_findings(findings: Mapping[str, Any]) -> str:
    """The console summary: one line per weak class with its top cause and first action."""
    s = findings["summary"]
    classes = {c["name"]: c for c in findings["classes"]}
    miou = "-" if s.get("mIoU") is None else f"{100 * s['mIoU']:.1f}%"
    step = "" if findings.get("step") is None else f", step {findings['step']}"
    weak = s["weak_classes"]
    lines = [f"findings ({findings.get('split') or '?'}{step}): mIoU {miou}; {len(weak)} of {len(classes)} classes weak"
             + (f", {len(s['absent_classes'])} absent" if s["absent_classes"] else "")]
    width = max([10] + [len(n) for n in weak])
    for n in weak:
        c = classes[n]
        top = _short(c["causes"][0]) if c["causes"] else "-"
        more = f"  (+{len(c['causes']) - 1} more)" if len(c["causes"]) > 1 else ""
        lines.append(f"  {n:<{width}}  IoU {100 * c['IoU']:4.1f}% < {100 * c['threshold']:.0f}%  {top}{more}")
        if c["actions"]:
            lines.append(f"  {'':<{width}}  -> {c['actions'][0]}")
    if not weak:
        lines.append("  no weak class")
    if s["absent_classes"]:
        lines.append("  absent (no ground truth, no prediction; not counted as 0): " + ", ".join(s["absent_classes"]))
    if s.get("never_in_training"):
        lines.append("  never in the training data: " + ", ".join(s["never_in_training"]))
    return "\n".join(lines)


def write_findings(findings: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Write ``findings.json`` atomically (returns the path).

    Raises:
        ValueError: not a findings document of schema version 1.
    """
    if not isinstance(findings, Mapping) or findings.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"findings must be a diagnose() document with schema_version {SCHEMA_VERSION}")
    return write_json(path, dict(findings))


def run_summary(payload: Mapping[str, Any], confmat: Any, run_dir: str | os.PathLike,
                taxonomy_groups: Mapping[str, str] | None = None) -> str:
    """The weak-class lines printed at the end of ``segval train`` / ``segval eval``.

    Uses what the run wrote (``boundary_iou.json``, ``per_image.csv`` when present) but no train-split
    statistics; ``segval analyze run_dir=...`` adds those, writes findings.json and the report.
    """
    from segval.metrics.per_image_csv import read_per_image_csv

    run_dir = Path(run_dir)
    boundary = run_dir / "boundary_iou.json"
    per_image = run_dir / "per_image.csv"
    findings = diagnose(
        payload,
        confmat,
        taxonomy_groups=taxonomy_groups,
        boundary_iou=json.loads(boundary.read_text()) if boundary.exists() else None,
        per_image=read_per_image_csv(per_image) if per_image.exists() else None,
    )
    return format_findings(findings) + f"\n(full diagnosis and report: segval analyze run_dir={run_dir})"
