"""What goes into the annotation guideline of a package (``segval dataset guideline``).

:func:`build_guideline` reads a package once (:func:`segval.qa.examples.scan_instances`) and decides the content; the
documents are drawn by :mod:`segval.report.guideline`. Everything is deterministic for the same inputs.

* **Class table**: id, name, colour, group, thing / stuff, ``description`` (dataset.yaml), pixel share
  (pixels of the class in the semantic label maps of the scanned splits / all their pixels), instances.
* **Positive examples** per class: ``examples`` non-crowd instances picked to be diverse in size, occlusion
  and position, never two from one video while another video has one
  (:func:`segval.qa.examples.select_diverse`).
* **Hard examples** per class: queue items of the class (their ``reason``), the class's ``worst_images``
  in ``findings.json``, then the images of ``per_image.csv`` where the model missed most pixels of it.
* **Rules** seeded from the taxonomy (:func:`class_rules`): "label visible pixels only" for the groups in
  ``visible_only_groups`` (thin, deformable); the split rule for a ``part_of`` pair; stuff and background
  rules; the minimum size (``min_size``, 20 x 20 px) illustrated with the smallest instances.
* **Pairs to clarify** (:func:`confusion_pairs`): the queue's ``label_confusions`` and the confusion causes
  of ``findings.json``, merged per unordered pair, with crops of both classes.

A run, queue or agreement file of another taxonomy is refused (:func:`check_inputs`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


from segval.errors import ConfigError, DatasetError
from segval.qa.examples import (CropRequest, InstanceRef, Scan, instance_order, read_crops, scan_instances,
                                 select_diverse)
from segval.report.guideline import Crop
from segval.report.mosaic import crop_box

__all__ = ["Crop", "GuidelineConfig", "GuidelineContent", "build_guideline", "changelog_entry", "check_inputs",
           "check_into_package", "class_anchor", "class_rules", "class_section_title", "confusion_pairs"]

SCHEMA_VERSION = 1


@dataclass
class GuidelineConfig:
    """What the guideline shows (``conf/dataset_guideline.yaml``).

    Attributes:
        examples: positive examples per class (4-6 reads well).
        hard_examples: hard examples per class (at most).
        min_size: the minimum annotation size ``[width, height]`` in px.
        smallest: instances shown to illustrate the minimum size.
        max_pairs: confusion pairs shown (most evidence first).
        pair_crops: crops of each class per pair.
        splits: splits scanned for examples (None: all).
        visible_only_groups: taxonomy groups that get the "label visible pixels only" rule.
        pad: context around an instance's box, as a fraction of its size on each side.
    """

    examples: int = 5
    hard_examples: int = 4
    min_size: tuple[int, int] = (20, 20)
    smallest: int = 6
    max_pairs: int = 8
    pair_crops: int = 2
    splits: list[str] | None = None
    visible_only_groups: tuple[str, ...] = ("thin", "deformable")
    pad: float = 0.25

    def __post_init__(self) -> None:
        for key in ("examples", "hard_examples", "smallest", "max_pairs", "pair_crops"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ConfigError(f"guideline.{key} must be an integer >= 0, got {v!r}")
        size = tuple(self.min_size) if isinstance(self.min_size, (list, tuple)) else ()
        if len(size) != 2 or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in size):
            raise ConfigError(f"guideline.min_size must be [width, height] in px (integers >= 1), got {self.min_size!r}")
        self.min_size = (int(size[0]), int(size[1]))
        if not 0 <= float(self.pad) <= 2:
            raise ConfigError(f"guideline.pad must be in [0, 2], got {self.pad!r}")
        self.visible_only_groups = tuple(str(g) for g in self.visible_only_groups)


@dataclass
class GuidelineContent:
    """``doc``: the guideline as JSON (``guideline.json``); ``crops``: crop key -> :class:`Crop`."""

    doc: dict[str, Any]
    crops: dict[str, Crop] = field(default_factory=dict)


def class_anchor(cat_id: int) -> str:
    """The HTML / Markdown anchor of a class section: ``class-<id>``."""
    return f"class-{int(cat_id)}"


def class_section_title(cat_id: int, name: str) -> str:
    """The heading of a class section (the pilot names sections by it)."""
    return f"Class {int(cat_id)}: {name}"


# ---------------------------------------------------------------------------------------- inputs
def _names_ids(findings: Mapping[str, Any]) -> tuple[list[str], list[int] | None]:
    ds = findings.get("dataset") or {}
    if ds.get("class_names"):
        return [str(n) for n in ds["class_names"]], [int(i) for i in ds["taxonomy_ids"]] \
            if ds.get("taxonomy_ids") else None
    classes = findings.get("classes") or findings.get("per_class") or []
    return [str(c.get("name")) for c in classes], [int(c["id"]) for c in classes] \
        if classes and all("id" in c for c in classes) else None


def check_inputs(tax: Any, *, findings: Mapping[str, Any] | None = None, queue: Mapping[str, Any] | None = None,
                 agreement: Mapping[str, Any] | None = None, paths: Mapping[str, Any] | None = None) -> None:
    """Refuse a run (findings.json or metrics.json), queue or agreement file of another taxonomy.

    Raises:
        DatasetError: names the file, its classes and the package's.
    """
    paths = paths or {}
    have = list(tax.names)
    if findings is not None:
        names, ids = _names_ids(findings)
        if names != have or (ids is not None and ids != list(tax.ids)):
            raise DatasetError(
                f"the run was made on another taxonomy: its classes are {list(zip(ids or [], names)) or names}, this "
                f"package has {list(zip(tax.ids, have))}; give a run (run_dir=) of this dataset's taxonomy",
                path=paths.get("findings"))
    if queue is not None:
        by_id = {c.id: c.name for c in tax}
        for it in queue.get("items") or []:
            cid, name = it.get("category_id"), it.get("class")
            if (cid is not None and by_id.get(int(cid)) != name) or (cid is None and name and name not in have):
                raise DatasetError(f"queue item {it.get('item_id')!r} has class {name!r} (id {cid}), which is not a "
                                   f"class of this package's taxonomy {list(zip(tax.ids, have))}: the queue was built "
                                   "on another taxonomy", path=paths.get("queue"))
        for e in queue.get("label_confusions") or []:
            bad = [n for n in e.get("pair") or [] if n not in have]
            if bad:
                raise DatasetError(f"label_confusions name {bad}, not classes of this package ({have}): the queue "
                                   "was built on another taxonomy", path=paths.get("queue"))
    if agreement is not None:
        bad = sorted(set(agreement.get("per_class") or {}) - set(have))
        if bad:
            raise DatasetError(f"the agreement file names classes {bad} that this package lacks ({have}): it was "
                               "measured on another taxonomy", path=paths.get("agreement"))


# ---------------------------------------------------------------------------------------- rules
def class_rules(cat: Any, tax: Any, cfg: GuidelineConfig) -> list[dict[str, str]]:
    """The rules of one class seeded from the taxonomy: ``[{"kind", "text"}]`` (kinds: background, stuff,
    visible_pixels, split, transparent)."""
    rules: list[dict[str, str]] = []
    n = cat.name
    if cat.id == tax.background_id:
        return [{"kind": "background", "text": "Pixels that no annotation covers are background: never draw a "
                                               f"{n} region; leave what belongs to no class unlabelled."}]
    if not cat.isthing:
        rules.append({"kind": "stuff", "text": f"{n} is stuff: label every visible pixel of it as one region; "
                                                "there are no instances to separate."})
    if cat.group in cfg.visible_only_groups:
        how = ("trace it where it can be seen, as thin as it looks; do not bridge a gap where something lies "
               "over it, and do not guess its hidden course") if cat.group == "thin" else \
              ("follow its current shape (folds, sag, bends), not an idealised outline; parts hidden under "
               "something else stay unlabelled")
        rules.append({"kind": "visible_pixels", "text": f"Label visible pixels only ({cat.group}): {how}."})
    if cat.part_of is not None:
        rules.append({"kind": "split", "text": f"Split rule: {n} is a part of {cat.part_of}. Its pixels are "
                                               f"labelled {n}, never {cat.part_of}; the boundary is where the {n} "
                                               f"joins the {cat.part_of} (the joint or mount), and the rest of the "
                                               f"{cat.part_of} is labelled {cat.part_of}."})
    parts = [c.name for c in tax if c.part_of == n]
    if parts:
        rules.append({"kind": "split", "text": f"Split rule: {', '.join(parts)} {'is a part' if len(parts) == 1 else 'are parts'} "
                                               f"of {n} but labelled as {'its own class' if len(parts) == 1 else 'their own classes'}: "
                                               f"label the {n} up to where the {' / '.join(parts)} begins."})
    if cat.transparent:
        rules.append({"kind": "transparent", "text": f"{n} is transparent: label its whole visible extent, "
                                                     "including what is seen through it."})
    return rules


def general_rules(tax: Any, cfg: GuidelineConfig) -> list[dict[str, str]]:
    """The rules for every class: occlusion, minimum size, and which classes are stuff."""
    w, h = cfg.min_size
    rules = [
        {"kind": "occlusion", "text": "Occlusion: an object partly hidden by another is labelled where it is "
                                      "visible only; when an occluder cuts it in two, both visible pieces are one "
                                      "instance. The object in front keeps its whole visible outline."},
        {"kind": "min_size", "text": f"Minimum size: an object whose visible extent is smaller than {w} x {h} px "
                                     "(width x height of its box; for thin classes its length under "
                                     f"{max(w, h)} px) is not annotated as an instance; its pixels stay with the "
                                     "region around it."},
    ]
    stuff = [c.name for c in tax if not c.isthing and c.id != tax.background_id]
    if stuff:
        rules.append({"kind": "stuff", "text": f"Stuff classes ({', '.join(stuff)}): one region per class, every "
                                               "visible pixel, no instances."})
    return rules


# ---------------------------------------------------------------------------------------- hard examples, pairs
def _metric_key(name: str) -> str:
    return re.sub(r"/", "_", name)


def hard_candidates(cat: Any, *, findings: Mapping[str, Any] | None, per_image: Sequence[Mapping[str, Any]] | None,
                    queue: Mapping[str, Any] | None, k: int) -> list[dict[str, Any]]:
    """Up to ``k`` flagged images of class ``cat``: ``[{"source", "split", "image_id", "reason", "region",
    "annotation_ids"}]``, queue items first (rank order), then findings' worst images, then per_image.csv rows."""
    out: list[dict[str, Any]] = []
    seen: set[tuple[str | None, int]] = set()

    def add(source: str, split: str | None, image_id: Any, reason: str, region: Any = None,
            annotation_ids: Sequence[int] = ()) -> None:
        key = (split, int(image_id))
        if len(out) < k and key not in seen:
            seen.add(key)
            out.append({"source": source, "split": split, "image_id": int(image_id), "reason": reason,
                        "region": list(region) if region else None, "annotation_ids": [int(a) for a in annotation_ids]})

    for it in sorted((queue or {}).get("items") or [], key=lambda it: it.get("rank", 0)):
        if it.get("class") == cat.name:
            add("queue", queue.get("split"), it["image_id"], f"relabel queue rank {it.get('rank')}: {it.get('reason')}",
                it.get("region"), it.get("annotation_ids") or ())
    split = (findings or {}).get("split")
    for c in (findings or {}).get("classes") or []:
        if c.get("name") == cat.name:
            for w in c.get("worst_images") or []:
                add("findings", split, w["image_id"], f"weak class in the run: {w.get('reason')}")
    col = f"disagree_{_metric_key(cat.name)}"
    rows = [r for r in per_image or [] if (r.get(col) or 0) > 0]
    rows.sort(key=lambda r: (-r[col], r.get("label_quality") if r.get("label_quality") is not None else math.inf,
                             int(r["image_id"])))
    for r in rows:
        lq = r.get("label_quality")
        add("per_image", split, r["image_id"], f"the model labelled {r[col]:,} px of {cat.name} as another class"
            + (f" (label quality {lq:.3f})" if isinstance(lq, float) and not math.isnan(lq) else ""))
    return out


def confusion_pairs(findings: Mapping[str, Any] | None, queue: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """Class pairs to clarify, merged per unordered pair: ``[{"pair": [a, b], "annotations": n (queue's
    label_confusions), "directions", "images": [queue image ids], "model": [{"class", "partner", "share",
    "pixels", "symmetric"}] (findings' confusion causes)}]``, most annotations, then most pixels first."""
    pairs: dict[tuple[str, str], dict[str, Any]] = {}

    def entry(a: str, b: str) -> dict[str, Any]:
        key = tuple(sorted((a, b)))
        return pairs.setdefault(key, {"pair": list(key), "annotations": 0, "directions": {}, "images": [],
                                      "model": []})

    for e in (queue or {}).get("label_confusions") or []:
        a, b = e["pair"]
        d = entry(a, b)
        d["annotations"] += int(e.get("annotations") or 0)
        d["directions"].update({str(k): int(v) for k, v in (e.get("directions") or {}).items()})
        d["images"] = sorted(set(d["images"]) | {int(i) for i in e.get("images") or []})
    for c in (findings or {}).get("classes") or []:
        for cause in c.get("causes") or []:
            ev = cause.get("evidence") or {}
            if cause.get("cause") == "confusion" and ev.get("partner") and ev["partner"] != c.get("name"):
                entry(c["name"], ev["partner"])["model"].append({
                    "class": c["name"], "partner": ev["partner"], "pixels": int(ev.get("pixels") or 0),
                    "share": ev.get("share_of_gt", ev.get("share_of_predictions")), "symmetric": bool(ev.get("symmetric"))})
    return sorted(pairs.values(), key=lambda d: (-d["annotations"], -sum(m["pixels"] for m in d["model"]), d["pair"]))


# ---------------------------------------------------------------------------------------- crops
def _example_caption(r: InstanceRef) -> str:
    return (f"{r.split}/{r.file_name} (image {r.image_id}, annotation {r.annotation_id}): {r.bbox[2]}x{r.bbox[3]} px, "
            f"outline {100 * r.occlusion:.0f}% against other objects or the border")


def _example_key(r: InstanceRef) -> str:
    return f"ex_{r.split}_{r.image_id}_{r.annotation_id}"


def _request(r: InstanceRef, pkg: Any, pad: float, caption: str | None = None) -> CropRequest:
    rec = pkg.split(r.split).image(r.image_id)
    return CropRequest(_example_key(r), r.split, r.image_id, crop_box(r.bbox, rec.height, rec.width, pad=pad),
                        annotation_ids=[r.annotation_id], caption=caption or _example_caption(r))


def _hard_request(h: dict[str, Any], cat: Any, key: str, pkg: Any, by_image: Mapping[tuple[str, int], list[InstanceRef]],
                  pad: float) -> CropRequest | None:
    """The crop of a hard example: the queue item's region, else the class's instances in the image, else the
    whole image; None when the image is not in the package."""
    split = h["split"]
    if split not in pkg.splits:
        return None
    sd = pkg.split(split)
    try:
        rec = sd.image(h["image_id"])
    except KeyError:
        return None
    h["file_name"] = rec.file_name
    mine = [r for r in by_image.get((split, rec.id), []) if r.category_id == cat.id]
    if h.get("region"):
        window = crop_box(h["region"], rec.height, rec.width, pad=pad)
    elif mine:
        x0 = min(r.bbox[0] for r in mine)
        y0 = min(r.bbox[1] for r in mine)
        x1 = max(r.bbox[0] + r.bbox[2] for r in mine)
        y1 = max(r.bbox[1] + r.bbox[3] for r in mine)
        window = crop_box((x0, y0, x1 - x0, y1 - y0), rec.height, rec.width, pad=pad)
    else:
        window = None
        h["reason"] += f" (no {cat.name} annotated in this image)"
    return CropRequest(key, split, rec.id, window, annotation_ids=h.get("annotation_ids") or None,
                        category_ids={cat.id}, caption=f"{split}/{rec.file_name} (image {rec.id}): {h['reason']}")


# ---------------------------------------------------------------------------------------- the document
def below_min_size(r: InstanceRef, group: str, min_size: tuple[int, int]) -> bool:
    """True when the instance's box is under ``min_size`` (w, h); for a thin class only its length counts."""
    w, h = r.bbox[2], r.bbox[3]
    if group == "thin":
        return max(w, h) < max(min_size)
    return w < min_size[0] or h < min_size[1]


def _agreement_of(agreement: Mapping[str, Any] | None, name: str) -> dict[str, Any] | None:
    if not agreement:
        return None
    row = next((c for c in agreement.get("classes") or [] if c.get("name") == name), None)
    iou = (agreement.get("per_class") or {}).get(name, (row or {}).get("IoU"))
    if iou is None and row is None:
        return None
    target = (row or {}).get("target")
    return {"IoU": iou, "target": target,
            "flagged": bool((row or {}).get("flagged")) if row else (iou is not None and target is not None
                                                                     and iou < target)}


def _class_entries(pkg: Any, scan: Scan, cfg: GuidelineConfig, agreement: Mapping[str, Any] | None,
                   requests: list[CropRequest]) -> list[dict[str, Any]]:
    tax = pkg.taxonomy
    total = int(scan.pixels.sum())
    classes = []
    for cat in tax:
        mine = [r for r in scan.instances if r.category_id == cat.id]
        picks = select_diverse(mine, cfg.examples, min_size=cfg.min_size)
        requests += [_request(r, pkg, cfg.pad) for r in picks]
        classes.append({
            "id": cat.id, "name": cat.name, "color": list(cat.color), "group": cat.group, "isthing": cat.isthing,
            "transparent": cat.transparent, "description": cat.description, "part_of": cat.part_of,
            "parts": [c.name for c in tax if c.part_of == cat.name], "background": cat.id == tax.background_id,
            "pixel_share": float(scan.pixels[cat.id] / total) if total else 0.0, "instances": len(mine),
            "below_min_size": sum(1 for r in mine if below_min_size(r, cat.group, cfg.min_size)),
            "agreement": _agreement_of(agreement, cat.name), "anchor": class_anchor(cat.id),
            "title": class_section_title(cat.id, cat.name), "rules": class_rules(cat, tax, cfg),
            "examples": [{"key": _example_key(r), "caption": _example_caption(r), **r.to_dict()} for r in picks],
            "no_examples": not picks and cat.id != tax.background_id, "hard": None,
        })
    return classes


def _hard_section(pkg: Any, scan: Scan, classes: list[dict[str, Any]], cfg: GuidelineConfig, *,
                  findings: Mapping[str, Any] | None, per_image: Sequence[Mapping[str, Any]] | None,
                  queue: Mapping[str, Any] | None, run_split: str | None, notes: list[str],
                  requests: list[CropRequest]) -> None:
    by_image: dict[tuple[str, int], list[InstanceRef]] = {}
    for r in scan.instances:
        by_image.setdefault((r.split, r.image_id), []).append(r)
    if findings is not None and run_split and not findings.get("split"):
        findings = {**findings, "split": run_split}
    if findings is None and per_image is not None:
        findings = {"split": run_split, "classes": []}
    skipped = 0
    for entry in classes:
        if entry["background"]:
            entry["hard"] = []
            continue
        cat = pkg.taxonomy.category(entry["id"])
        found = hard_candidates(cat, findings=findings, per_image=per_image, queue=queue, k=4 * cfg.hard_examples)
        hard = []
        for h in found:
            if len(hard) >= cfg.hard_examples:
                break
            req = _hard_request(h, cat, f"hard_{cat.id}_{len(hard)}", pkg, by_image, cfg.pad)
            if req is None:
                skipped += 1
                continue
            requests.append(req)
            hard.append({"key": req.key, "caption": req.caption, **h})
        entry["hard"] = hard
    if skipped:
        notes.append(f"{skipped} flagged image(s) of the run / queue are not in this package (another split or "
                     "version) and are left out of the hard examples")


def _min_size_section(pkg: Any, scan: Scan, cfg: GuidelineConfig, classes: Sequence[Mapping[str, Any]],
                      requests: list[CropRequest]) -> dict[str, Any]:
    names = {c.id: c.name for c in pkg.taxonomy}
    groups = {c.id: c.group for c in pkg.taxonomy}
    picks: list[InstanceRef] = []
    images: set[tuple[str, int]] = set()
    for r in sorted(scan.instances, key=lambda r: (r.area, instance_order(r))):
        if len(picks) >= cfg.smallest:
            break
        if (r.split, r.image_id) not in images:
            images.add((r.split, r.image_id))
            picks.append(r)
    examples = []
    for r in picks:
        verdict = "below the minimum: not annotated" if below_min_size(r, groups[r.category_id], cfg.min_size) \
            else "at or above the minimum"
        caption = f"{names[r.category_id]}: {r.bbox[2]}x{r.bbox[3]} px, {r.area} px ({verdict}); " \
                  f"{r.split}/{r.file_name}, annotation {r.annotation_id}"
        requests.append(_request(r, pkg, cfg.pad, caption))
        examples.append({"key": _example_key(r), "caption": caption, "class": names[r.category_id], **r.to_dict()})
    return {"size": list(cfg.min_size), "examples": examples,
            "below": {c["name"]: c["below_min_size"] for c in classes if c["below_min_size"]}}


def _pairs_section(pkg: Any, scan: Scan, classes: Sequence[Mapping[str, Any]], cfg: GuidelineConfig, *,
                   findings: Mapping[str, Any] | None, queue: Mapping[str, Any] | None,
                   requests: list[CropRequest]) -> list[dict[str, Any]]:
    by_name = {c["name"]: c for c in classes}
    qsplit = (queue or {}).get("split")
    out = []
    for p in confusion_pairs(findings, queue)[: cfg.max_pairs]:
        crops: dict[str, list[str]] = {}
        for name in p["pair"]:
            cid = by_name[name]["id"]
            flagged = {int(i) for i in p["images"]}
            mine = sorted((r for r in scan.instances if r.category_id == cid and r.split == qsplit
                           and r.image_id in flagged), key=lambda r: (-r.area, instance_order(r)))
            chosen: list[InstanceRef] = []
            for r in mine:  # one per image, the largest instance of the class there
                if len(chosen) < cfg.pair_crops and r.image_id not in {c.image_id for c in chosen}:
                    chosen.append(r)
            keys = []
            for r in chosen:
                requests.append(_request(r, pkg, cfg.pad, _example_caption(r) + "; an image where annotators "
                                                                               "disagreed on this pair"))
                keys.append(_example_key(r))
            keys += [e["key"] for e in by_name[name]["examples"] if e["key"] not in keys][: cfg.pair_crops - len(keys)]
            crops[name] = keys
        out.append({**p, "crops": crops, "sections": [by_name[n]["anchor"] for n in p["pair"]]})
    return out


def build_guideline(pkg: Any, *, findings: Mapping[str, Any] | None = None,
                    per_image: Sequence[Mapping[str, Any]] | None = None, queue: Mapping[str, Any] | None = None,
                    agreement: Mapping[str, Any] | None = None, run_split: str | None = None,
                    config: GuidelineConfig | None = None, sources: Mapping[str, Any] | None = None,
                    progress: Callable[[Iterable[Any]], Iterable[Any]] | None = None) -> GuidelineContent:
    """The guideline of ``pkg`` (see the module doc) with the crops it shows.

    Args:
        findings: ``findings.json`` of an analyze run (or the ``metrics.json`` of a run, for the taxonomy check).
        per_image: rows of the run's ``per_image.csv`` (images of ``run_split``).
        queue: ``queue.json`` of ``segval relabel queue``.
        agreement: ``agreement.json`` of ``segval agreement``.
        sources: file paths of these inputs (recorded in the document and named in errors).

    Raises:
        DatasetError: an input of another taxonomy (:func:`check_inputs`).
    """
    from segval.dataset.content_hash import dataset_content_hash

    cfg = config or GuidelineConfig()
    sources = dict(sources or {})
    check_inputs(pkg.taxonomy, findings=findings, queue=queue, agreement=agreement, paths=sources)
    scan = scan_instances(pkg, cfg.splits, progress=progress)
    notes: list[str] = []
    requests: list[CropRequest] = []
    classes = _class_entries(pkg, scan, cfg, agreement, requests)
    has_run = findings is not None or per_image is not None or queue is not None
    if has_run:
        _hard_section(pkg, scan, classes, cfg, findings=findings if findings and "classes" in findings else None,
                      per_image=per_image, queue=queue, run_split=run_split, notes=notes, requests=requests)
    else:
        notes.append("No run and no relabel queue were given, so there are no hard examples: give run_dir=<segval "
                     "analyze run> and / or queue=<queue.json> to add them.")
    for ver, what in (((findings or {}).get("dataset") or {}).get("version"), "run"), \
                     (((queue or {}).get("dataset") or {}).get("version"), "queue"):
        if ver is not None and str(ver) != str(pkg.version):
            notes.append(f"the {what} was made on version {ver}; this guideline shows version {pkg.version} (the "
                         "same taxonomy): its flagged images are shown as labelled in this version")
    doc = {
        "schema_version": SCHEMA_VERSION,
        "dataset": {"name": pkg.name, "version": str(pkg.version), "root": str(pkg.root),
                    "content_hash": dataset_content_hash(pkg), "description": pkg.description},
        "scanned": {"splits": list(cfg.splits or pkg.splits), "images": scan.images,
                    "instances": len(scan.instances)},
        "config": {"examples": cfg.examples, "hard_examples": cfg.hard_examples, "min_size": list(cfg.min_size),
                   "visible_only_groups": list(cfg.visible_only_groups)},
        "inputs": {k: (str(v) if v is not None else None) for k, v in sources.items()},
        "notes": notes,
        "general_rules": general_rules(pkg.taxonomy, cfg),
        "classes": classes,
        "hard_examples": has_run,
        "min_size": _min_size_section(pkg, scan, cfg, classes, requests),
        "pairs": _pairs_section(pkg, scan, classes, cfg, findings=findings, queue=queue, requests=requests),
    }
    unique = {r.key: r for r in requests}
    return GuidelineContent(doc, read_crops(pkg, list(unique.values())))


# ---------------------------------------------------------------------------------------- into the package
def check_into_package(pkg: Any) -> None:
    """Refuse to write into a plain COCO export or a read-only package (a published release).

    Raises:
        ConfigError: the package cannot take the guideline, with what to do instead.
    """
    import stat
    from pathlib import Path

    root = Path(pkg.root)
    meta = root / "dataset.yaml"
    if not meta.is_file():
        raise ConfigError("into_package=true needs a dataset package (data.root=<folder holding dataset.yaml>), not "
                          "a plain COCO export")
    read_only = [p for p in (root, meta, root / "CHANGELOG.md", root / "guideline")
                 if p.exists() and not p.stat().st_mode & stat.S_IWUSR]
    if read_only:
        raise ConfigError(f"{root} is read-only ({read_only[0]}): a published release is never changed. Write the "
                          "guideline into the working package you release from (into_package=true there), or "
                          "leave into_package=false to write it into the run directory")


def changelog_entry(doc: Mapping[str, Any], folder: str = "guideline") -> str:
    """The CHANGELOG entry recording a guideline written into the package."""
    from datetime import date

    ds = doc["dataset"]
    n_ex = sum(len(c["examples"]) for c in doc["classes"])
    pairs = ", ".join(" vs ".join(p["pair"]) for p in doc["pairs"]) or "none"
    return (f"## {ds['version']} - annotation guideline ({date.today().isoformat()})\n\n"
            f"- `{folder}/guideline.md` and `{folder}/guideline.html` written by `segval dataset guideline` from "
            f"content hash `{ds['content_hash']}`: {len(doc['classes'])} classes, {n_ex} positive examples, "
            f"minimum size {doc['min_size']['size'][0]}x{doc['min_size']['size'][1]} px, pairs to clarify: {pairs}.\n")
