"""Inter-annotator agreement: per-class IoU between two or more annotation sets of the same images.

Definition (pure numpy, no I/O):

* Each annotation set gives one semantic target per image (uint8[H, W] train indices, 255 =
  ignore). Pixels ignored in either set of a pair are left out of that pair.
* For a pair of sets (a, b) and a class c, intersection and union are **summed over all images**:
  ``IoU_ab(c) = sum_img |a=c and b=c| / sum_img |a=c or b=c|`` (undefined when the union is 0).
* With more than two sets the class IoU is the **mean over all pairs** (a < b) whose union is
  non-zero; ``pairs`` in the result keeps each pair's value.
* A group's IoU (rigid, deformable, thin, stuff) is the mean of the defined class IoUs of its
  classes. A class is **flagged** when its IoU is below the target of its group.
* Per image: the same IoU computed on that image alone (mean over pairs), per class present in
  either set of a pair. An image is flagged when a class with at least ``min_pixels`` union
  pixels in it is below its group's target; ``worst_class`` names the lowest one.

The result dict has the shape :func:`segval.analysis.diagnosis.diagnose` reads as ``agreement``:
``{"per_class": {name: IoU | None}, "targets": {group: IoU}, ...}`` plus extra keys.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from segval.errors import DatasetError
from segval.io import shipped_defaults

#: Inter-annotator IoU targets per taxonomy group (the seed's: rigid 85 %, deformable 75 %, thin 70 %), from
#: conf/agreement.yaml's targets: block
DEFAULT_TARGETS: dict[str, float] = dict(shipped_defaults("agreement", "targets"))
IGNORE = 255
DEFINITION = (
    "per pair of annotation sets, per class: IoU = sum over images of intersection / sum over images of "
    "union (pixels ignored in either set left out); for more than two sets the mean over pairs with a "
    "non-zero union; group IoU = mean of its classes' IoUs; flagged = IoU below the group's target"
)


def pair_counts(a: np.ndarray, b: np.ndarray, num_classes: int, ignore: int = IGNORE) -> tuple[np.ndarray, np.ndarray]:
    """Per-class intersection and union pixel counts of two semantic targets of one image.

    Args:
        a, b: uint8[H, W] train indices (``ignore`` = unlabelled), same shape.
        num_classes: number of train indices.

    Returns:
        ``(intersection, union)``, int64[num_classes] each.
    """
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"targets differ in shape: {a.shape} vs {b.shape}")
    valid = (a != ignore) & (b != ignore) & (a < num_classes) & (b < num_classes)
    av = a[valid].astype(np.int64)
    bv = b[valid].astype(np.int64)
    area_a = np.bincount(av, minlength=num_classes)[:num_classes]
    area_b = np.bincount(bv, minlength=num_classes)[:num_classes]
    inter = np.bincount(av[av == bv], minlength=num_classes)[:num_classes]
    return inter, area_a + area_b - inter


def _iou(inter: np.ndarray, union: np.ndarray) -> np.ndarray:
    out = np.full(inter.shape, np.nan)
    ok = union > 0
    out[ok] = inter[ok] / union[ok]
    return out


def _nanmean_rows(x: np.ndarray) -> np.ndarray:
    """Mean over axis 0 ignoring NaN; NaN where a column is all NaN (no warning)."""
    n = np.sum(~np.isnan(x), axis=0)
    s = np.nansum(x, axis=0)
    out = np.full(x.shape[1:], np.nan)
    out[n > 0] = s[n > 0] / n[n > 0]
    return out


def _opt(x: float) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


class AgreementAccumulator:
    """Accumulates pairwise intersection / union counts image by image.

    Args:
        class_names: names by train index.
        groups: group by train index (rigid | deformable | thin | stuff).
        num_sets: number of annotation sets (>= 2).
        set_names: a label per set (named in the result's ``pairs``).
        targets: IoU target per group (defaults: :data:`DEFAULT_TARGETS`).
        min_pixels: an image's class counts for flagging only with at least this many union pixels.
        ignore: the ignore index.
    """

    def __init__(
        self,
        class_names: Sequence[str],
        groups: Sequence[str | None],
        num_sets: int,
        *,
        set_names: Sequence[str] | None = None,
        targets: Mapping[str, float] | None = None,
        min_pixels: int = 1,
        ignore: int = IGNORE,
    ) -> None:
        if num_sets < 2:
            raise ValueError(f"agreement needs at least two annotation sets, got {num_sets}")
        if len(groups) != len(class_names):
            raise ValueError("groups and class_names differ in length")
        self.class_names = [str(n) for n in class_names]
        self.groups = list(groups)
        self.num_sets = int(num_sets)
        self.set_names = [str(s) for s in (set_names or [f"set{i}" for i in range(num_sets)])]
        if len(self.set_names) != num_sets:
            raise ValueError("set_names must have one name per set")
        self.targets = dict(DEFAULT_TARGETS)
        self.targets.update({str(g): float(v) for g, v in (targets or {}).items()})
        self.min_pixels = int(min_pixels)
        self.ignore = ignore
        self.pairs = list(itertools.combinations(range(num_sets), 2))
        k = len(self.class_names)
        self.inter = np.zeros((len(self.pairs), k), dtype=np.int64)
        self.union = np.zeros((len(self.pairs), k), dtype=np.int64)
        self.images: list[dict[str, Any]] = []

    def target_of(self, index: int) -> float:
        g = self.groups[index]
        return self.targets[g] if g in self.targets else min(self.targets.values())

    def update(self, image_id: int, targets: Sequence[np.ndarray]) -> None:
        """Add one image: ``targets[i]`` is set i's semantic target of it.

        Raises:
            DatasetError: wrong number of targets, or their sizes differ (names the image id).
        """
        if len(targets) != self.num_sets:
            raise DatasetError(f"expected {self.num_sets} annotation sets, got {len(targets)}", image_id=image_id)
        shapes = {tuple(np.shape(t)) for t in targets}
        if len(shapes) != 1:
            raise DatasetError(f"the annotation sets give this image different sizes: {sorted(shapes)}", image_id=image_id)
        k = len(self.class_names)
        inter = np.zeros((len(self.pairs), k), dtype=np.int64)
        union = np.zeros_like(inter)
        for p, (i, j) in enumerate(self.pairs):
            inter[p], union[p] = pair_counts(targets[i], targets[j], k, self.ignore)
        self.inter += inter
        self.union += union
        img_iou = _nanmean_rows(_iou(inter, union))
        img_union = union.max(axis=0)
        per_class = {}
        flagged = []
        for c in range(k):
            if np.isnan(img_iou[c]):
                continue
            per_class[self.class_names[c]] = float(img_iou[c])
            if img_union[c] >= self.min_pixels and img_iou[c] < self.target_of(c):
                flagged.append((float(img_iou[c]) - self.target_of(c), c))
        defined = img_iou[~np.isnan(img_iou)]
        row: dict[str, Any] = {
            "image_id": int(image_id),
            "mIoU": float(defined.mean()) if defined.size else None,
            "per_class": per_class,
            "flagged": bool(flagged),
            "below_target": [self.class_names[c] for _, c in sorted(flagged)],
            "worst_class": self.class_names[min(flagged)[1]] if flagged else None,
        }
        self.images.append(row)

    def result(self) -> dict[str, Any]:
        """The agreement document (see the module docstring); readable by ``diagnose(agreement=...)``."""
        pair_iou = _iou(self.inter, self.union)  # [pairs, classes]
        cls_iou = _nanmean_rows(pair_iou)
        per_class = {n: _opt(cls_iou[c]) for c, n in enumerate(self.class_names)}
        per_group: dict[str, float | None] = {}
        for g in dict.fromkeys(g for g in self.groups if g is not None):
            vals = [cls_iou[c] for c in range(len(self.class_names)) if self.groups[c] == g and np.isfinite(cls_iou[c])]
            per_group[g] = float(np.mean(vals)) if vals else None
        classes = []
        for c, n in enumerate(self.class_names):
            iou = per_class[n]
            classes.append({
                "name": n, "index": c, "group": self.groups[c], "IoU": iou, "target": self.target_of(c),
                "flagged": iou is not None and iou < self.target_of(c),
                "intersection": int(self.inter[:, c].sum()), "union": int(self.union[:, c].sum()),
            })
        flagged_classes = sorted((d for d in classes if d["flagged"]), key=lambda d: d["IoU"] - d["target"])
        flagged_images = sorted((r for r in self.images if r["flagged"]),
                                key=lambda r: (r["mIoU"] if r["mIoU"] is not None else 1.0, r["image_id"]))
        groups_out = {
            g: {"IoU": v, "target": self.targets.get(g, min(self.targets.values())),
                "flagged": v is not None and v < self.targets.get(g, min(self.targets.values()))}
            for g, v in per_group.items()
        }
        return {
            "per_class": per_class,
            "targets": dict(self.targets),
            "per_group": groups_out,
            "definition": DEFINITION,
            "sets": list(self.set_names),
            "num_images": len(self.images),
            "pairs": [
                {"sets": [self.set_names[i], self.set_names[j]],
                 "per_class": {n: _opt(pair_iou[p, c]) for c, n in enumerate(self.class_names)}}
                for p, (i, j) in enumerate(self.pairs)
            ],
            "classes": classes,
            "flagged_classes": [d["name"] for d in flagged_classes],
            "flagged_images": [{"image_id": r["image_id"], "mIoU": r["mIoU"], "worst_class": r["worst_class"],
                                "below_target": r["below_target"]} for r in flagged_images],
            "per_image": list(self.images),
        }


def check_same_images(image_ids: Sequence[Sequence[int]], set_names: Sequence[str]) -> list[int]:
    """The common image ids of all sets, in the first set's order.

    Raises:
        DatasetError: the sets are over different image ids (names the set and up to 10 ids).
    """
    first = list(image_ids[0])
    ref = set(first)
    for name, ids in zip(set_names[1:], image_ids[1:], strict=True):
        s = set(ids)
        if s != ref:
            missing = sorted(ref - s)
            extra = sorted(s - ref)
            parts = []
            if missing:
                parts.append(f"lacks image ids {missing[:10]}{' ...' if len(missing) > 10 else ''} of {set_names[0]}")
            if extra:
                parts.append(f"has image ids {extra[:10]}{' ...' if len(extra) > 10 else ''} not in {set_names[0]}")
            raise DatasetError(
                f"annotation sets must cover the same images: this set {' and '.join(parts)}; "
                "agreement is only defined on images every set labelled",
                path=name,
            )
    return first


def compute_agreement(
    sets: Sequence[Mapping[int, np.ndarray]],
    class_names: Sequence[str],
    groups: Sequence[str | None],
    *,
    set_names: Sequence[str] | None = None,
    targets: Mapping[str, float] | None = None,
    min_pixels: int = 1,
) -> dict[str, Any]:
    """Agreement of in-memory sets: ``sets[i]`` maps image id -> semantic target of set i."""
    names = list(set_names or [f"set{i}" for i in range(len(sets))])
    ids = check_same_images([list(s) for s in sets], names)
    acc = AgreementAccumulator(class_names, groups, len(sets), set_names=names, targets=targets,
                               min_pixels=min_pixels)
    for image_id in ids:
        acc.update(image_id, [s[image_id] for s in sets])
    return acc.result()


def format_agreement(result: Mapping[str, Any], *, max_images: int = 20) -> str:
    """A Markdown summary of an agreement result."""
    def pct(x: float | None) -> str:
        return "n/a" if x is None else f"{100 * x:.1f}%"

    lines = ["# Inter-annotator agreement", "",
             f"Sets: {', '.join(result['sets'])}; {result['num_images']} images.", "",
             f"Definition: {result['definition']}.", "",
             "## Per class", "", "| class | group | IoU | target | flagged |", "|---|---|---|---|---|"]
    for d in result["classes"]:
        lines.append(f"| {d['name']} | {d['group']} | {pct(d['IoU'])} | {pct(d['target'])} | "
                     f"{'**yes**' if d['flagged'] else ''} |")
    lines += ["", "## Per group", "", "| group | IoU | target | flagged |", "|---|---|---|---|"]
    for g, d in result["per_group"].items():
        lines.append(f"| {g} | {pct(d['IoU'])} | {pct(d['target'])} | {'**yes**' if d['flagged'] else ''} |")
    fi = result["flagged_images"]
    lines += ["", f"## Flagged images ({len(fi)})", ""]
    if fi:
        lines += ["| image id | mIoU | worst class | below target |", "|---|---|---|---|"]
        for r in fi[:max_images]:
            lines.append(f"| {r['image_id']} | {pct(r['mIoU'])} | {r['worst_class']} | {', '.join(r['below_target'])} |")
        if len(fi) > max_images:
            lines.append(f"\n... and {len(fi) - max_images} more in agreement.json")
    else:
        lines.append("none")
    return "\n".join(lines) + "\n"
