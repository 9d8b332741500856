"""Re-split a dataset package into a new one: whole videos per split, class pixel shares balanced.

:func:`resplit_package` pools the chosen splits of a package, counts the class pixels of every image,
groups images into units (a video, or an image without ``video_id``), plans the assignment with
:func:`segval.qa.splitting.plan_split` (the criteria are documented there) and, when the criteria are
met (or ``allow``), writes a NEW package with image and annotation ids unchanged: images, label maps
and COCO entries are copied as they are (every key, ``video_id`` and extra fields included).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import yaml

from segval.dataset.coco import load_json
from segval.dataset.package import DatasetPackage, SplitData
from segval.errors import DatasetError
from segval.io import atomic_dir, write_json
from segval.qa.splitting import SplitPlan, group_images, plan_split

#: one pooled image: (source split, its raw COCO image entry)
Entry = tuple[str, dict[str, Any]]


def pool_splits(pkg: DatasetPackage, splits: Sequence[str]) -> tuple[list[Entry], dict[int, list[dict]], Any]:
    """The raw COCO image entries of ``splits`` (in order), the raw annotations per image id, and the categories.

    Raises:
        DatasetError: an image or annotation id used in two pooled splits (the new package keeps ids); no image.
    """
    entries: list[Entry] = []
    anns_by_image: dict[int, list[dict[str, Any]]] = {}
    seen_img: dict[int, str] = {}
    seen_ann: dict[int, str] = {}
    categories = None
    for s in splits:
        d = pkg.split(s)
        coco = load_json(d.annotation_path)
        categories = categories if categories is not None else coco.get("categories")
        for im in coco.get("images", []):
            iid = int(im["id"])
            if iid in seen_img:
                raise DatasetError(f"image id {iid} is used in split {seen_img[iid]!r} and split {s!r}; pooled splits "
                                   "need unique image ids (the new package keeps them)", path=d.annotation_path)
            seen_img[iid] = s
            entries.append((s, im))
        for a in coco.get("annotations", []):
            aid = int(a["id"])
            if aid in seen_ann:
                raise DatasetError(f"annotation id {aid} is used in split {seen_ann[aid]!r} and split {s!r}; pooled "
                                   "splits need unique annotation ids", path=d.annotation_path)
            seen_ann[aid] = s
            anns_by_image.setdefault(int(a["image_id"]), []).append(a)
    if not entries:
        raise DatasetError(f"splits {list(splits)} hold no images; nothing to split", path=pkg.root)
    return entries, anns_by_image, categories


def class_pixels(pkg: DatasetPackage, entries: Sequence[Entry],
                 progress: Callable[[Iterable[Any]], Iterable[Any]] = lambda it: it) -> np.ndarray:
    """int64[N, K]: pixels of each class (train index) in each pooled image, ignore left out."""
    k = pkg.taxonomy.num_classes
    counts = np.zeros((len(entries), k), dtype=np.int64)
    for n, (s, im) in enumerate(progress(entries)):
        d = pkg.split(s)
        t = d.semantic_target(d.image(int(im["id"])))
        counts[n] = np.bincount(t[t != 255].ravel(), minlength=k)[:k]
    return counts


def plan_resplit(pkg: DatasetPackage, source_splits: Sequence[str], names: Sequence[str], fractions: np.ndarray, *,
                 tolerance: float, min_share: float, fraction_tolerance: float, seed: int, trials: int,
                 progress: Callable[[Iterable[Any]], Iterable[Any]] = lambda it: it) -> tuple[SplitPlan, dict]:
    """Pool ``source_splits`` and plan the new splits; returns the plan and what writing needs (``pooled``)."""
    entries, anns_by_image, categories = pool_splits(pkg, source_splits)
    counts = class_pixels(pkg, entries, progress)
    recs = [pkg.split(s).image(int(im["id"])) for s, im in entries]
    keys, gidx = group_images([r.id for r in recs], [r.video_id for r in recs])
    g_counts = np.zeros((len(keys), pkg.taxonomy.num_classes), dtype=np.int64)
    np.add.at(g_counts, gidx, counts)
    g_sizes = np.bincount(gidx, minlength=len(keys))
    plan = plan_split(g_counts, g_sizes, fractions, names, class_names=pkg.taxonomy.names, group_keys=keys,
                      tolerance=tolerance, min_share=min_share, fraction_tolerance=fraction_tolerance, seed=seed,
                      trials=trials)
    pooled = {"entries": entries, "records": recs, "anns_by_image": anns_by_image, "categories": categories,
              "dest": [names[plan.assignment[g]] for g in gidx], "units": len(keys)}
    return plan, pooled


def write_resplit(pkg: DatasetPackage, output: str | os.PathLike, names: Sequence[str], pooled: dict[str, Any],
                  meta: dict[str, Any], progress: Callable[[Iterable[Any]], Iterable[Any]] = lambda it: it
                  ) -> dict[str, int]:
    """Write the new package (atomically) from :func:`plan_resplit`'s ``pooled``; ``meta`` is its dataset.yaml.
    Returns the images per new split.

    Raises:
        DatasetError: two pooled images with the same file name land in the same new split.
    """
    datas: dict[str, SplitData] = {s: pkg.split(s) for s in {s for s, _ in pooled["entries"]}}
    copy_label_maps = all(d.has_label_maps for d in datas.values())
    with atomic_dir(output) as tmp:
        used: dict[str, set[str]] = {n: set() for n in names}
        images_out: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
        anns_out: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
        for n in names:
            (tmp / "images" / n).mkdir(parents=True, exist_ok=True)
            if copy_label_maps:
                (tmp / "label_maps" / n).mkdir(parents=True, exist_ok=True)
        rows = list(zip(pooled["entries"], pooled["records"], pooled["dest"], strict=True))
        for (s, im), rec, new in progress(rows):
            d = datas[s]
            if rec.file_name in used[new]:
                raise DatasetError(f"file_name {rec.file_name!r} occurs in more than one pooled split and both land in "
                                   f"new split {new!r}; rename one", image_id=rec.id, path=d.annotation_path)
            used[new].add(rec.file_name)
            _copy(d.image_path(rec), tmp / "images" / new / rec.file_name)
            if copy_label_maps and d.label_map_path(rec).is_file():
                _copy(d.label_map_path(rec), tmp / "label_maps" / new / PurePosixPath(rec.file_name).with_suffix(".png"))
            images_out[new].append(im)
            anns_out[new].extend(pooled["anns_by_image"].get(rec.id, []))
        (tmp / "annotations").mkdir()
        for n in names:
            coco = {"info": {"description": str(meta.get("name")), "version": str(meta.get("version"))},
                    "images": images_out[n], "annotations": anns_out[n],
                    "categories": pooled["categories"] or pkg.taxonomy.coco_categories()}
            write_json(tmp / "annotations" / f"{n}.json", coco, indent=None)
        (tmp / "dataset.yaml").write_text(yaml.safe_dump(meta, sort_keys=False, allow_unicode=True), encoding="utf-8")
        DatasetPackage.open(tmp)  # the cheap checks, before the package is renamed into place
    return {n: len(images_out[n]) for n in names}


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dst)


def format_report(report: dict[str, Any]) -> str:
    """The console table of a split report: images, fractions, videos and the worst class per split."""
    lines = [f"{'split':<10} {'images':>7} {'fraction':>9} {'target':>7} {'videos':>7}  worst class (relative deviation)"]
    for sp in report["splits"]:
        worst = max(sp["classes"].items(), key=lambda kv: abs(kv[1]["relative_deviation"]), default=None)
        w = f"{worst[0]} {worst[1]['relative_deviation']:+.1%}" if worst else "-"
        lines.append(f"{sp['name']:<10} {sp['images']:>7} {sp['fraction']:>9.1%} {sp['fraction_target']:>7.1%} "
                     f"{len(sp['videos']):>7}  {w}")
    lines.append(f"criterion: {report['criterion']}")
    return "\n".join(lines)
