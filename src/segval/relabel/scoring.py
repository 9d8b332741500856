"""Pure ranking of relabel candidates: evidence in, fused scores out (no I/O, no model).

Why fused: measurements (README, "The relabel loop") show a model-only label-quality score is near chance when
the baseline is weak (CPU, no pretrained weights), so the queue fuses the model's evidence with
model-free evidence. Each candidate *item* (one annotation, or one missing object, or an image
the model disagrees with) carries evidence values, each mapped to [0, 1]:

================= ====================================================================== =========
evidence          what it measures                                                        weight
================= ====================================================================== =========
temporal_shape    the annotation is a single-frame spike against the same object in the     1.0
                  neighbouring frames: outline band, area or position beyond what is
                  usual for its class in its video (segval.relabel.evidence)
temporal_class    the same object has another class in most neighbouring frames (up to    1.0
                  t±2; a swap / wrong region)
missing           an object present in the previous and next frames (or t±2) has no       1.0
                  annotation overlapping it in this frame (a drop); value =
                  min(1, 0.5 + their IoU)
geometry          QA geometry outliers (fragmented, jagged, tiny) of the annotation        0.3
sam_disagreement  1 - IoU(best SAM 2 proposal, annotation), times the proposal's           0.5
                  predicted IoU (only with pretrained SAM 2 weights)
label_quality     the image's cleanlab label quality (per_image.csv of the queued split)   0.5
                  in the worse half of the split: ``max(0, 2 r - 1)`` with r = 1 -
                  percentile rank (the better half adds nothing, so a weak model adds
                  no noise to most images)
weak_disagree     the same on the image's share of pixels of weak classes (from           0.3
                  findings.json) predicted as another class
confusion         1 when the image's top confused (gt, pred) pair is a confusion cause    0.2
                  of findings.json (either order), else 0
================= ====================================================================== =========

``item score = sum(weight * value)`` over the item's evidence plus the image's model evidence
(label_quality + weak_disagree + confusion): the model evidence is shared by every item of the
image. ``image score = max(item scores) * (1 + within_video if the image holds its video's highest
item score else 1)`` — ranking within a video as well as globally: each video's worst frame is
lifted above frames of similar score elsewhere, in proportion, so a video without errors cannot
lift a weak candidate over a strong one. Images are ranked by image score
(ties: lower image id first); the queue takes the first ``budget`` images and lists their items,
best first.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from segval.errors import ConfigError
from segval.io import shipped_defaults

__all__ = [
    "ITEM_EVIDENCE",
    "IMAGE_EVIDENCE",
    "Candidate",
    "RankingConfig",
    "percentile_ranks",
    "rank_candidates",
    "shape_value",
]

ITEM_EVIDENCE = ("temporal_shape", "temporal_class", "missing", "geometry", "sam_disagreement")
IMAGE_EVIDENCE = ("label_quality", "weak_disagree", "confusion")


#: the defaults of RankingConfig: conf/relabel_queue.yaml's relabel.ranking
_RANKING = shipped_defaults("relabel_queue", "relabel.ranking")


@dataclass(frozen=True)
class RankingConfig:
    """Weights of each evidence (see the module doc) and the scales that map raw values to [0, 1]; the defaults
    are conf/relabel_queue.yaml's ``relabel.ranking``."""

    weights: Mapping[str, float] = field(default_factory=lambda: dict(_RANKING["weights"]))
    within_video: float = _RANKING["within_video"]
    shape_scale_px: float = _RANKING["shape_scale_px"]
    min_item_score: float = _RANKING["min_item_score"]

    @classmethod
    def from_mapping(cls, m: Mapping[str, Any] | None) -> RankingConfig:
        """Build and check; ConfigError names a bad key or value (unknown weights included)."""
        m = dict(m or {})
        known = {"weights", "within_video", "shape_scale_px", "min_item_score", "description"}
        unknown = sorted(set(m) - known)
        if unknown:
            raise ConfigError(f"relabel.ranking: unknown key(s) {unknown}; known: {sorted(known - {'description'})}")
        m.pop("description", None)
        weights = dict(cls().weights)
        given = dict(m.pop("weights", None) or {})
        bad = sorted(set(given) - set(weights))
        if bad:
            raise ConfigError(f"relabel.ranking.weights: unknown evidence {bad}; evidence: {list(weights)}")
        weights.update(given)
        for k, v in weights.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ConfigError(f"relabel.ranking.weights.{k} must be a number >= 0, got {v!r}")
        cfg = cls(weights={k: float(v) for k, v in weights.items()}, **{k: float(v) for k, v in m.items()})
        if cfg.shape_scale_px <= 0:
            raise ConfigError(f"relabel.ranking.shape_scale_px must be > 0, got {cfg.shape_scale_px}")
        if cfg.within_video < 0 or cfg.min_item_score < 0:
            raise ConfigError("relabel.ranking.within_video and min_item_score must be >= 0")
        return cfg

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["weights"] = dict(self.weights)
        return d


@dataclass(slots=True)  # a split's candidates are many (a few per image): no per-object __dict__
class Candidate:
    """One thing an annotator could fix.

    Attributes:
        image_id: the image.
        kind: ``annotation`` (an existing annotation looks wrong), ``missing`` (an object seems
            unlabelled) or ``image`` (model evidence only).
        category_id: the class concerned (None: unknown).
        annotation_ids: existing annotations concerned.
        region: ``[x, y, w, h]`` of the area to look at, or None (whole image).
        evidence: raw values per evidence name in [0, 1] (see the module doc) plus any numbers
            behind them (other keys are carried into the queue's ``evidence`` unchanged).
        reason: one sentence for the annotator.
        pixels: pixels likely wrong (the basis of ``expected_gain``).
        video_id: the image's video, if any.
    """

    image_id: int
    kind: str
    category_id: int | None
    annotation_ids: list[int]
    region: list[float] | None
    evidence: dict[str, Any]
    reason: str
    pixels: float = 0.0
    video_id: int | None = None
    score: float = 0.0


def shape_value(band_px: float, median_band_px: float, scale_px: float) -> float:
    """``clip((band - median) / scale, 0, 1)``: how far an annotation's disagreement band with its
    neighbours exceeds what is usual for its class in its video.

    >>> shape_value(3.5, 0.5, 1.5), shape_value(0.2, 0.5, 1.5)
    (1.0, 0.0)
    """
    if not math.isfinite(band_px):
        return 0.0
    return float(min(1.0, max(0.0, (band_px - median_band_px) / scale_px)))


def percentile_ranks(values: Mapping[int, float], *, higher_is_worse: bool) -> dict[int, float]:
    """Map each key's value to its percentile rank in [0, 1] (1 = the worst); ties share the mean
    rank; NaN values get 0 (no evidence).

    >>> percentile_ranks({1: 0.9, 2: 0.1, 3: 0.5}, higher_is_worse=False)
    {1: 0.0, 2: 1.0, 3: 0.5}
    """
    finite = {k: v for k, v in values.items() if v is not None and math.isfinite(v)}
    out = {k: 0.0 for k in values}
    if len(finite) == 1:
        out[next(iter(finite))] = 0.5
    if len(finite) < 2:
        return out
    order = sorted(finite.items(), key=lambda kv: kv[1] if higher_is_worse else -kv[1])
    n = len(order)
    i = 0
    while i < n:
        j = i
        while j + 1 < n and order[j + 1][1] == order[i][1]:
            j += 1
        r = (i + j) / 2 / (n - 1)
        for k in range(i, j + 1):
            out[order[k][0]] = r
        i = j + 1
    return out


def _item_score(c: Candidate, image_model: float, w: Mapping[str, float]) -> float:
    return image_model + sum(w[k] * float(c.evidence.get(k, 0.0) or 0.0) for k in ITEM_EVIDENCE)


def rank_candidates(
    candidates: Iterable[Candidate],
    image_evidence: Mapping[int, Mapping[str, float]],
    cfg: RankingConfig,
    *,
    budget: int,
    video_of: Mapping[int, int | None] | None = None,
    max_items_per_image: int = 5,
) -> tuple[list[tuple[int, float, list[Candidate]]], dict[int, float]]:
    """Score every candidate and pick the ``budget`` images to relabel.

    Args:
        candidates: items from the evidence gatherers (an image with model evidence but no item
            gets an ``image`` item added here).
        image_evidence: ``{image_id: {"label_quality": v, "weak_disagree": v, "confusion": v}}``
            in [0, 1].
        cfg: weights and scales.
        budget: images to keep (>= 0).
        video_of: ``{image_id: video_id}`` for the within-video bonus.
        max_items_per_image: items listed per kept image (best first).

    Returns:
        ``([(image_id, image_score, [items best first])] best image first, {image_id: image score}
        for every scored image)``.
    """
    if budget < 0:
        raise ConfigError(f"relabel.budget must be >= 0 images, got {budget}")
    w = cfg.weights
    video_of = video_of or {}
    model = {i: sum(w[k] * float(ev.get(k, 0.0) or 0.0) for k in IMAGE_EVIDENCE) for i, ev in image_evidence.items()}
    by_image: dict[int, list[Candidate]] = {}
    for c in candidates:
        c.score = _item_score(c, model.get(c.image_id, 0.0), w)
        if c.video_id is None:
            c.video_id = video_of.get(c.image_id)
        by_image.setdefault(c.image_id, []).append(c)
    for image_id, m in model.items():
        if image_id not in by_image and m > 0:
            ev = dict(image_evidence[image_id])
            c = Candidate(image_id, "image", ev.pop("_category_id", None), [], None,
                          {k: v for k, v in ev.items()}, ev.pop("_reason", "the model disagrees with the label"),
                          float(ev.get("_pixels", 0.0) or 0.0), video_of.get(image_id), m)
            c.evidence = {k: v for k, v in c.evidence.items() if not k.startswith("_")}
            by_image[image_id] = [c]
    best = {i: max(c.score for c in items) for i, items in by_image.items()}
    # the within-video bonus: the image holding its video's highest item score
    top_of_video: dict[Any, tuple[float, int]] = {}
    for i, s in best.items():
        v = video_of.get(i)
        if v is None:
            continue
        cur = top_of_video.get(v)
        if cur is None or s > cur[0] or (s == cur[0] and i < cur[1]):
            top_of_video[v] = (s, i)
    image_score = dict(best)
    for s, i in top_of_video.values():
        image_score[i] = s * (1.0 + cfg.within_video)
    order = sorted(image_score.items(), key=lambda kv: (-kv[1], kv[0]))
    picked = []
    for image_id, s in order[:budget]:
        items = sorted(by_image[image_id], key=lambda c: (-c.score, c.kind, c.annotation_ids))
        kept = [c for c in items if c.score >= cfg.min_item_score][:max_items_per_image] or items[:1]
        picked.append((image_id, s, kept))
    return picked, image_score


def image_model_evidence(
    rows: Sequence[Mapping[str, Any]],
    *,
    weak_classes: Sequence[str],
    confusion_pairs: Iterable[tuple[str, str]],
    class_ids: Mapping[str, int],
) -> dict[int, dict[str, Any]]:
    """Per-image model evidence from per_image.csv rows (see the module doc).

    Returns:
        ``{image_id: {"label_quality", "weak_disagree", "confusion": values in [0, 1],
        "label_quality_raw", "_category_id", "_reason", "_pixels"}}``.
    """
    lq = {int(r["image_id"]): _f(r.get("label_quality")) for r in rows}
    weak_share = {}
    for r in rows:
        px = _f(r.get("pixels"))
        dis = sum(int(r.get(f"disagree_{c}") or 0) for c in weak_classes)
        weak_share[int(r["image_id"])] = dis / px if px and px > 0 else float("nan")
    r_lq = {k: max(0.0, 2 * v - 1) for k, v in percentile_ranks(lq, higher_is_worse=False).items()}
    r_weak = ({k: max(0.0, 2 * v - 1) for k, v in percentile_ranks(weak_share, higher_is_worse=True).items()}
              if weak_classes else {k: 0.0 for k in lq})
    pairs = {frozenset(p) for p in confusion_pairs}
    out: dict[int, dict[str, Any]] = {}
    for r in rows:
        i = int(r["image_id"])
        gt, pred = r.get("top_confused_gt"), r.get("top_confused_pred")
        conf = 1.0 if gt and pred and frozenset((gt, pred)) in pairs else 0.0
        reason = (f"the model predicts {pred} where the label says {gt} ({int(r.get('top_confused_pixels') or 0)} px); "
                  f"label quality {lq[i]:.3f}" if gt and pred else f"label quality {lq[i]:.3f}")
        out[i] = {"label_quality": r_lq[i], "weak_disagree": r_weak.get(i, 0.0), "confusion": conf,
                  "label_quality_raw": lq[i], "_category_id": class_ids.get(gt) if gt else None,
                  "_reason": reason, "_pixels": float(r.get("top_confused_pixels") or 0)}
    return out


def _f(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return float("nan")
