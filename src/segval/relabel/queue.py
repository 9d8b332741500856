"""The relabel queue: which images (and which annotations in them) annotators should look at first.

:func:`build_queue` gathers evidence (model: per_image.csv + findings.json of a run; model-free:
temporal consistency within videos and QA geometry, :mod:`segval.relabel.evidence`), ranks it
(:mod:`segval.relabel.scoring`) and returns the ``queue.json`` document (README, "The relabel loop");
:func:`write_queue` writes ``queue.json`` + ``queue.csv``; :func:`read_queue` reads and checks one.

Model evidence must score the images of the queued split: per_image.csv of a run evaluated on
that split (``segval eval split=train ...``). When the run given was evaluated on another split
(a training run scores ``val``), its per-image rows cannot be used for the queued split's
images and the queue is built from the model-free evidence plus the class-level findings; the
app (:func:`segval.commands.relabel.run_queue`) can run that evaluation itself with ``ckpt_path=``.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from segval.errors import ConfigError, DatasetError
from segval.io import atomic_path, write_json
from segval.relabel.evidence import TemporalConfig, geometry_candidates, merge_candidates, temporal_candidates
from segval.relabel.fusion import fuse_still
from segval.relabel.scoring import RankingConfig, image_model_evidence, rank_candidates
from segval.relabel.still import StillConfig, StillEvidence

__all__ = ["QUEUE_CSV_COLUMNS", "SCHEMA_VERSION", "build_queue", "load_model_evidence", "read_queue", "write_queue"]

SCHEMA_VERSION = 1
QUEUE_CSV_COLUMNS = ("rank", "item_id", "image_id", "file_name", "video_id", "frame_index", "class", "category_id",
                     "annotation_ids", "region", "reason", "score", "expected_gain", "proposal_score", "proposal_file",
                     "evidence")


def load_model_evidence(run_dir: str | os.PathLike | None = None, *, findings: str | os.PathLike | None = None,
                        per_image: str | os.PathLike | None = None) -> dict[str, Any]:
    """Read findings.json / per_image.csv (from ``run_dir`` unless given one by one).

    Returns:
        ``{"findings": dict | None, "per_image": rows | None, "per_image_split": str | None,
        "findings_path", "per_image_path"}``.

    Raises:
        SegvalError: a file named explicitly is missing, or is not what segval writes.
    """
    from segval.metrics.per_image_csv import read_per_image_csv
    from segval.dataset.coco import load_json

    out: dict[str, Any] = {"findings": None, "per_image": None, "per_image_split": None,
                           "findings_path": None, "per_image_path": None}
    run = Path(run_dir) if run_dir else None
    if run is not None and not run.is_dir():
        raise ConfigError(f"run_dir={run} is not a directory; give a segval train / eval / analyze run directory")
    f = Path(findings) if findings else (run / "findings.json" if run else None)
    p = Path(per_image) if per_image else (run / "per_image.csv" if run else None)
    if f is not None:
        if f.is_file():
            doc = load_json(f)
            if not isinstance(doc, Mapping) or "classes" not in doc:
                raise DatasetError("not a findings.json written by `segval analyze` (no 'classes')", path=f)
            out["findings"], out["findings_path"] = doc, str(f)
        elif findings:
            raise ConfigError(f"findings={f} not found; run `segval analyze run_dir=...` first")
    if p is not None:
        if p.is_file():
            out["per_image"], out["per_image_path"] = read_per_image_csv(p), str(p)
            metrics = p.parent / "metrics.json"
            if metrics.is_file():
                out["per_image_split"] = load_json(metrics).get("split")
            elif out["findings"] is not None and p.parent == (f.parent if f else None):
                out["per_image_split"] = out["findings"].get("split")
        elif per_image:
            raise ConfigError(f"per_image={p} not found; `segval eval` writes it with callbacks=analysis")
    return out


def _weak_and_pairs(findings: Mapping[str, Any] | None) -> tuple[list[str], list[tuple[str, str]]]:
    if not findings:
        return [], []
    weak, pairs = [], []
    for c in findings.get("classes") or []:
        if c.get("status") == "weak":
            weak.append(c["name"])
        for cause in c.get("causes") or []:
            partner = (cause.get("evidence") or {}).get("partner")
            if cause.get("cause") == "confusion" and partner:
                pairs.append((c["name"], partner))
    return weak, pairs


def _model_evidence(run_dir: str | os.PathLike | None, findings: Any, per_image: Any, split: str, ids: set[int],
                    warn: Callable[[str], None]) -> tuple[dict[str, Any], list[Mapping[str, Any]]]:
    """The model evidence (:func:`load_model_evidence`, or what was passed parsed) and the per_image.csv rows of
    the queued split's images; ``warn`` says why rows are left out."""
    model = load_model_evidence(run_dir,
                                findings=findings if isinstance(findings, (str, os.PathLike)) else None,
                                per_image=per_image if isinstance(per_image, (str, os.PathLike)) else None)
    if isinstance(findings, Mapping):
        model["findings"] = dict(findings)
    if isinstance(per_image, list):
        model["per_image"], model["per_image_split"] = per_image, split
    rows = model["per_image"]
    used_rows: list[Mapping[str, Any]] = []
    if rows is not None:
        if model["per_image_split"] not in (None, split):
            warn(f"per_image.csv ({model['per_image_path']}) scores split {model['per_image_split']!r}, not "
                 f"{split!r}: its per-image evidence is left out (evaluate the checkpoint on split={split}, or "
                 f"give ckpt_path= to let the queue do it)")
        else:
            used_rows = [r for r in rows if int(r["image_id"]) in ids]
            unknown = len(rows) - len(used_rows)
            if unknown:
                warn(f"{unknown} rows of per_image.csv name images that are not in split {split!r}; left out")
    elif run_dir or per_image:
        warn("no per_image.csv: ranking without per-image model evidence")
    return model, used_rows


def _finite(v: Any) -> Any:
    return None if isinstance(v, float) and not math.isfinite(v) else v


def _queue_items(picked: Sequence[tuple[int, float, Sequence[Any]]], sd: Any, image_ev: Mapping[int, Mapping],
                 names: Mapping[int, str]) -> list[dict[str, Any]]:
    """The queue.json items of the ranked ``(image id, image score, candidates)``, ranked from 1."""
    items = []
    for image_id, img_score, cs in picked:
        rec = sd.image(image_id)
        for k, c in enumerate(cs):
            ev = {key: _finite(v) for key, v in c.evidence.items()}
            if image_id in image_ev:
                for key in ("label_quality", "weak_disagree", "confusion", "label_quality_raw"):
                    ev.setdefault(key, _finite(image_ev[image_id].get(key)))
            ev["image_score"] = round(img_score, 6)
            ev["kind"] = c.kind
            ann = "-".join(map(str, c.annotation_ids)) or c.kind
            items.append({
                "rank": len(items) + 1,
                "item_id": f"{image_id}:{ann}:{k}",
                "image_id": image_id,
                "file_name": rec.file_name,
                "video_id": rec.video_id,
                "frame_index": rec.frame_index,
                "class": names.get(c.category_id) if c.category_id is not None else None,
                "category_id": c.category_id,
                "annotation_ids": list(c.annotation_ids),
                "region": c.region,
                "reason": c.reason,
                "score": round(float(c.score), 6),
                "expected_gain": round(float(c.score) * float(c.pixels), 3),
                "evidence": ev,
                "proposal": None,
            })
    return items


def _pick_with_still(picked: list, video_scores: Mapping[int, float], ranking: Any, sd: Any, *, budget: int,
                     video_of: Mapping[int, int | None], video_weight: float, max_items: int,
                     name: Callable[[int | None], str]) -> list[tuple[int, float, list[Any]]]:
    """The ``budget`` images by the combined score, each with its video items then its still items."""
    from segval.relabel.still_items import combined_image_scores, still_candidates

    ids = [r.id for r in sd.images]
    score = combined_image_scores(video_scores, ranking.scores, ids, video_of, video_weight=video_weight)
    video_items = {i: cs for i, _, cs in picked}
    out = []
    for i in sorted(ids, key=lambda i: (-score[i], i))[:budget]:
        items = list(video_items.get(i, [])) if video_of.get(i) is not None else []
        if i in ranking.scores:
            items += still_candidates(ranking, i, sd.annotations_for(i), name=name, video_id=video_of.get(i),
                                      max_items=max_items)
        if not items:
            items = list(video_items.get(i, []))
        out.append((i, score[i], items[:max_items]))
    return out


def _still_confusions(still: StillEvidence | None, names: Mapping[int, str], *, k: int, min_share: float = 0.5,
                      min_annotations: int = 2) -> list[dict[str, Any]]:
    """The class pairs look-alike annotations confuse, for stills (no neighbouring frames to compare): an
    annotation whose look-alikes in other images mostly carry another class counts for {its label, theirs}. Only
    classes with more than ``k`` (the look-alikes compared) annotations count: with fewer, every neighbour list is
    mostly other classes."""
    if still is None:
        return []
    rows = still.rows.get("appearance_model") or still.rows.get("appearance_colour") or []
    count: dict[int, int] = {}
    for r in rows:
        count[r.category_id] = count.get(r.category_id, 0) + 1
    pairs: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        if r.suggested is None or r.value < min_share or r.category_id is None:
            continue
        if count.get(r.category_id, 0) <= k or count.get(r.suggested, 0) <= k:
            continue
        label, to = names.get(r.category_id, str(r.category_id)), names.get(r.suggested, str(r.suggested))
        a, b = sorted((label, to))
        entry = pairs.setdefault((a, b), {"pair": [a, b], "annotations": 0, "directions": {f"{a}->{b}": 0, f"{b}->{a}": 0},
                                          "images": set(), "source": "look-alike annotations"})
        entry["annotations"] += 1
        entry["directions"][f"{label}->{to}"] += 1
        entry["images"].add(int(r.image_id))
    out = [{**e, "images": sorted(e["images"])} for e in pairs.values() if e["annotations"] >= min_annotations]
    return sorted(out, key=lambda e: (-e["annotations"], e["pair"]))

def build_queue(
    package: Any,
    *,
    split: str = "train",
    budget: int = 50,
    run_dir: str | os.PathLike | None = None,
    findings: str | os.PathLike | Mapping[str, Any] | None = None,
    per_image: str | os.PathLike | list[Mapping[str, Any]] | None = None,
    ranking: RankingConfig | Mapping[str, Any] | None = None,
    temporal: TemporalConfig | None = None,
    geometry: bool = True,
    max_items_per_image: int = 5,
    progress: Callable[[Iterable, str], Iterable] | None = None,
    warn: Callable[[str], None] | None = None,
    still: StillEvidence | None = None,
    still_cfg: StillConfig | None = None,
) -> dict[str, Any]:
    """Rank the images of ``split`` of ``package`` for relabelling (see the module doc).

    Args:
        package: a :class:`~segval.dataset.package.DatasetPackage` or its folder.
        split: the split queued (usually ``train``).
        budget: images in the queue (an image can carry several items).
        run_dir: a segval run directory holding findings.json and per_image.csv.
        findings: findings.json (path or parsed) instead of ``run_dir``'s.
        per_image: per_image.csv (path or rows) of the queued split instead of ``run_dir``'s.
        ranking: weights (:class:`RankingConfig` or a mapping).
        temporal: thresholds of the model-free evidence.
        geometry: include the QA geometry evidence.
        max_items_per_image: items listed per image.
        progress: ``progress(iterable, description)`` wrapper (e.g. tqdm).
        warn: called with a sentence when some evidence cannot be used.
        still: the still-image evidence of the split (:func:`segval.relabel.still.gather_still_evidence`);
            images without a video are ranked by it, images of a video by the larger of their video evidence
            and ``still_cfg.video_weight`` x it.
        still_cfg: how the still kinds are fused (default: conf/relabel_queue.yaml's ``relabel.still``).

    Returns:
        the queue.json document (items ranked, ``rank`` from 1).
    """
    from segval.dataset.package import DatasetPackage

    pkg = package if isinstance(package, DatasetPackage) else DatasetPackage.open(package)
    sd = pkg.split(split)
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 0:
        raise ConfigError(f"relabel.budget is a number of images >= 0, got {budget!r}")
    rcfg = ranking if isinstance(ranking, RankingConfig) else RankingConfig.from_mapping(ranking)
    tcfg = temporal or TemporalConfig(shape_scale_px=rcfg.shape_scale_px)
    warn = warn or (lambda msg: None)
    prog = progress or (lambda it, desc: it)
    tax = pkg.taxonomy
    names = {c.id: c.name for c in tax.categories}
    name_of = lambda cid: names.get(cid, str(cid))  # noqa: E731

    model, used_rows = _model_evidence(run_dir, findings, per_image, split, {r.id for r in sd.images}, warn)
    weak, pairs = _weak_and_pairs(model["findings"])
    class_ids = {c.name: c.id for c in tax.categories}
    image_ev = image_model_evidence(used_rows, weak_classes=weak, confusion_pairs=pairs, class_ids=class_ids)

    # ---- model-free evidence
    cands = temporal_candidates(sd, tcfg, background_id=tax.background_id, class_name=name_of,
                                progress=lambda it: prog(it, "temporal"))
    if geometry:
        cands += geometry_candidates(sd, tcfg, background_id=tax.background_id, class_name=name_of,
                                     progress=lambda it: prog(it, "geometry"))
    cands = merge_candidates(cands, copy=False)  # the unmerged ones are dropped here
    video_of = {r.id: r.video_id for r in sd.images}
    n_all = len(sd.images) if still is not None else budget
    picked, video_scores = rank_candidates(cands, image_ev, rcfg, budget=n_all, video_of=video_of,
                                           max_items_per_image=max_items_per_image)
    still_ranking = None
    if still is not None and still.rows:
        scfg = still_cfg or StillConfig()
        lq = still.label_quality
        if lq is None and used_rows:  # the run's per_image.csv scores the images: its label quality is fused
            lq = {i: ev["label_quality_raw"] for i, ev in image_ev.items()}
        still_ids = sorted({r.image_id for rs in still.rows.values() for r in rs} | set(still.model_source))
        still_ranking = fuse_still(still.rows, still_ids, weights=scfg.weights, raw=scfg.raw, label_quality=lq)
        picked = _pick_with_still(picked, video_scores, still_ranking, sd, budget=budget, video_of=video_of,
                                  video_weight=scfg.video_weight, max_items=max_items_per_image, name=name_of)

    items = _queue_items(picked, sd, image_ev, names)
    if still_ranking is not None:
        for it in items:
            it["evidence"].setdefault("model_evidence", still.model_source.get(it["image_id"], "none"))
    inputs = {
        "run_dir": str(run_dir) if run_dir else None,
        "findings": model["findings_path"], "per_image": model["per_image_path"],
        "per_image_split": model["per_image_split"], "per_image_rows_used": len(used_rows),
        "weak_classes": weak, "confusion_pairs": [list(p) for p in pairs],
        "videos": len({r.video_id for r in sd.images if r.video_id is not None}),
        "candidates": len(cands),
        "still_evidence": None if still is None else {
            "kinds": sorted(still.rows), "images": len(still_ranking.scores) if still_ranking else 0,
            "models": still.models, "fused": dict(still_ranking.kinds) if still_ranking else {}},
    }
    return {
        "schema_version": SCHEMA_VERSION,
        "dataset": {"name": pkg.name, "version": pkg.version, "root": str(pkg.root)},
        "label_confusions": label_confusions(cands, names) or _still_confusions(
            still, names, k=(still_cfg or StillConfig()).appearance_k),
        "split": split,
        "budget": budget,
        "ranking": {
            "description": "fused evidence per item: sum(weight * value) over temporal_shape, temporal_class, "
                           "missing, geometry, sam_disagreement (per annotation) plus label_quality, weak_disagree, "
                           "confusion (per image, from the model); image score = best item + within_video bonus "
                           "for the worst image of each video; see segval.relabel.scoring",
            **rcfg.to_dict(),
            "temporal": dataclasses.asdict(tcfg),
        },
        "run_dir": str(run_dir) if run_dir else None,
        "inputs": inputs,
        "images": len({i["image_id"] for i in items}),
        "items": items,
    }


def label_confusions(cands: Sequence[Any], names: Mapping[int, str], *, min_annotations: int = 2) -> list[dict[str, Any]]:
    """Class pairs the annotations themselves confuse: every candidate (queued or not) whose object has
    another class in most neighbouring frames (``temporal_class``) counts for the unordered pair
    {its label, the neighbours' class}. A pair with ``min_annotations`` or more is a guideline question
    ("is this a lego or a cube?") rather than a slip, whatever the model learned from it.

    Returns:
        ``[{"pair": [a, b], "annotations": n, "directions": {"a->b": n_ab, "b->a": n_ba}, "images": [ids]}]``,
        most annotations first (``a->b``: labelled a where the neighbours say b).
    """
    pairs: dict[tuple[str, str], dict[str, Any]] = {}
    for c in cands:
        to = c.evidence.get("neighbour_class")
        if not c.evidence.get("temporal_class") or to is None or c.category_id is None:
            continue
        label = names.get(c.category_id, str(c.category_id))
        a, b = sorted((label, str(to)))
        entry = pairs.setdefault((a, b), {"pair": [a, b], "annotations": 0,
                                          "directions": {f"{a}->{b}": 0, f"{b}->{a}": 0}, "images": set()})
        entry["annotations"] += len(c.annotation_ids) or 1
        entry["directions"][f"{label}->{to}"] += len(c.annotation_ids) or 1
        entry["images"].add(int(c.image_id))
    out = [{**e, "images": sorted(e["images"])} for e in pairs.values() if e["annotations"] >= min_annotations]
    return sorted(out, key=lambda e: (-e["annotations"], e["pair"]))


def write_queue(queue: Mapping[str, Any], out_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``queue.csv`` then ``queue.json`` (same items, flat) into ``out_dir``, each atomically: queue.json is
    written last (readers open it), so a kill never leaves a queue.json without its table."""
    out = Path(out_dir)
    cpath = out / "queue.csv"
    with atomic_path(cpath) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(QUEUE_CSV_COLUMNS)
        for it in queue["items"]:
            prop = it.get("proposal") or {}
            w.writerow([it["rank"], it["item_id"], it["image_id"], it["file_name"],
                        "" if it["video_id"] is None else it["video_id"],
                        "" if it["frame_index"] is None else it["frame_index"],
                        it["class"] or "", "" if it["category_id"] is None else it["category_id"],
                        " ".join(map(str, it["annotation_ids"])),
                        "" if it["region"] is None else " ".join(f"{v:g}" for v in it["region"]),
                        it["reason"], f"{it['score']:.6f}", f"{it['expected_gain']:.3f}",
                        "" if prop.get("score") is None else f"{prop['score']:.4f}", prop.get("file") or "",
                        json.dumps(it["evidence"], sort_keys=True)])
    jpath = write_json(out / "queue.json", queue)
    return jpath, cpath


def read_queue(path: str | os.PathLike) -> dict[str, Any]:
    """Read a queue.json (a folder holding one, or the file) and check its structure."""
    from segval.dataset.coco import load_json

    p = Path(path)
    if p.is_dir():
        p = p / "queue.json"
    if not p.is_file():
        raise ConfigError(f"queue {p} not found; run `segval relabel queue` first (it writes queue.json)")
    q = load_json(p)
    if not isinstance(q, Mapping) or q.get("schema_version") != SCHEMA_VERSION or not isinstance(q.get("items"), list):
        raise DatasetError(f"not a segval queue.json (schema_version {SCHEMA_VERSION} with 'items')", path=p)
    for it in q["items"]:
        missing = [k for k in ("item_id", "image_id", "file_name", "annotation_ids") if k not in it]
        if missing:
            raise DatasetError(f"queue item {it.get('item_id')!r} lacks {missing}", path=p)
    q = dict(q)
    q["_path"] = str(p)
    return q
