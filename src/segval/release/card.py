"""The dataset card: README.md in the Hugging Face dataset-card layout.

YAML front matter (license, task_categories, task_ids, size_categories, pretty_name, tags), then
Dataset summary, Classes, Splits, How to load (a plain-Python snippet with pycocotools and a
torch ``Dataset``; both run as written from the package folder; the ``loaders/`` folder when the
release wrote one), Baseline results (when a baseline run is published with the version:
``baseline/``, see :mod:`segval.release.baseline`), Annotation guideline (dataset.yaml
``guideline:``), Known limitations (dataset.yaml ``limitations:`` plus automatic ones: classes
under ``rare_share`` of the pixels, classes absent from a split, and the domain gap measured by
``segval domain-gap`` when given) and Version history (CHANGELOG.md).

Class, split and dataset names are data, not Markdown: they are escaped (:func:`segval.report.markdown_safe.md_escape`,
or a code span that they cannot close, :func:`~segval.report.markdown_safe.md_code`), so a class named
``<script>…`` or ``](javascript:…)`` shows as written where the Hub renders the card.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from segval.release.loaders import TORCH_DATASET
from segval.report.markdown_safe import md_code, md_escape, md_prose
from segval.dataset.package import DatasetPackage

SIZE_CATEGORIES = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                   (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B")]


def size_category(n: int) -> str:
    """Hugging Face ``size_categories`` value of ``n`` examples."""
    for limit, label in SIZE_CATEGORIES:
        if n < limit:
            return label
    return "n>1T"


PLAIN_SNIPPET = '''\
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools.coco import COCO

root = Path(".")  # the folder holding this README
coco = COCO(str(root / "annotations" / "{split}.json"))
img_id = coco.getImgIds()[0]
info = coco.loadImgs(img_id)[0]
image = np.asarray(Image.open(root / "images" / "{split}" / info["file_name"]).convert("RGB"))
for ann in coco.loadAnns(coco.getAnnIds(imgIds=img_id)):
    mask = coco.annToMask(ann)  # uint8[H, W]
    name = coco.loadCats(ann["category_id"])[0]["name"]
    print(info["file_name"], name, int(mask.sum()), "pixels")
'''

def torch_snippet(split: str) -> str:
    """The card's torch example: the ``SegDataset`` of ``loaders/torch_dataset.py`` and a DataLoader over ``split``."""
    dataset_class = TORCH_DATASET.split('\n\nif __name__ == "__main__":')[0].replace("import sys\n", "", 1)
    return (dataset_class.rstrip() + "\n\n\n"
            f'loader = DataLoader(SegDataset(".", "{split}"), batch_size=2, shuffle=True)\n'
            "images, targets = next(iter(loader))\n"
            "print(images.shape, targets.shape, targets.unique().tolist())\n")


def _front_matter(pkg: DatasetPackage, n_images: int, tags: list[str]) -> str:
    meta = {
        "license": (pkg.license or "other").lower(),
        "task_categories": ["image-segmentation"],
        "task_ids": ["semantic-segmentation", "instance-segmentation"],
        "size_categories": [size_category(n_images)],
        "pretty_name": str(pkg.metadata.get("pretty_name") or f"{pkg.name} {pkg.version}"),
        "tags": tags,
    }
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n"


def limitations(pkg: DatasetPackage, summary: Mapping[str, Any], *, rare_share: float = 0.01) -> list[str]:
    """The card's Known limitations: dataset.yaml ``limitations:`` then the automatic ones."""
    out = [md_prose(x) for x in (pkg.metadata.get("limitations") or [])]
    splits = summary["splits"]
    total = sum(s["pixels"] for s in splits.values())
    for c in summary["classes"]:
        name = c["name"]
        if summary.get("background_id") == c["id"]:
            continue
        px = sum(s["pixel_share"][name] * s["pixels"] for s in splits.values())
        share = px / total if total else 0.0
        if share < rare_share:
            out.append(f"Class {md_code(name)} covers {100 * share:.2f}% of the pixels (under {100 * rare_share:g}%): "
                       f"per-class scores on it are noisy.")
        absent = [s for s, d in splits.items() if d["instances"][name] == 0 and d["pixel_share"][name] == 0]
        if absent:
            out.append(f"Class {md_code(name)} is absent from split(s) {md_escape(', '.join(absent))}: it cannot be evaluated there.")
    return out


def _pct(x: Any) -> str:
    return "n/a" if x is None else f"{100 * float(x):.2f}"


def baseline_section(baseline: Mapping[str, Any]) -> list[str]:
    """The card's Baseline results lines from :func:`segval.release.baseline.baseline_summary`."""
    s = baseline["summary"]
    lines = ["## Baseline results", "",
             f"A {baseline['model']} trained on this version (step {baseline['step']}), evaluated on the "
             f"`{baseline['split']}` split. Weights, metrics, findings and the exact config are in `baseline/` "
             "(`model.safetensors` + `model.json`; rebuild with `segval.release.baseline.load_baseline('baseline')`). "
             "IoU / Acc in % (MMSegmentation definitions; n/a = class absent from ground truth and prediction).", "",
             "| class | IoU | Acc |", "|---|---:|---:|"]
    lines += [f"| {md_escape(r['name'])} | {_pct(r['IoU'])} | {_pct(r['Acc'])} |" for r in baseline["per_class"]]
    lines.append(f"| **mean** | **{_pct(s.get('mIoU'))}** | **{_pct(s.get('mAcc'))}** |")
    lines += ["", f"aAcc {_pct(s.get('aAcc'))} %, fwIoU {_pct(s.get('fwIoU'))} %."]
    if baseline.get("weak_classes"):
        lines.append(f"Weak classes (see `baseline/findings.md`): {', '.join(map(md_escape, baseline['weak_classes']))}.")
    return lines + [""]


def domain_gap_limitations(gap: Mapping[str, Any], *, top: int = 3) -> list[str]:
    """Known-limitation sentences from a ``domain_gap.json`` (:mod:`segval.analysis.domain_gap`)."""
    src, tgt = gap["source"], gap["target"]
    s = gap["summary"]
    if s.get("mIoU_source") is None or s.get("mIoU_target") is None:
        return []
    out = [f"Domain gap: the baseline's mIoU is {_pct(s['mIoU_source'])}% on {md_code(src['split'])} of "
           f"{md_escape(src['dataset'])} but {_pct(s['mIoU_target'])}% on {md_code(tgt['split'])} of "
           f"{md_escape(tgt['dataset'])} "
           f"({100 * s['mIoU_gap']:+.2f} points)" + ("; expect lower scores on images like those." if s["mIoU_gap"] < 0
                                                     else ": no overall drop on that domain.")]
    worst = [r for r in gap["per_class"] if r.get("gap") is not None and r["gap"] < 0][:top]
    if worst:
        out.append("Classes losing most on the target domain: " + ", ".join(
            f"{md_code(r['name'])} {_pct(r['IoU_source'])}% -> {_pct(r['IoU_target'])}%" for r in worst) + ".")
    return out


def render_card(pkg: DatasetPackage, summary: Mapping[str, Any], *, changelog: str = "",
                rare_share: float = 0.01, baseline: Mapping[str, Any] | None = None,
                domain_gap: Mapping[str, Any] | None = None, loaders: bool = False) -> str:
    """The card's Markdown text (see the module doc); ``summary`` from :func:`segval.dataset.summary.summarize`,
    ``baseline`` from :func:`segval.release.baseline.baseline_summary`, ``domain_gap`` a ``domain_gap.json``."""
    splits = summary["splits"]
    n_images = sum(d["images"] for d in splits.values())
    n_ann = sum(d["annotations"] for d in splits.values())
    groups = sorted({c.group for c in pkg.taxonomy})
    tags = ["robotics", "segmentation", "coco", "segval", *[f"{g}-objects" for g in groups if g != "stuff"]]
    total = sum(d["pixels"] for d in splits.values())
    first = pkg.splits[0]
    name = md_escape(pkg.name)
    lines = [_front_matter(pkg, n_images, tags), f"# {name} {md_escape(pkg.version)}", "", "## Dataset summary", ""]
    lines.append(md_prose(pkg.description.strip()) or f"{name} is a segmentation dataset for robotics.")
    lines += ["", f"{n_images} images and {n_ann} instance annotations in {len(splits)} split(s) "
              f"({', '.join(splits)}), {pkg.taxonomy.num_classes} classes. A segval dataset package: "
              "`dataset.yaml` (taxonomy, version), `annotations/<split>.json` (COCO, RLE masks), "
              "`images/<split>/`" + (", `label_maps/<split>/`" if any(pkg.split(s).has_label_maps for s in pkg.splits)
                                     else "") + f". License: {md_escape(pkg.license or 'not stated')}.", ""]
    lines += ["## Classes", "", "| id | name | group | thing/stuff | colour | pixel share | instances |",
              "|---:|---|---|---|---|---:|---:|"]
    for c in pkg.taxonomy:
        px = sum(d["pixel_share"][c.name] * d["pixels"] for d in splits.values())
        inst = sum(d["instances"][c.name] for d in splits.values())
        colour = "#{:02x}{:02x}{:02x}".format(*c.color)
        bg = " (background)" if c.id == pkg.taxonomy.background_id and c.name != "background" else ""
        lines.append(f"| {c.id} | {md_escape(c.name)}{bg} | {md_escape(c.group)} | {'thing' if c.isthing else 'stuff'} | `{colour}` | "
                     f"{100 * px / total if total else 0:.2f}% | {inst} |")
    lines += ["", "Pixel shares are fractions of all pixels of all splits (semantic targets built from the COCO "
              "masks); the rest is ignore (255).", ""]
    lines += ["## Splits", "", "| split | images | annotations | videos |", "|---|---:|---:|---:|"]
    lines += [f"| {md_escape(s)} | {d['images']} | {d['annotations']} | {d['videos']} |" for s, d in splits.items()]
    lines += ["", "## How to load", "", "Plain Python (pycocotools), run from this folder:", "", "```python",
              PLAIN_SNIPPET.format(split=first).rstrip(), "```", "",
              "A PyTorch `Dataset` of semantic targets (train index = position in dataset.yaml `taxonomy`, "
              "255 = ignore; segval's own rule is `segval.dataset.split.SplitData.semantic_target`):", "",
              "```python", torch_snippet(first).rstrip(), "```", "",
              "With segval: `segval train data=package data.root=<this folder>`; "
              "`segval data check data=package data.root=<this folder>`.", ""]
    if loaders:
        lines += ["Ready-to-run loaders are in `loaders/` (see `loaders/README.md`): pycocotools with overlays of 5 "
                  "images, a PyTorch `Dataset`, an MMSegmentation config fragment (label maps) and a Detectron2 "
                  "registration (COCO).", ""]
    if baseline is not None:
        lines += baseline_section(baseline)
    lines += ["## Annotation guideline", ""]
    guideline = pkg.metadata.get("guideline")
    if guideline:
        lines.append(md_prose(str(guideline).strip()))
    else:
        lines.append("No annotation guideline was given (add `guideline:` to dataset.yaml). Class definitions: "
                     "see the Classes table; masks follow the COCO conventions (RLE, `iscrowd` for groups).")
    lines += ["", "## Known limitations", ""]
    lim = limitations(pkg, summary, rare_share=rare_share)
    if domain_gap is not None:
        lim += domain_gap_limitations(domain_gap)
    lines += [f"- {x}" for x in lim] or ["- none recorded"]
    lines += ["", "## Version history", ""]
    history = md_prose(changelog.strip())
    if history.startswith("# Changelog"):
        history = history[len("# Changelog"):].strip()
    lines.append(history.replace("\n## ", "\n### ").replace("## ", "### ", 1) if history.startswith("## ")
                 else (history or f"- {pkg.version}: no changelog recorded"))
    return "\n".join(lines).rstrip() + "\n"


def write_card(pkg: DatasetPackage, target: str | os.PathLike, *, changelog: str | None = None,
               rare_share: float = 0.01, summary: Mapping[str, Any] | None = None,
               baseline: Mapping[str, Any] | None = None, domain_gap: Mapping[str, Any] | None = None,
               loaders: bool | None = None) -> Path:
    """Write the card of ``pkg`` to ``target`` (CHANGELOG.md of the package read when ``changelog`` is None;
    ``baseline/`` and ``loaders/`` of the package used when present and not given)."""
    import json

    from segval.release.baseline import BASELINE_DIR, baseline_summary

    if baseline is None and (pkg.root / BASELINE_DIR / "model.json").is_file():
        baseline = baseline_summary(pkg.root / BASELINE_DIR)
    for gap_file in (pkg.root / BASELINE_DIR / "domain_gap.json", pkg.root / "domain_gap.json"):
        if domain_gap is None and gap_file.is_file():
            domain_gap = json.loads(gap_file.read_text(encoding="utf-8"))
    if loaders is None:
        loaders = (pkg.root / "loaders" / "README.md").is_file()
    from segval.dataset.summary import summarize
    from segval.io import write_text

    if changelog is None:
        log = pkg.root / "CHANGELOG.md"
        changelog = log.read_text(encoding="utf-8") if log.is_file() else ""
    summary = summary or summarize(pkg)
    return write_text(target, render_card(pkg, summary, changelog=changelog, rare_share=rare_share,
                                          baseline=baseline, domain_gap=domain_gap, loaders=loaders))
