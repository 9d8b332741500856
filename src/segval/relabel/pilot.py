"""The guideline pilot (``segval qa pilot``): M annotators label the same N images from scratch, and every
class they agree on less than ``threshold`` (80 %) sends its guideline section back to be clarified.

* **Plan** (:func:`plan_pilot`): N images of one split stratified by main class (largest remainder,
  :func:`segval.qa.sampling.review_sample`) and spread over videos; per annotator a Label Studio task file +
  labeling config and a CVAT "COCO 1.0" package of those images (the functions of ``segval relabel export``),
  empty by default (``prefill=True`` shows the current labels as predictions, which biases agreement up);
  the manifest ``pilot.json`` with ``status: planned``.
* **Score** (:func:`score_pilot`): the returned sets (Label Studio JSON exports or COCO files / CVAT zips,
  matched to the package's images by ``data.image_id`` / ``file_name``) must each cover exactly the pilot's
  images. Per class the agreement of :mod:`segval.qa.agreement` (IoU summed over images per pair of sets,
  mean over pairs); a class under ``threshold`` is flagged with its most confused partner (the class the
  other annotators gave its pixels most often, counted over every pair both ways) and the images where the
  annotators agreed least on it. ``status``: ``passed`` (no class flagged) or ``failed``.

This lives in ``relabel`` because it writes the annotator task files with :mod:`segval.relabel.labelstudio`
and :mod:`segval.relabel.cvat` and reads their exports back; the dependency rule forbids ``qa`` from
importing ``relabel``, and ``relabel`` may import ``qa`` (sampling, agreement, guideline section names).
"""

from __future__ import annotations

import itertools
import os
import re
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from segval.dataset.semantic import rasterize_semantic
from segval.errors import ConfigError, DatasetError
from segval.io import atomic_dir
from segval.qa.agreement import AgreementAccumulator
from segval.qa.guideline import class_anchor, class_section_title
from segval.qa.sampling import review_sample

__all__ = ["annotator_names", "format_pilot", "plan_pilot", "read_returned_set", "score_pilot", "write_tasks"]

SCHEMA_VERSION = 1
KIND = "segval guideline pilot"
FORMATS = ("labelstudio", "cvat", "both")


def annotator_names(annotators: int | Sequence[str]) -> list[str]:
    """``3`` -> ``["annotator_1", "annotator_2", "annotator_3"]``; a list of names is checked (folder names,
    unique, at least two)."""
    if isinstance(annotators, int) and not isinstance(annotators, bool):
        names = [f"annotator_{k + 1}" for k in range(annotators)]
    else:
        names = [str(a) for a in annotators]
    if len(names) < 2:
        raise ConfigError(f"a pilot needs at least two annotators to measure agreement, got {names}")
    bad = [n for n in names if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", n)]
    if bad or len(set(names)) != len(names):
        raise ConfigError(f"annotator names must be unique folder names (letters, digits, _ . -), got {names}")
    return names


# ---------------------------------------------------------------------------------------- plan
def plan_pilot(pkg: Any, split: str, *, images: int = 20, annotators: int | Sequence[str] = 3, seed: int = 0,
               threshold: float = 0.8, guideline: str | None = None) -> dict[str, Any]:
    """The pilot manifest (``status: planned``): the sampled images, the annotators and the threshold.

    Raises:
        ConfigError: fewer than two annotators, a threshold outside (0, 1], more images than the split has.
    """
    from segval.dataset.content_hash import dataset_content_hash

    names = annotator_names(annotators)
    if not 0 < float(threshold) <= 1:
        raise ConfigError(f"threshold must be in (0, 1], got {threshold}")
    sample = review_sample(pkg, split, size=int(images), seed=int(seed), by=["class"], spread_videos=True)
    return {
        "schema_version": SCHEMA_VERSION, "kind": KIND, "status": "planned",
        "dataset": {"name": pkg.name, "version": str(pkg.version), "root": str(pkg.root),
                    "content_hash": dataset_content_hash(pkg)},
        "split": split, "seed": int(seed), "threshold": float(threshold), "annotators": names,
        "guideline": guideline,
        "images": [{k: it[k] for k in ("image_id", "file_name", "video_id", "frame_index")}
                   | {"main_class": it["stratum"]["class"]} for it in sample["items"]],
        "strata": sample["strata"], "population": sample["population"],
        "videos": len({it["video_id"] if it["video_id"] is not None else ("image", it["image_id"])
                       for it in sample["items"]}),
    }


def write_tasks(plan: Mapping[str, Any], pkg: Any, out_dir: str | os.PathLike, *, fmt: str = "both",
                prefill: bool = False, image_url: str | None = None) -> dict[str, dict[str, str]]:
    """Per annotator ``<out_dir>/<name>/labelstudio/{tasks.json, label_config.xml}`` and / or
    ``<out_dir>/<name>/cvat/`` (:func:`segval.relabel.cvat.write_cvat_package`), written as one atomic folder.

    Returns:
        ``{annotator: {"labelstudio": path, "label_config": path, "cvat": zip path, "cvat_images": folder}}``.
    """
    import json

    from segval.relabel.cvat import coco_for_queue, write_cvat_package
    from segval.relabel.labelstudio import DEFAULT_IMAGE_URL, label_config, tasks_for_queue

    if fmt not in FORMATS:
        raise ConfigError(f"format must be one of {list(FORMATS)}, got {fmt!r}")
    sd = pkg.split(plan["split"])
    queue = {"split": plan["split"], "items": [
        {"item_id": f"pilot-{im['image_id']}", "image_id": im["image_id"], "rank": k + 1, "category_id": None,
         "reason": f"guideline pilot image {k + 1} of {len(plan['images'])}"} for k, im in enumerate(plan["images"])]}
    out, files = Path(out_dir), {}
    with atomic_dir(out, overwrite=True) as tmp:
        for name in plan["annotators"]:
            files[name] = {}
            if fmt in ("labelstudio", "both"):
                tasks = tasks_for_queue(queue, sd, pkg.taxonomy, image_url=image_url or DEFAULT_IMAGE_URL)
                for t in tasks:
                    t["data"].update({"annotator": name, "pilot": f"{plan['dataset']['name']} {plan['dataset']['version']}"})
                    if not prefill:
                        t["predictions"] = []
                (tmp / name / "labelstudio").mkdir(parents=True)
                (tmp / name / "labelstudio" / "tasks.json").write_text(json.dumps(tasks), encoding="utf-8")
                (tmp / name / "labelstudio" / "label_config.xml").write_text(label_config(pkg.taxonomy),
                                                                           encoding="utf-8")
                files[name] |= {"labelstudio": str(out / name / "labelstudio" / "tasks.json"),
                                "label_config": str(out / name / "labelstudio" / "label_config.xml")}
            if fmt in ("cvat", "both"):
                coco = coco_for_queue(queue, sd, pkg.taxonomy)
                if not prefill:
                    coco["annotations"] = []
                write_cvat_package(coco, sd, tmp / name / "cvat")
                files[name] |= {"cvat": str(out / name / "cvat" / "cvat_coco.zip"),
                                "cvat_images": str(out / name / "cvat" / "images")}
    return files


# ---------------------------------------------------------------------------------------- score
def read_returned_set(path: str | os.PathLike, split: Any, taxonomy: Any) -> dict[int, list[Any]]:
    """One annotator's returned set: a Label Studio JSON export (a list of tasks) or a COCO file / CVAT zip ->
    ``{image_id: [ReturnedInstance]}`` (images of ``split``)."""
    import json

    from segval.relabel import cvat, labelstudio

    p = Path(path)
    if not p.is_file():
        raise DatasetError("returned annotation set not found; give the Label Studio JSON export or the COCO file / "
                           "CVAT COCO 1.0 zip of each annotator", path=p)
    if zipfile.is_zipfile(p):
        return cvat.read_export(p, split, taxonomy)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except ValueError as err:
        raise DatasetError(f"not valid JSON ({err})", path=p) from None
    return (labelstudio if isinstance(doc, list) else cvat).read_export(p, split, taxonomy)


def _check_same_images(plan: Mapping[str, Any], returned: Sequence[Mapping[int, Any]], paths: Sequence[str]) -> None:
    """Every set must hold exactly the pilot's images (DatasetError naming the missing / extra ones)."""
    want = {int(im["image_id"]): im["file_name"] for im in plan["images"]}
    problems = []
    for path, got in zip(paths, returned, strict=True):
        missing = sorted(set(want) - set(got))
        extra = sorted(set(got) - set(want))
        if missing:
            problems.append(f"{path} lacks {len(missing)} pilot image(s): "
                            + ", ".join(f"{i} ({want[i]})" for i in missing[:20]) + (" ..." if len(missing) > 20 else ""))
        if extra:
            problems.append(f"{path} has image(s) {extra[:20]} that are not in the pilot")
    if problems:
        raise DatasetError("the returned sets must all cover the pilot's images, and only them: "
                           + "; ".join(problems) + ". Export every pilot task from each annotator (an image left "
                           "unlabelled in Label Studio is missing from its export)")


def _target(insts: Sequence[Any], rec: Any, tax: Any) -> np.ndarray:
    items = [(i.category_id, i.mask, int(i.mask.sum()), k) for k, i in enumerate(insts)]
    return tax.lut()[rasterize_semantic(rec.height, rec.width, items, tax.background_id)]


def score_pilot(plan: Mapping[str, Any], pkg: Any, sets: Sequence[str | os.PathLike], *,
                threshold: float | None = None, min_pixels: int = 16, examples: int = 3,
                progress: Callable[[Iterable[Any]], Iterable[Any]] | None = None) -> dict[str, Any]:
    """Score the returned sets of a planned pilot (see the module doc): the pilot document with ``status``
    ``passed`` / ``failed``, ``agreement`` (:mod:`segval.qa.agreement`'s result) and ``sections_to_clarify``.

    Raises:
        ConfigError: not a pilot manifest, fewer sets than two, or a set named twice.
        DatasetError: a set that cannot be read, or sets over different images (names the missing ones).
    """
    if plan.get("kind") != KIND or not isinstance(plan.get("images"), list):
        raise ConfigError("pilot= is not a pilot.json written by `segval qa pilot` (planning it first)")
    paths = [str(s) for s in sets]
    if len(paths) < 2 or len(set(paths)) != len(paths):
        raise ConfigError(f"scoring needs two or more different returned sets (sets=[a.json,b.json,...]), got {paths}")
    thr = float(plan.get("threshold", 0.8) if threshold is None else threshold)
    if not 0 < thr <= 1:
        raise ConfigError(f"threshold must be in (0, 1], got {thr}")
    tax, sd = pkg.taxonomy, pkg.split(plan["split"])
    returned = [read_returned_set(p, sd, tax) for p in paths]
    _check_same_images(plan, returned, paths)
    k = tax.num_classes
    acc = AgreementAccumulator(tax.names, [c.group for c in tax], len(paths), set_names=[Path(p).name for p in paths],
                               targets={g: thr for g in ("rigid", "deformable", "thin", "stuff")},
                               min_pixels=min_pixels)
    confusion = np.zeros((k, k), dtype=np.int64)
    ids = [int(im["image_id"]) for im in plan["images"]]
    for image_id in (progress(ids) if progress else ids):
        rec = sd.image(image_id)
        targets = [_target(r[image_id], rec, tax) for r in returned]
        acc.update(image_id, targets)
        for a, b in itertools.combinations(targets, 2):
            valid = (a != 255) & (b != 255)
            pair = np.bincount(a[valid].astype(np.int64) * k + b[valid], minlength=k * k).reshape(k, k)
            confusion += pair + pair.T
    agreement = acc.result()
    return _scored(plan, agreement, confusion, tax, thr, paths, examples, sd)


def _scored(plan: Mapping[str, Any], agreement: dict[str, Any], confusion: np.ndarray, tax: Any, thr: float,
            paths: Sequence[str], examples: int, sd: Any) -> dict[str, Any]:
    per_image = agreement["per_image"]
    classes, sections = [], []
    for i, cat in enumerate(tax):
        iou = agreement["per_class"][cat.name]
        flagged = iou is not None and iou < thr
        classes.append({"name": cat.name, "id": cat.id, "group": cat.group, "IoU": iou, "flagged": flagged})
        if not flagged:
            continue
        row = confusion[i].copy()
        row[i] = 0
        j = int(np.argmax(row))
        worst = sorted((r for r in per_image if cat.name in r["per_class"]),
                       key=lambda r: (r["per_class"][cat.name], r["image_id"]))[:examples]
        sections.append({
            "class": cat.name, "IoU": iou, "threshold": thr,
            "partner": tax.names[j] if row[j] > 0 else None, "partner_pixels": int(row[j]),
            "section": class_section_title(cat.id, cat.name), "anchor": class_anchor(cat.id),
            "pair_section": f"{min(cat.name, tax.names[j])} vs {max(cat.name, tax.names[j])}" if row[j] > 0 else None,
            "images": [{"image_id": r["image_id"], "file_name": sd.image(r["image_id"]).file_name,
                        "IoU": r["per_class"][cat.name]} for r in worst],
        })
    sections.sort(key=lambda s: (s["IoU"], s["class"]))
    flagged = [s["class"] for s in sections]
    return {**plan, "status": "failed" if flagged else "passed", "threshold": thr,
            "scored": {"sets": list(paths), "images": len(plan["images"])},
            "classes": classes, "flagged_classes": flagged,
            "not_measured": [c["name"] for c in classes if c["IoU"] is None],
            "sections_to_clarify": sections,
            "agreement": {k: v for k, v in agreement.items() if k != "per_image"}}


def format_pilot(doc: Mapping[str, Any]) -> str:
    """pilot.md: the plan (what to hand out and how to score it) or the scored result."""
    from segval.report.markdown_safe import md_escape

    ds = doc["dataset"]
    pct = lambda x: "n/a" if x is None else f"{100 * x:.1f} %"  # noqa: E731
    lines = [f"# Guideline pilot: {md_escape(ds['name'])} {md_escape(ds['version'])} ({doc['status']})", "",
             f"{len(doc['annotators'])} annotators ({md_escape(', '.join(doc['annotators']))}) x "
             f"{len(doc['images'])} images of split {md_escape(doc['split'])} ({doc.get('videos')} videos, seed "
             f"{doc['seed']}); a class passes at {pct(doc['threshold'])} inter-annotator IoU or more.", ""]
    if doc["status"] == "planned":
        lines += ["Each annotator labels every image from scratch, following the guideline"
                  + (f" ({md_escape(doc['guideline'])})" if doc.get("guideline") else "")
                  + ", and returns the Label Studio JSON export or the CVAT COCO 1.0 export. Then:", "",
                  "    segval qa pilot pilot=<this pilot.json> sets=[<export 1>,<export 2>,...]", "",
                  "| image id | file | video | main class |", "|---:|---|---:|---|"]
        lines += [f"| {im['image_id']} | {md_escape(im['file_name'])} | {im['video_id'] if im['video_id'] is not None else ''}"
                  f" | {md_escape(im['main_class'])} |" for im in doc["images"]]
        return "\n".join(lines) + "\n"
    lines += ["| class | IoU | flagged |", "|---|---:|---|"]
    lines += [f"| {md_escape(c['name'])} | {pct(c['IoU'])} | {'**below**' if c['flagged'] else ''} |"
              for c in doc["classes"]]
    lines += ["", "## Guideline sections to clarify", ""]
    if not doc["sections_to_clarify"]:
        lines.append("None: every measured class reaches the threshold.")
    for s in doc["sections_to_clarify"]:
        lines.append(f"- **{md_escape(s['section'])}** ({pct(s['IoU'])})"
                     + (f": most confused with {md_escape(s['partner'])} ({s['partner_pixels']:,} px; section "
                        f"\"{md_escape(s['pair_section'])}\")" if s["partner"] else "")
                     + "; images: " + ", ".join(f"{im['image_id']} {md_escape(im['file_name'])} ({pct(im['IoU'])})"
                                                for im in s["images"]))
    if doc["not_measured"]:
        lines += ["", "Not measured (in no pilot image): " + md_escape(", ".join(doc["not_measured"]))]
    return "\n".join(lines) + "\n"
