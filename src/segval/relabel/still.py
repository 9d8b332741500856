"""Still-image evidence of a split: every kind that needs no video, gathered in one place for the queue.

Kinds (each a list of :class:`~segval.relabel.annotations.AnnotationScore` rows; README, "Finding label errors"):

* model-free, from the package alone: ``edge_gain`` and ``edge_off_edge`` (:mod:`segval.relabel.edge_alignment`:
  outlines that leave the image's edges: dilated, eroded, shifted, simplified masks) and ``appearance_colour``
  (:mod:`segval.relabel.appearance`: look-alike annotations of other images carry another class: swaps and
  wrong regions);
* ``appearance_margin``: how much nearer an annotation's look-alikes of another class are than those of its own,
  in colour, mask shape and (with a model) the model's features stacked (swaps between look-alike classes);
* from a model that scores the images (:mod:`segval.relabel.model_evidence`): ``model_missing`` (background the
  model gives to an object: drops), ``appearance_model`` (look-alikes in the model's feature space),
  ``model_selfconf`` / ``model_disagree`` and the image's label quality; with cross-fitting every image is
  scored by the model of the fold that held it out, and look-alikes are searched among the images of the
  same model (features of different models are not comparable);
* from training dynamics (optional, :mod:`segval.relabel.dynamics`): ``dyn_region``, ``dyn_region_aum``,
  ``dyn_boundary``, ``dyn_missing``.

Which kinds are fused, and with what weight, is ``relabel.still`` of ``conf/relabel_queue.yaml``; every item of
the queue says which model evidence it rests on (``model_evidence``: ``in-sample``, ``out-of-sample (fold k)``
or ``none``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segval.errors import ConfigError
from segval.io import shipped_defaults
from segval.relabel.annotations import AnnotationScore

__all__ = ["ModelScoring", "StillConfig", "StillEvidence", "gather_still_evidence"]

#: the defaults of StillConfig: conf/relabel_queue.yaml's relabel.still
_STILL = shipped_defaults("relabel_queue", "relabel.still")


@dataclass(frozen=True)
class StillConfig:
    """Which still-image kinds are fused and how (the defaults are conf/relabel_queue.yaml's ``relabel.still``).

    Attributes:
        enabled: ``auto`` (for images without a video, and for every image when a model scores the split),
            ``true`` or ``false``.
        weights: per kind, a factor on its evidence (0 leaves it out).
        raw: kinds ranked by their raw values (shares on one scale for every class), not class-normalised.
        video_weight: in a split with videos, an image scores ``max(video evidence, video_weight x still
            evidence)`` (both as -log tail p-values over the images).
        appearance_k: look-alike annotations compared per annotation.
        margin_k: nearest annotations of each side (own class, other classes) ``appearance_margin`` averages.
        min_missing_px: smallest region a model's missing-object evidence considers.
    """

    enabled: str = str(_STILL["enabled"])
    weights: Mapping[str, float] = field(default_factory=lambda: dict(_STILL["weights"]))
    raw: tuple[str, ...] = tuple(_STILL["raw"])
    video_weight: float = _STILL["video_weight"]
    appearance_k: int = _STILL["appearance_k"]
    margin_k: int = _STILL["margin_k"]
    min_missing_px: int = _STILL["min_missing_px"]

    @classmethod
    def from_mapping(cls, m: Mapping[str, Any] | None) -> StillConfig:
        """Build and check; ConfigError names a bad key or value."""
        m = dict(m or {})
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(m) - known)
        if unknown:
            raise ConfigError(f"relabel.still: unknown key(s) {unknown}; known: {sorted(known)}")
        weights = dict(cls().weights)
        given = dict(m.pop("weights", None) or {})
        bad = sorted(set(given) - set(weights))
        if bad:
            raise ConfigError(f"relabel.still.weights: unknown kind(s) {bad}; kinds: {sorted(weights)}")
        weights.update({k: float(v) for k, v in given.items()})
        if any(v < 0 for v in weights.values()):
            raise ConfigError(f"relabel.still.weights must be >= 0, got {weights}")
        enabled = str(m.pop("enabled", cls().enabled)).lower()
        if enabled not in ("auto", "true", "false"):
            raise ConfigError(f"relabel.still.enabled must be auto, true or false, got {enabled!r}")
        if "raw" in m:
            m["raw"] = tuple(m["raw"])
        cfg = cls(enabled=enabled, weights=weights, **m)
        if cfg.video_weight < 0 or cfg.appearance_k < 1 or cfg.margin_k < 1 or cfg.min_missing_px < 1:
            raise ConfigError("relabel.still: video_weight >= 0, appearance_k >= 1, margin_k >= 1 and "
                              "min_missing_px >= 1")
        return cfg


@dataclass(frozen=True)
class ModelScoring:
    """One model scoring some images of the split.

    Attributes:
        checkpoint: its checkpoint.
        images: the image ids it scores (None: every image of the split).
        source: what its evidence is for these images: ``in-sample`` (it trained on them) or ``out-of-sample
            (fold k)``.
        mean, std: the input normalisation it was trained with.
    """

    checkpoint: str
    images: frozenset[int] | None
    source: str
    mean: Sequence[float] = (0.485, 0.456, 0.406)
    std: Sequence[float] = (0.229, 0.224, 0.225)


@dataclass
class StillEvidence:
    """The still-image evidence of a split.

    Attributes:
        rows: ``{kind: rows}``.
        label_quality: ``{image_id: cleanlab softmin}`` of the scoring model(s), or None without a model.
        model_source: ``{image_id: "in-sample" | "out-of-sample (fold k)"}`` (images without: none).
        models: what scored the split: ``[{"checkpoint", "source", "images"}]``.
    """

    rows: dict[str, list[AnnotationScore]]
    label_quality: dict[int, float] | None
    model_source: dict[int, str]
    models: list[dict[str, Any]]


def gather_still_evidence(
    split: Any,
    *,
    background_id: int | None,
    cfg: StillConfig,
    images: Sequence[Any] | None = None,
    models: Sequence[ModelScoring] = (),
    dynamics: str | Path | None = None,
    progress: Callable[[Iterable, str], Iterable] = lambda it, desc: it,
) -> StillEvidence:
    """Every still-image kind with a weight > 0 for ``images`` (default: the split's) of ``split``."""
    from segval.relabel.appearance import colour_features, knn_evidence, margin_evidence, shape_features, stack_features
    from segval.relabel.edge_alignment import edge_evidence

    recs = list(split.images if images is None else images)
    wanted = {k for k, w in cfg.weights.items() if w > 0}
    rows: dict[str, list[AnnotationScore]] = {}
    category_of = {(r.id, i.annotation_id): i.category_id for r in recs for i in split.instances(r)}
    if wanted & {"edge_gain", "edge_off_edge"}:
        edges = edge_evidence(split, background_id=background_id, images=recs,
                              progress=lambda it: progress(it, "edges"))
        rows["edge_gain"], rows["edge_off_edge"] = edges["gain"], edges["off_edge"]
    look = {}  # the model-free look of each annotation, for appearance_margin and model_missing
    if wanted & {"appearance_colour", "appearance_margin", "model_missing"}:
        look["colour"] = colour_features(split, background_id=background_id, images=recs)
    if "appearance_colour" in wanted:
        rows["appearance_colour"] = knn_evidence(look["colour"], category_of, k=cfg.appearance_k)
    if wanted & {"appearance_margin", "model_missing"}:
        look["shape"] = shape_features(split, background_id=background_id, images=recs)
    label_quality: dict[int, float] | None = None
    source: dict[int, str] = {}
    for m in models:
        mine = [r for r in recs if m.images is None or r.id in m.images]
        got = _model_rows(split, m, mine, background_id, cfg, category_of, progress, look)
        for kind, rs in got["rows"].items():
            rows.setdefault(kind, []).extend(rs)
        label_quality = {**(label_quality or {}), **got["label_quality"]}
        source.update(dict.fromkeys((r.id for r in mine), m.source))
    if "appearance_margin" in wanted and not rows.get("appearance_margin"):  # no model features: colour and shape
        rows["appearance_margin"] = margin_evidence(stack_features(look["colour"], look["shape"]), category_of,
                                                    k=cfg.margin_k)
    if dynamics is not None and any(k.startswith("dyn_") for k in wanted):
        rows.update(_dynamics_rows(split, dynamics, background_id))
    described = [{"checkpoint": str(m.checkpoint), "source": m.source,
                  "images": len([r for r in recs if m.images is None or r.id in m.images])} for m in models]
    return StillEvidence({k: v for k, v in rows.items() if k in wanted}, label_quality, source, described)


def _model_rows(split: Any, m: ModelScoring, recs: Sequence[Any], background_id: int | None, cfg: StillConfig,
                category_of: Mapping[tuple[int, int], int], progress: Callable,
                look: Mapping[str, Mapping[tuple[int, int], Any]]) -> dict[str, Any]:
    from segval.relabel.appearance import knn_evidence, margin_evidence, stack_features
    from segval.relabel.model_evidence import model_evidence

    me = model_evidence(split, m.checkpoint, mean=list(m.mean), std=list(m.std), background_id=background_id,
                        images=recs, min_missing_px=cfg.min_missing_px,
                        progress=lambda it: progress(it, f"model ({m.source})"))
    rows = {"model_missing": me["missing"], "model_selfconf": me["selfconf"], "model_disagree": me["disagree"]}
    if look.get("shape") is not None:
        _missing_lookalike(me, look, category_of, k=cfg.margin_k)
    if me["features"]:  # look-alikes among the images this model scored (features of models differ)
        rows["appearance_model"] = knn_evidence(me["features"], category_of, k=cfg.appearance_k)
        if look.get("shape") is not None:  # colour, shape and the model's features, one block each
            rows["appearance_margin"] = margin_evidence(
                stack_features(look["colour"], look["shape"], me["features"]), category_of, k=cfg.margin_k)
    for rs in rows.values():
        for r in rs:
            r.info["model_evidence"] = m.source
    return {"rows": rows, "label_quality": me["label_quality"]}


def _missing_lookalike(me: dict[str, Any], look: Mapping[str, Mapping[tuple[int, int], Any]],
                       category_of: Mapping[tuple[int, int], int], *, k: int) -> None:
    """Re-score the model's missing regions (in place) by how much each looks like annotated objects of other images:
    ``-log(d + 0.001)``, d = mean cosine distance to its ``k`` nearest annotations (colour, mask shape and the
    model's features stacked as for ``appearance_margin``). A shadow or a sliver of the arm the model claims looks
    like no annotation; a dropped object looks like the same object annotated in other images. Regions too small
    to describe keep no row."""
    from segval.relabel.appearance import nearest_annotations, stack_features

    looks = me.get("missing_looks") or []
    keys = {j: (r.image_id, -1 - j) for j, (r, lk) in enumerate(zip(me["missing"], looks)) if lk is not None}
    use_model = bool(me["features"]) and all(looks[j]["model"] is not None for j in keys)
    blocks = [{**look["colour"], **{q: looks[j]["colour"] for j, q in keys.items()}},
              {**look["shape"], **{q: looks[j]["shape"] for j, q in keys.items()}}]
    if use_model:
        blocks.append({**me["features"], **{q: looks[j]["model"] for j, q in keys.items()}})
    near = nearest_annotations(stack_features(*blocks), list(keys.values()), category_of, k=k)
    kept = []
    for j, r in enumerate(me["missing"]):
        if j in keys and keys[j] in near:
            d, like = near[keys[j]]
            r.value = -math.log(d + 1e-3)
            r.info.update({"missing_lookalike_dist": round(d, 4), "missing_looks_like": like})
            kept.append(r)
    me["missing"] = kept


def _dynamics_rows(split: Any, path: str | Path, background_id: int | None) -> dict[str, list[AnnotationScore]]:
    from segval.metrics.training_dynamics import load_dynamics
    from segval.relabel.dynamics import dynamics_evidence

    dyn = load_dynamics(path)
    out = dynamics_evidence(split, dyn, background_id=background_id, index_of=split.taxonomy.index_of)
    return {f"dyn_{k}": v for k, v in out.items()}
