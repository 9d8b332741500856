"""Run the QA checks over a dataset package: per-image flags, per-split counts, qa.json + qa.md.

Checks (name: what trips it; default severity in ``conf/qa.yaml``):

* ``no_segment``: an image with no annotation (besides the background category).
* ``background``: share of pixels not covered by a non-background annotation > ``background_max``.
* ``small_mask``: a non-crowd instance with fewer than ``min_mask_px`` pixels.
* ``fragmented``: a non-crowd instance with more than ``max_components`` 8-connected components.
* ``jagged``: a non-crowd instance with pixel-edge perimeter² / area > ``max_jaggedness``.
* ``temporal_iou``: an object whose IoU with the same object in the previous frame of its video
  (images with ``video_id``, ordered by ``frame_index``) is < ``min_temporal_iou``.
* ``overlap``: more than ``max_overlap_px`` pixels covered by two or more non-crowd instances.
* ``format``: an annotation or image that cannot be read as declared (corrupt RLE, RLE / polygon
  size not the image size, image file missing or of another size than width / height).
  Package-level format problems (duplicate ids, unknown image / category ids) stop the run
  (exit 2), since the package cannot be read.
* ``class_drift`` (per split): a category whose pixel (or instance) share differs from the
  expected share by more than ``drift_tolerance`` (absolute). The expected share is
  ``expected_share`` of the category in dataset.yaml's taxonomy when any category has one;
  otherwise the share over the whole dataset (all checked splits pooled), i.e. drift between
  splits (with a single split nothing can drift).

* ``class_count`` (dataset): a class with fewer instances (non-crowd annotations, checked splits
  pooled) than ``count_base`` x its group factor (thin / deformable 3, transparent 5; see
  :mod:`segval.qa.targets`). Severity ``info`` by default: raise it to gate a release on it.

Only flagged images are listed in qa.json (``images``); counts cover every image.

Images are checked over ``qa.workers`` processes (:mod:`segval.qa.parallel`; the result does not depend
on the number), their RLEs parsed and measured a block at a time (:mod:`segval.qa.batch`).

When annotations name their annotator (``attributes.annotator`` or a top-level ``annotator``, see
:mod:`segval.qa.annotators`), qa.json gets an ``annotators`` block and qa.md a table: flag rates per
annotator, plus agreement and correction rates per annotator when those inputs are given. Some
annotations without an annotator are an error unless ``annotator_missing: unknown``.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from segval.report.markdown_safe import md_code, md_escape
from segval.errors import ConfigError, DatasetError
from segval.io import shipped_defaults, write_json, write_text
from segval.qa import checks as qc

log = logging.getLogger("segval")

SCHEMA_VERSION = 1
SEVERITIES = ("info", "warning", "error")
IMAGE_CHECKS = ("no_segment", "background", "small_mask", "fragmented", "jagged", "temporal_iou", "overlap", "format")
SPLIT_CHECKS = ("class_drift",)
DATASET_CHECKS = ("class_count",)
CHECKS = IMAGE_CHECKS + SPLIT_CHECKS + DATASET_CHECKS
FAIL_ON = (*SEVERITIES, "never")
#: with ``workers: auto``, splits with fewer images are checked in this process
AUTO_MIN_IMAGES = 500


#: the defaults of QAConfig: conf/qa.yaml's qa: block
_DEFAULTS = shipped_defaults("qa", "qa")


@dataclass(frozen=True)
class QAConfig:
    """Thresholds and severities; the defaults are ``conf/qa.yaml``'s ``qa:`` block (one place)."""

    background_max: float = _DEFAULTS["background_max"]
    min_mask_px: int = _DEFAULTS["min_mask_px"]
    max_components: int = _DEFAULTS["max_components"]
    max_jaggedness: float = _DEFAULTS["max_jaggedness"]
    min_temporal_iou: float = _DEFAULTS["min_temporal_iou"]
    max_overlap_px: int = _DEFAULTS["max_overlap_px"]
    drift_tolerance: float = _DEFAULTS["drift_tolerance"]
    drift_measure: str = _DEFAULTS["drift_measure"]
    check_image_files: bool = _DEFAULTS["check_image_files"]
    severity: Mapping[str, str] = field(default_factory=lambda: dict(_DEFAULTS["severity"]))
    fail_on: str = _DEFAULTS["fail_on"]
    count_base: int = _DEFAULTS["count_base"]
    count_factors: Mapping[str, float] = field(default_factory=lambda: dict(_DEFAULTS["count_factors"]))
    annotator_missing: str = _DEFAULTS["annotator_missing"]
    #: processes checking images ("auto" or >= 1); not part of the result (left out of to_dict)
    workers: Any = _DEFAULTS["workers"]

    @classmethod
    def from_mapping(cls, m: Mapping[str, Any]) -> QAConfig:
        """Build and check a config; ConfigError names a bad key or value."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(m) - known)
        if unknown:
            raise ConfigError(f"qa: unknown key(s) {unknown}; known: {sorted(known)}")
        kw = dict(m)
        if "severity" in kw:
            sev = dict(cls().severity)
            extra = sorted(set(kw["severity"]) - set(CHECKS))
            if extra:
                raise ConfigError(f"qa.severity: unknown check(s) {extra}; checks: {list(CHECKS)}")
            sev.update(kw["severity"])
            kw["severity"] = sev
        cfg = cls(**kw)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        for name, sev in self.severity.items():
            if sev not in SEVERITIES:
                raise ConfigError(f"qa.severity.{name} must be one of {list(SEVERITIES)}, got {sev!r}")
        if self.fail_on not in FAIL_ON:
            raise ConfigError(f"qa.fail_on must be one of {list(FAIL_ON)}, got {self.fail_on!r}")
        if not 0.0 <= float(self.background_max) <= 1.0:
            raise ConfigError(f"qa.background_max must be in [0, 1], got {self.background_max!r}")
        if not 0.0 <= float(self.min_temporal_iou) <= 1.0:
            raise ConfigError(f"qa.min_temporal_iou must be in [0, 1], got {self.min_temporal_iou!r}")
        if not 0.0 <= float(self.drift_tolerance) <= 1.0:
            raise ConfigError(f"qa.drift_tolerance must be in [0, 1], got {self.drift_tolerance!r}")
        for k in ("min_mask_px", "max_components", "max_overlap_px"):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ConfigError(f"qa.{k} must be a non-negative integer, got {v!r}")
        if float(self.max_jaggedness) <= 0:
            raise ConfigError(f"qa.max_jaggedness must be > 0, got {self.max_jaggedness!r}")
        if self.drift_measure not in ("pixels", "instances"):
            raise ConfigError(f"qa.drift_measure must be 'pixels' or 'instances', got {self.drift_measure!r}")
        from segval.qa.annotators import MISSING
        from segval.qa.targets import check_factors

        if self.annotator_missing not in MISSING:
            raise ConfigError(f"qa.annotator_missing must be one of {list(MISSING)}, got {self.annotator_missing!r}")
        if isinstance(self.count_base, bool) or not isinstance(self.count_base, int) or self.count_base < 1:
            raise ConfigError(f"qa.count_base must be an integer >= 1, got {self.count_base!r}")
        check_factors(self.count_factors)
        from segval.qa.parallel import resolve_workers

        resolve_workers(self.workers)

    def to_dict(self) -> dict[str, Any]:
        """The thresholds and severities (``workers`` left out: it changes no result)."""
        return {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in self.__dict__.items() if k != "workers"}


def _flag(cfg: QAConfig, check: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"check": check, "severity": cfg.severity[check], "message": message, **extra}


# ---------------------------------------------------------------------- per image
def check_image(split: Any, rec: Any, cfg: QAConfig, background_id: int | None,
                items: list | None = None, infos: list | None = None) -> tuple[list[dict], dict]:
    """Run the per-image checks on one image of a :class:`SplitData`.

    ``items``: ``split.masks(rec)`` when already parsed (:func:`segval.qa.batch.split_masks`);
    ``infos``: their :class:`~segval.qa.checks.MaskInfo` when already measured (None entries: not).

    Returns:
        (flags, state) where state holds ``tracks`` (for temporal IoU) and per-category
        ``pixels`` / ``instances`` counts (for the class distribution).
    """
    flags: list[dict[str, Any]] = []
    state: dict[str, Any] = {"tracks": [], "pixels": Counter(), "instances": Counter(), "ok": True}
    h, w = rec.height, rec.width
    if cfg.check_image_files:
        try:
            split.check_image_header(rec)
        except DatasetError as err:
            flags.append(_flag(cfg, "format", str(err)))
    try:
        if items is None:
            items = split.masks(rec)
    except DatasetError as err:
        flags.append(_flag(cfg, "format", str(err)))
        state["ok"] = False
        return flags, state
    n_fg = 0
    solid: list[tuple[int, qc.MaskInfo]] = []  # (annotation id, info) of non-crowd instances
    crowds: list[qc.MaskInfo] = []
    for j, (ann, rl) in enumerate(items):
        cat = int(ann["category_id"])
        ann_id = int(ann["id"])
        crowd = int(ann.get("iscrowd", 0) or 0) == 1
        is_bg = background_id is not None and cat == background_id
        state["instances"][cat] += 1
        if is_bg:  # its pixels are counted below, as the uncovered ones
            continue
        state["pixels"][cat] += rl.area
        n_fg += 1
        info = infos[j] if infos is not None and infos[j] is not None else qc.rle_info(rl.counts, rl.height, rl.width)
        if info.box is None:
            continue
        if crowd:
            crowds.append(info)
            continue
        solid.append((ann_id, info))
        state["tracks"].append((cat, qc.track_key(ann), info, ann_id))
        flags += _shape_flags(cfg, ann_id, info)
    if n_fg == 0:
        flags.append(_flag(cfg, "no_segment", "no annotated segment (besides background)", value=0, threshold=1))
    covered, n_over, touching = _coverage(h, w, solid, crowds)
    bg = 1.0 - covered / (h * w) if h * w else 0.0
    if n_fg and bg > cfg.background_max:
        flags.append(_flag(cfg, "background", f"background {bg:.1%} > {cfg.background_max:.0%}",
                           value=round(bg, 4), threshold=cfg.background_max))
    if background_id is not None:
        state["pixels"][background_id] += h * w - covered
    if len(solid) > 1 and n_over > cfg.max_overlap_px:
        ids = touching()
        flags.append(_flag(cfg, "overlap", f"{n_over} px covered by two or more instances (annotations {ids})",
                               annotation_ids=ids, value=n_over, threshold=cfg.max_overlap_px))
    return flags, state


def _shape_flags(cfg: QAConfig, ann_id: int, info: qc.MaskInfo) -> list[dict]:
    """``small_mask`` / ``fragmented`` / ``jagged`` flags of one non-crowd instance."""
    flags = []
    if info.area < cfg.min_mask_px:
        flags.append(_flag(cfg, "small_mask", f"annotation {ann_id}: {info.area} px < {cfg.min_mask_px}",
                           annotation_id=ann_id, value=info.area, threshold=cfg.min_mask_px))
    if info.components > cfg.max_components:
        flags.append(_flag(cfg, "fragmented",
                           f"annotation {ann_id}: {info.components} connected components > {cfg.max_components}",
                           annotation_id=ann_id, value=info.components, threshold=cfg.max_components))
    if info.jaggedness > cfg.max_jaggedness:
        flags.append(_flag(cfg, "jagged",
                           f"annotation {ann_id}: perimeter²/area {info.jaggedness:.1f} > {cfg.max_jaggedness:g}",
                           annotation_id=ann_id, value=round(info.jaggedness, 2), threshold=cfg.max_jaggedness))
    return flags


def _boxes_disjoint(infos: Sequence[qc.MaskInfo]) -> bool:
    """True when no two of the (non-empty) boxes intersect."""
    boxes = [i.box for i in infos]
    for k, (y0, x0, y1, x1) in enumerate(boxes):
        for b0, c0, b1, c1 in boxes[k + 1:]:
            if max(y0, b0) < min(y1, b1) and max(x0, c0) < min(x1, c1):
                return False
    return True


def _coverage(h: int, w: int, solid: Sequence[tuple[int, qc.MaskInfo]],
              crowds: Sequence[qc.MaskInfo]) -> tuple[int, int, Callable[[], list[int]]]:
    """Pixels covered by any instance (crowd ones included); pixels covered by two or more
    non-crowd instances; and a function giving the ids of the non-crowd instances touching those.

    Disjoint boxes, or masks that all have ``runs`` (:func:`segval.qa.checks.rle_info`), need no
    image-size array.
    """
    infos = [i for _, i in solid]
    if _boxes_disjoint([*infos, *crowds]):
        return sum(i.area for i in infos) + sum(i.area for i in crowds), 0, list
    if h < 2**20 and all(i.runs is not None for i in (*infos, *crowds)):
        union, n_over, touch = qc.run_cover(infos)
        covered = qc.run_cover([*infos, *crowds])[0] if crowds else union
        return covered, n_over, lambda: [a for (a, _), t in zip(solid, touch) if t]
    count = np.zeros((h, w), dtype=np.uint16)
    for i in infos:
        y0, x0, y1, x1 = i.box
        count[y0:y1, x0:x1] += qc.crop_of(i)
    covered_mask = count > 0
    for i in crowds:
        y0, x0, y1, x1 = i.box
        covered_mask[y0:y1, x0:x1] |= qc.crop_of(i)
    multi = count > 1
    return int(np.count_nonzero(covered_mask)), int(np.count_nonzero(multi)), lambda: [
        a for a, i in solid if np.any(multi[i.box[0]:i.box[2], i.box[1]:i.box[3]] & qc.crop_of(i))]


def temporal_flags(prev: Sequence[tuple], cur: Sequence[tuple], cfg: QAConfig, prev_image_id: int) -> list[dict]:
    """``temporal_iou`` flags for the current frame, given the tracks of the previous frame."""
    flags = []
    pairs = qc.match_instances([(c, t, i) for c, t, i, _ in prev], [(c, t, i) for c, t, i, _ in cur])
    for i, j, iou in pairs:
        if iou < cfg.min_temporal_iou:
            a_prev, a_cur = prev[i][3], cur[j][3]
            flags.append(_flag(cfg, "temporal_iou",
                               f"annotation {a_cur}: IoU {iou:.2f} < {cfg.min_temporal_iou:g} with annotation "
                               f"{a_prev} in the previous frame (image {prev_image_id})",
                               annotation_id=a_cur, previous_annotation_id=a_prev,
                               previous_image_id=prev_image_id, value=round(iou, 4),
                               threshold=cfg.min_temporal_iou))
    return flags


# ---------------------------------------------------------------------- expected distribution
def expected_shares(pkg: Any) -> dict[int, float] | None:
    """``expected_share`` per category id from dataset.yaml's taxonomy, or None if none is given.

    Raises:
        DatasetError: an ``expected_share`` that is not a number in [0, 1], or shares summing to > 1.
    """
    raw = pkg.metadata.get("taxonomy") if isinstance(pkg.metadata, Mapping) else None
    path = Path(pkg.root) / "dataset.yaml"
    if raw is None and path.is_file():
        try:
            raw = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("taxonomy")
        except yaml.YAMLError:
            raw = None
    if not isinstance(raw, list):
        return None
    out: dict[int, float] = {}
    for e in raw:
        if isinstance(e, Mapping) and e.get("expected_share") is not None:
            v = e["expected_share"]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= float(v) <= 1.0:
                raise DatasetError(f"taxonomy entry {e.get('name')!r}: expected_share must be a number in [0, 1], "
                                   f"got {v!r}", path=path)
            out[int(e["id"])] = float(v)
    if not out:
        return None
    if sum(out.values()) > 1.0 + 1e-6:
        raise DatasetError(f"taxonomy expected_share values sum to {sum(out.values()):.3f} > 1", path=path)
    return out


def _shares(counts: Mapping[int, int]) -> dict[int, float]:
    total = sum(counts.values())
    return {k: (v / total if total else 0.0) for k, v in counts.items()}


# ---------------------------------------------------------------------- the run
def run_qa(pkg: Any, cfg: QAConfig, *, splits: Sequence[str] | None = None, progress: bool = True,
           agreement: Mapping[str, Any] | None = None, corrections: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Run every check over the splits of a :class:`DatasetPackage`; returns the qa.json dict.

    ``agreement`` (a ``segval agreement`` result, one set per annotator) and ``corrections``
    (:func:`segval.qa.annotators.correction_rates`) add columns to the per-annotator table.
    """
    from segval.qa.annotators import annotator_index, annotator_report

    t0 = time.perf_counter()
    splits = list(splits) if splits else list(pkg.splits)
    for s in splits:
        pkg.split(s)  # ConfigError naming the splits if absent
    who = annotator_index(pkg, splits, missing=cfg.annotator_missing)  # DatasetError before any work
    tax = pkg.taxonomy
    bg_id = tax.background_id
    names = {c.id: c.name for c in tax}
    expected = expected_shares(pkg)
    images_out: list[dict[str, Any]] = []
    split_out: dict[str, Any] = {}
    dist_counts: dict[str, Counter] = {}
    for s in splits:
        sd = pkg.split(s)
        # videos first, in frame order, so consecutive frames are checked one after the other
        order = sorted(range(len(sd.images)), key=lambda k: (
            sd.images[k].video_id is None, sd.images[k].video_id or 0, sd.images[k].frame_index or 0, k))
        counts: Counter = Counter()
        sev_counts: Counter = Counter()
        dist: Counter = Counter()
        flagged = 0
        results = _check_images(sd, order, cfg, bg_id, progress=progress)
        for k, (flags, measure) in zip(order, results):
            rec = sd.images[k]
            dist.update(measure)
            if flags:
                flagged += 1
                for f in flags:
                    counts[f["check"]] += 1
                    sev_counts[f["severity"]] += 1
                images_out.append({"split": s, "image_id": rec.id, "file_name": rec.file_name,
                                   "video_id": rec.video_id, "frame_index": rec.frame_index, "flags": flags})
        dist_counts[s] = dist
        split_out[s] = {"images": len(sd.images), "annotations": sd.num_annotations, "flagged_images": flagged,
                        "counts": {c: counts.get(c, 0) for c in IMAGE_CHECKS + SPLIT_CHECKS},
                        "severity_counts": {v: sev_counts.get(v, 0) for v in SEVERITIES}, "findings": []}
    # class distribution drift, per split
    pooled: Counter = Counter()
    for c in dist_counts.values():
        pooled.update(c)
    if expected is not None:
        reference, ref_name = expected, "expected_share in dataset.yaml"
    else:
        reference, ref_name = _shares(pooled), "whole dataset (all checked splits)"
    for s in splits:
        obs = _shares(dist_counts[s])
        rows = {}
        for cid in sorted(set(reference) | set(obs)):
            if cid not in names:
                continue
            o, e = obs.get(cid, 0.0), reference.get(cid)
            rows[names[cid]] = {"id": cid, "share": round(o, 4), "expected": None if e is None else round(e, 4),
                                "diff": None if e is None else round(o - e, 4)}
            if e is not None and abs(o - e) > cfg.drift_tolerance and sum(dist_counts[s].values()):
                f = _flag(cfg, "class_drift", f"{names[cid]}: share {o:.1%} vs {e:.1%} expected ({ref_name}); "
                          f"|diff| > {cfg.drift_tolerance:.0%}", category_id=cid, value=round(o, 4),
                          expected=round(e, 4), threshold=cfg.drift_tolerance)
                split_out[s]["findings"].append(f)
                split_out[s]["counts"]["class_drift"] += 1
                split_out[s]["severity_counts"][f["severity"]] += 1
        split_out[s]["distribution"] = rows
    class_counts = _class_count_check(pkg, splits, cfg)
    total_counts = {c: sum(split_out[s]["counts"][c] for s in splits) for c in IMAGE_CHECKS + SPLIT_CHECKS}
    total_counts["class_count"] = len(class_counts["findings"])
    total_sev = {v: sum(split_out[s]["severity_counts"][v] for s in splits) for v in SEVERITIES}
    for f in class_counts["findings"]:
        total_sev[f["severity"]] += 1
    worst = next((v for v in reversed(SEVERITIES) if total_sev[v]), None)
    failing = cfg.fail_on != "never" and worst is not None and SEVERITIES.index(worst) >= SEVERITIES.index(cfg.fail_on)
    report = {
        "schema_version": SCHEMA_VERSION,
        "dataset": {"name": pkg.name, "version": str(pkg.version), "root": str(pkg.root)},
        "splits_checked": splits,
        "config": cfg.to_dict(),
        "distribution_reference": ref_name,
        "distribution_measure": cfg.drift_measure,
        "decision": {"status": "findings" if failing else "clean", "worst_severity": worst,
                     "fail_on": cfg.fail_on, "exit_code": 1 if failing else 0},
        "counts": {"images": sum(split_out[s]["images"] for s in splits),
                   "flagged_images": sum(split_out[s]["flagged_images"] for s in splits),
                   "checks": total_counts, "severity": total_sev},
        "splits": split_out,
        "class_counts": class_counts,
        "images": images_out,
        "seconds": round(time.perf_counter() - t0, 3),
    }
    report["annotators"] = annotator_report(report, pkg, who, agreement=agreement, corrections=corrections)
    return report


def _check_run(sd: Any, ks: Sequence[int], cfg: QAConfig, bg_id: int | None) -> list[tuple[list[dict], Counter]]:
    """(flags, class measure) of the images ``ks`` of a split, checked in this order (temporal IoU
    compares each video frame with the frame before it in ``ks``)."""
    out = []
    prev_video, prev_tracks, prev_id = None, None, None
    recs = [sd.images[k] for k in ks]
    for rec, items, infos in _measured(sd, recs, bg_id):
        flags, state = check_image(sd, rec, cfg, bg_id, items, infos)
        if rec.video_id is not None:
            if prev_video == rec.video_id and prev_tracks is not None and state["ok"]:
                flags += temporal_flags(prev_tracks, state["tracks"], cfg, prev_id)
            prev_video, prev_id = rec.video_id, rec.id
            prev_tracks = state["tracks"] if state["ok"] else None
        out.append((flags, state[cfg.drift_measure]))
    return out


def _measured(sd: Any, recs: Sequence[Any], bg_id: int | None, block: int = 256) -> Iterator[tuple]:
    """(rec, items or None, infos or None) per image: RLEs parsed and measured ``block`` images at a time."""
    from segval.qa.batch import image_infos, split_masks

    for b in range(0, len(recs), block):
        part = recs[b:b + block]
        items = split_masks(sd, part)
        yield from zip(part, items, image_infos(items, bg_id))


def _check_images(sd: Any, order: Sequence[int], cfg: QAConfig, bg_id: int | None, *,
                  progress: bool) -> list[tuple[list[dict], Counter]]:
    """:func:`_check_run` over ``order``, in chunks that keep each video whole, over ``cfg.workers``
    processes; the same result as one run in this process."""
    from tqdm import tqdm

    from segval.qa.parallel import map_ordered, resolve_workers, video_chunks

    workers = resolve_workers(cfg.workers)
    if cfg.workers == "auto" and len(order) < AUTO_MIN_IMAGES:
        workers = 1  # starting processes costs more than it saves
    chunks = video_chunks([sd.images[k].video_id for k in order], 8 * workers if workers > 1 else 1)
    with tqdm(total=len(order), desc=f"qa {sd.name}", unit="img", disable=not progress, mininterval=2.0) as bar:
        parts = map_ordered(lambda r: _check_run(sd, [order[i] for i in r], cfg, bg_id), chunks, workers,
                            done=lambda r: bar.update(len(r)))
    return [x for part in parts for x in part]


def _class_count_check(pkg: Any, splits: Sequence[str], cfg: QAConfig) -> dict[str, Any]:
    """The ``class_count`` rule over the checked splits pooled (see :mod:`segval.qa.targets`)."""
    from segval.qa.targets import DEFINITION, count_targets

    instances: Counter = Counter()
    for s in splits:
        sd = pkg.split(s)
        for rec in sd.images:
            instances.update(int(a["category_id"]) for a in sd.annotations_for(rec.id)
                             if not int(a.get("iscrowd", 0) or 0))
    rows = count_targets(instances, pkg.taxonomy, base=cfg.count_base, factors=cfg.count_factors)
    findings = [_flag(cfg, "class_count", f"{r['name']}: {r['instances']} instances < target {r['target']} "
                      f"({cfg.count_base} x {r['factor']:g}, {'transparent' if r['transparent'] else r['group']})",
                      category_id=r["id"], value=r["instances"], threshold=r["target"])
                for r in rows if not r["met"]]
    return {"definition": DEFINITION, "splits": list(splits), "rows": rows, "findings": findings}


# ---------------------------------------------------------------------- report
def format_markdown(report: Mapping[str, Any], *, max_listed: int = 50) -> str:
    """qa.md: decision, per-split counts table, distribution, and the first flagged images."""
    d = report["dataset"]
    dec = report["decision"]
    lines = [f"# QA report: {md_escape(d['name'])} {md_escape(d['version'])}", "",
             f"**{dec['status'].upper()}**: worst severity {dec['worst_severity'] or 'none'}, "
             f"fail_on = {dec['fail_on']} (exit code {dec['exit_code']})", "",
             f"{report['counts']['flagged_images']} of {report['counts']['images']} images flagged; "
             f"findings by severity: " + ", ".join(f"{k} {v}" for k, v in report["counts"]["severity"].items()), "",
             "## Counts per split", "",
             "| split | images | flagged | " + " | ".join(IMAGE_CHECKS + SPLIT_CHECKS) + " |",
             "|---|---:|---:|" + "---:|" * len(IMAGE_CHECKS + SPLIT_CHECKS)]
    for s, sp in report["splits"].items():
        lines.append(f"| {md_escape(s)} | {sp['images']} | {sp['flagged_images']} | "
                     + " | ".join(str(sp["counts"].get(c, 0)) for c in IMAGE_CHECKS + SPLIT_CHECKS) + " |")
    lines += ["", f"## Class distribution ({report['distribution_measure']}; reference: "
              f"{report['distribution_reference']})", ""]
    for s, sp in report["splits"].items():
        lines += [f"### {md_escape(s)}", "", "| class | share | expected | diff |", "|---|---:|---:|---:|"]
        for name, r in sp["distribution"].items():
            exp = "" if r["expected"] is None else f"{r['expected']:.1%}"
            diff = "" if r["diff"] is None else f"{r['diff']:+.1%}"
            lines.append(f"| {md_escape(name)} | {r['share']:.1%} | {exp} | {diff} |")
        for f in sp["findings"]:
            lines.append(f"- **{f['severity']}** {f['check']}: {md_escape(f['message'])}")
        lines.append("")
    cc = report.get("class_counts")
    if cc:
        from segval.qa.targets import format_count_targets

        lines += [f"## Instances per class vs target (splits {md_escape(', '.join(cc['splits']))})", "", cc["definition"] + ".", "",
                  format_count_targets(cc["rows"]), ""]
        below = [r["name"] for r in cc["rows"] if not r["met"]]
        sev = cc["findings"][0]["severity"] if cc["findings"] else None
        lines += [f"{len(below)} of {len(cc['rows'])} classes below their target" + (f" ({sev}): {md_escape(', '.join(below))}"
                                                                                 if below else "") + ".", ""]
    if report.get("annotators"):
        from segval.qa.annotators import format_annotators

        lines += [format_annotators(report["annotators"])]
    imgs = report["images"]
    lines += ["## Flagged images", ""]
    if not imgs:
        lines.append("None.")
    for item in imgs[:max_listed]:
        lines.append(f"- {md_code(item['split'] + '/' + item['file_name'])} (image {item['image_id']}): "
                     + "; ".join(f"**{f['severity']}** {f['check']}: {md_escape(f['message'])}" for f in item["flags"]))
    if len(imgs) > max_listed:
        lines.append(f"- ... {len(imgs) - max_listed} more in qa.json")
    return "\n".join(lines) + "\n"


def write_report(report: Mapping[str, Any], out_dir: str | Path, *, max_listed: int = 50) -> tuple[Path, Path]:
    """Write qa.json and qa.md atomically into ``out_dir``."""
    out_dir = Path(out_dir)
    j = write_json(out_dir / "qa.json", report)
    m = write_text(out_dir / "qa.md", format_markdown(report, max_listed=max_listed))
    if report.get("annotators"):
        from segval.qa.annotators import annotators_csv

        write_text(out_dir / "annotators.csv", annotators_csv(report["annotators"]))
    return j, m
