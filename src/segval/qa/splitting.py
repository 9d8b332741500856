"""Video-aware dataset splitting with balanced class pixel frequencies (pure numpy, no I/O).

Units: a **group** is a whole video (all images with the same ``video_id``); an image without a
``video_id`` is a group of its own. Groups are never split across sets.

Criteria (both must hold for a split plan to be accepted):

* **Class pixel share.** A class's share in a set is its pixels / all labelled (non-ignored)
  pixels of that set. With ``p`` the class's share over the whole data, the set's share must be
  within ``tolerance * max(p, min_share)`` of ``p``: i.e. **relative** ±``tolerance`` (default 5 %)
  for classes with ``p >= min_share``, and an **absolute** band of ``tolerance * min_share`` for
  tiny classes (where a relative band would be unreachably narrow). The achieved deviation is
  reported per class per set as ``relative_deviation`` = (share - p) / max(p, min_share) — the
  criterion is ``|relative_deviation| <= tolerance``.
* **Image fractions.** Each set's share of images is within ``fraction_tolerance`` (absolute,
  default 0.05) of its requested fraction, and a set with a positive fraction gets at least one
  group. When videos are too few or too large for this, no plan can keep them whole and the
  error says so.

Search: deterministic for a seed. ``trials`` random group orders are each assigned greedily (each
group to the set furthest below its image target), then improved by local search (moving one group,
swapping two); the plan with the smallest worst normalised violation wins.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from segval.errors import ConfigError, DatasetError


@dataclass
class SplitPlan:
    """A chosen assignment and what it achieved.

    Attributes:
        assignment: set index per group.
        ok: every criterion met.
        report: the achieved numbers (see :func:`plan_split`).
    """

    assignment: np.ndarray
    ok: bool
    report: dict[str, Any]


class SplitInfeasibleError(DatasetError):
    """No plan meets the criteria; the message names the worst class / set."""


def group_images(image_ids: Sequence[int], video_ids: Sequence[int | None]) -> tuple[list[Any], np.ndarray]:
    """Group keys and the group index per image: ``("video", id)`` or ``("image", id)``."""
    keys: dict[Any, int] = {}
    idx = np.empty(len(image_ids), dtype=np.int64)
    for n, (im, vid) in enumerate(zip(image_ids, video_ids, strict=True)):
        key = ("image", int(im)) if vid is None else ("video", int(vid))
        idx[n] = keys.setdefault(key, len(keys))
    return list(keys), idx


def check_fractions(fractions: Sequence[float], names: Sequence[str]) -> np.ndarray:
    """Validate fractions (positive, one per name, sum 1 within 1e-6)."""
    f = np.asarray(list(fractions), dtype=float)
    if len(f) != len(names) or len(f) < 1:
        raise ConfigError(f"fractions {list(fractions)} and split names {list(names)} must have the same length")
    if len(set(names)) != len(names):
        raise ConfigError(f"split names must be unique, got {list(names)}")
    if (f <= 0).any() or abs(f.sum() - 1.0) > 1e-6:
        raise ConfigError(f"fractions must be positive and sum to 1, got {list(fractions)} (sum {f.sum():g})")
    return f


class _Objective:
    def __init__(self, counts, sizes, fractions, tolerance, min_share, fraction_tolerance):
        self.counts = counts.astype(np.float64)  # [G, C]
        self.sizes = sizes.astype(np.float64)  # [G]
        self.fractions = fractions
        total = self.counts.sum(axis=0)
        self.p = total / max(total.sum(), 1.0)
        self.present = total > 0
        self.band = tolerance * np.maximum(self.p, min_share)  # allowed |share - p|
        self.tolerance = tolerance
        self.min_share = min_share
        self.ftol = fraction_tolerance
        self.n_images = self.sizes.sum()
        self.S = len(fractions)

    def totals(self, assign):
        S = self.S
        pix = np.zeros((S, self.counts.shape[1]))
        np.add.at(pix, assign, self.counts)
        imgs = np.bincount(assign, weights=self.sizes, minlength=S)
        return pix, imgs

    def violations(self, pix, imgs):
        """(class violation [S, C], fraction violation [S]) normalised so that <= 1 is OK."""
        tot = pix.sum(axis=1, keepdims=True)
        share = np.divide(pix, tot, out=np.zeros_like(pix), where=tot > 0)
        cv = np.abs(share - self.p[None]) / np.where(self.band > 0, self.band, 1.0)[None]
        cv[:, ~self.present] = 0.0
        cv[tot[:, 0] == 0] = 1e3  # an empty set cannot match anything
        fv = np.abs(imgs / self.n_images - self.fractions) / self.ftol
        fv[imgs == 0] = 1e3
        return cv, fv

    def score(self, pix, imgs):
        cv, fv = self.violations(pix, imgs)
        worst = max(cv.max(initial=0.0), fv.max(initial=0.0))
        smooth = float((cv ** 2).sum() + (fv ** 2).sum())
        # feasible plans (worst <= 1) all rank first, then by the total squared violation
        return (max(worst, 1.0), smooth)


def _local_search(obj: _Objective, assign: np.ndarray, rng: np.random.Generator, max_rounds: int,
                  swap_samples: int) -> tuple[np.ndarray, tuple[float, float]]:
    pix, imgs = obj.totals(assign)
    best = obj.score(pix, imgs)
    G = len(assign)
    for _ in range(max_rounds):
        improved = False
        for g in rng.permutation(G):
            src = assign[g]
            for dst in range(obj.S):
                if dst == src:
                    continue
                pix[src] -= obj.counts[g]; pix[dst] += obj.counts[g]  # noqa: E702
                imgs[src] -= obj.sizes[g]; imgs[dst] += obj.sizes[g]  # noqa: E702
                s = obj.score(pix, imgs)
                if s < best:
                    best, assign[g], improved = s, dst, True
                    src = dst
                else:
                    pix[src] += obj.counts[g]; pix[dst] -= obj.counts[g]  # noqa: E702
                    imgs[src] += obj.sizes[g]; imgs[dst] -= obj.sizes[g]  # noqa: E702
        if G >= 2:
            for _ in range(swap_samples):
                g, h = rng.integers(0, G, size=2)
                a, b = assign[g], assign[h]
                if a == b:
                    continue
                d_pix = obj.counts[g] - obj.counts[h]
                d_img = obj.sizes[g] - obj.sizes[h]
                pix[a] -= d_pix; pix[b] += d_pix; imgs[a] -= d_img; imgs[b] += d_img  # noqa: E702
                s = obj.score(pix, imgs)
                if s < best:
                    best, improved = s, True
                    assign[g], assign[h] = b, a
                else:
                    pix[a] += d_pix; pix[b] -= d_pix; imgs[a] += d_img; imgs[b] -= d_img  # noqa: E702
        if not improved:
            break
    return assign, best


def plan_split(
    counts: np.ndarray,
    sizes: np.ndarray,
    fractions: Sequence[float],
    names: Sequence[str],
    *,
    class_names: Sequence[str],
    group_keys: Sequence[Any] | None = None,
    tolerance: float = 0.05,
    min_share: float = 0.01,
    fraction_tolerance: float = 0.05,
    seed: int = 0,
    trials: int = 16,
    max_rounds: int = 20,
) -> SplitPlan:
    """Assign groups to sets (see the module docstring).

    Args:
        counts: int[G, C] labelled pixels of each class in each group.
        sizes: int[G] images per group.
        fractions: target image fraction per set (sum 1).
        names: set names.
        class_names: names by class index (for the report).
        group_keys: label per group (for the report), e.g. ``("video", 3)``.
        tolerance: allowed relative deviation of a class's share (0.05 = ±5 %).
        min_share: classes with an overall share below this get the absolute band
            ``tolerance * min_share``.
        fraction_tolerance: allowed absolute deviation of a set's image fraction.
        seed: random seed (same inputs + seed -> same plan).
        trials: random restarts.
        max_rounds: local-search passes per trial.

    Returns:
        The best :class:`SplitPlan` found; ``plan.ok`` says whether it meets every criterion.
    """
    f = check_fractions(fractions, names)
    counts = np.asarray(counts, dtype=np.int64)
    sizes = np.asarray(sizes, dtype=np.int64)
    G = len(sizes)
    if counts.shape != (G, len(class_names)):
        raise ValueError(f"counts must be [groups={G}, classes={len(class_names)}], got {counts.shape}")
    if G < len(f):
        raise SplitInfeasibleError(
            f"cannot keep videos whole: {G} video(s)/ungrouped image(s) for {len(f)} splits {list(names)}; "
            "every split needs at least one whole video"
        )
    obj = _Objective(counts, sizes, f, tolerance, min_share, fraction_tolerance)
    rng = np.random.default_rng(seed)
    best_assign, best = None, None
    for t in range(max(1, trials)):
        order = rng.permutation(G)
        if t % 2 == 0:  # largest groups first (random tie-break), else a plain random order
            order = order[np.argsort(-sizes[order], kind="stable")]
        assign = np.empty(G, dtype=np.int64)
        filled = np.zeros(len(f))
        target = f * sizes.sum()
        for g in order:
            s = int(np.argmax((target - filled) / target))
            assign[g] = s
            filled[s] += sizes[g]
        assign, score = _local_search(obj, assign, rng, max_rounds, swap_samples=4 * G)
        if best is None or score < best:
            best_assign, best = assign.copy(), score
        if best[0] <= 1.0:  # feasible: stop (the plan depends only on the inputs and the seed)
            break
    assert best_assign is not None
    report = split_report(obj, best_assign, names, class_names, group_keys)
    return SplitPlan(best_assign, report["ok"], report)


def split_report(obj: _Objective, assign: np.ndarray, names: Sequence[str], class_names: Sequence[str],
                 group_keys: Sequence[Any] | None) -> dict[str, Any]:
    pix, imgs = obj.totals(assign)
    cv, fv = obj.violations(pix, imgs)
    tot = pix.sum(axis=1, keepdims=True)
    share = np.divide(pix, tot, out=np.zeros_like(pix), where=tot > 0)
    splits = []
    for s, name in enumerate(names):
        classes = {}
        for c, cname in enumerate(class_names):
            if not obj.present[c]:
                continue
            base = max(obj.p[c], obj.min_share)
            classes[cname] = {
                "share": float(share[s, c]), "overall_share": float(obj.p[c]),
                "relative_deviation": float((share[s, c] - obj.p[c]) / base),
                "allowed": float(obj.band[c]), "mode": "relative" if obj.p[c] >= obj.min_share else "absolute",
                "ok": bool(cv[s, c] <= 1.0 + 1e-9),
            }
        members = np.flatnonzero(assign == s)
        splits.append({
            "name": name, "fraction_target": float(obj.fractions[s]),
            "fraction": float(imgs[s] / obj.n_images), "images": int(imgs[s]), "groups": int(len(members)),
            "videos": [int(group_keys[g][1]) for g in members if group_keys is not None and group_keys[g][0] == "video"],
            "fraction_ok": bool(fv[s] <= 1.0 + 1e-9), "classes": classes,
        })
    worst = None
    for s, sp in enumerate(splits):
        for cname, d in sp["classes"].items():
            dev = abs(d["relative_deviation"])
            if worst is None or dev > worst["abs_relative_deviation"]:
                worst = {"split": sp["name"], "class": cname, "abs_relative_deviation": dev, **d}
    ok = all(sp["fraction_ok"] and all(d["ok"] for d in sp["classes"].values()) for sp in splits)
    return {
        "ok": bool(ok),
        "criterion": (f"per class and split: |share - overall share| <= {obj.tolerance:g} * max(overall share, "
                      f"{obj.min_share:g}); per split: |image fraction - target| <= {obj.ftol:g}"),
        "tolerance": obj.tolerance, "min_share": obj.min_share, "fraction_tolerance": obj.ftol,
        "num_images": int(obj.n_images), "num_groups": int(len(assign)),
        "worst": worst, "splits": splits,
    }


def explain_failure(report: Mapping[str, Any]) -> str:
    """A one-paragraph reason a plan is not OK (worst class and any image-fraction miss)."""
    parts = []
    for sp in report["splits"]:
        if not sp["fraction_ok"]:
            parts.append(f"split {sp['name']!r} gets {sp['fraction']:.1%} of the images "
                         f"(target {sp['fraction_target']:.1%} ± {report['fraction_tolerance']:.0%})")
    if parts:
        parts[0] = "cannot keep videos whole and meet the fractions: " + parts[0]
    w = report.get("worst")
    if w is not None and not w["ok"]:
        parts.append(
            f"class {w['class']!r} has {w['share']:.2%} of the pixels in split {w['split']!r} vs {w['overall_share']:.2%} "
            f"overall (deviation {w['relative_deviation']:+.1%}, allowed ±{report['tolerance']:.0%})"
        )
    return "; ".join(parts) + ("; " if parts else "") + (
        "try another seed, a larger tolerance, other fractions, or allow=true to write the split anyway")
