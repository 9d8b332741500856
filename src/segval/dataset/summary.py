"""Per-split statistics of a dataset package (``segval data check`` prints them).

Pixel shares come from the semantic targets built from COCO (the rule of
:mod:`segval.dataset.semantic`), so no image is decoded; they are fractions of all pixels of the
split, and ``ignore_share`` is the rest (pixels no annotation covers when ``background_id`` is
null), so a split's shares sum to 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from tqdm import tqdm

from segval.dataset.package import DatasetPackage


def summarize(pkg: DatasetPackage, splits: Sequence[str] | None = None, *, progress: bool = False) -> dict[str, Any]:
    """Count images, annotations, videos, instances and pixels per class for each split.

    Args:
        pkg: an opened package.
        splits: the splits to summarise (default: all).
        progress: show a progress bar (one step per image).

    Returns:
        ``{"name", "version", "root", "background_id", "classes": [{"id", "name", "group",
        "isthing"}] (train-index order), "splits": {split: {"images", "annotations", "videos",
        "pixels", "instances": {class name: count}, "pixel_share": {class name: fraction},
        "ignore_share": fraction}}}``.

    Raises:
        DatasetError: an annotation cannot be decoded.
    """
    tax = pkg.taxonomy
    names = list(pkg.splits if splits is None else splits)
    out: dict[str, Any] = {
        "name": pkg.name,
        "version": pkg.version,
        "root": str(pkg.root),
        "background_id": tax.background_id,
        "classes": [{"id": c.id, "name": c.name, "group": c.group, "isthing": c.isthing} for c in tax],
        "splits": {},
    }
    C = tax.num_classes
    for s in names:
        split = pkg.split(s)
        pixels = np.zeros(256, dtype=np.int64)  # by train index, 255 = ignore
        inst = np.zeros(C, dtype=np.int64)
        videos = set()
        n_ann = 0
        for rec in tqdm(split.images, desc=f"summarising {s}", unit="img", disable=not progress):
            if rec.video_id is not None:
                videos.add(rec.video_id)
            anns = split.annotations_for(rec.id)
            n_ann += len(anns)
            for a in anns:
                inst[tax.index_of(a["category_id"])] += 1
            target = split.semantic_target(rec, source="coco", cache=False)  # one pass: nothing to cache
            pixels += np.bincount(target.reshape(-1), minlength=256)
        total = int(pixels.sum())
        share = pixels / total if total else np.zeros(256)
        out["splits"][s] = {
            "images": len(split.images),
            "annotations": n_ann,
            "videos": len(videos),
            "pixels": total,
            "instances": {c.name: int(inst[i]) for i, c in enumerate(tax)},
            "pixel_share": {c.name: float(share[i]) for i, c in enumerate(tax)},
            "ignore_share": float(share[255]),
        }
    return out


def format_summary(summary: dict[str, Any]) -> str:
    """A readable table of :func:`summarize`'s result: one row per class, two columns per split."""
    splits = list(summary["splits"])
    lines = [f"dataset {summary['name']} {summary['version']}  ({summary['root']})"]
    for s in splits:
        d = summary["splits"][s]
        lines.append(f"  {s}: {d['images']} images, {d['annotations']} annotations, {d['videos']} videos")
    width = max([len("class")] + [len(c["name"]) for c in summary["classes"]])
    head = f"{'id':>4}  {'class':<{width}}  {'group':<10}"
    for s in splits:
        head += f"  {s + ' inst':>12}  {s + ' px%':>10}"
    lines += ["", head, "-" * len(head)]
    for c in summary["classes"]:
        row = f"{c['id']:>4}  {c['name']:<{width}}  {c['group']:<10}"
        for s in splits:
            d = summary["splits"][s]
            row += f"  {d['instances'][c['name']]:>12d}  {100 * d['pixel_share'][c['name']]:>10.2f}"
        lines.append(row)
    row = f"{'':>4}  {'(ignore)':<{width}}  {'':<10}"
    for s in splits:
        row += f"  {'':>12}  {100 * summary['splits'][s]['ignore_share']:>10.2f}"
    lines.append(row)
    return "\n".join(lines)
