"""Re-split a dataset package into a new one: whole videos per split, class pixel shares balanced.

:func:`resplit_package` pools the chosen splits of a package, counts the class pixels of every image,
groups images into units (a video, or an image without ``video_id``), plans the assignment with
:func:`segval.qa.splitting.plan_split` (the criteria are documented there) and, when the criteria are
met (or ``allow``), writes a NEW package with image and annotation ids unchanged: images, label maps
and COCO entries are copied as they are (every key, ``video_id`` and extra fields included). Annotations are
never parsed into one document: they stay the package's per-image text (:mod:`segval.dataset.packed`) and are
streamed out, so memory stays near that of opening the package.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import yaml

from segval.dataset.package import DatasetPackage, SplitData
from segval.dataset.packed import load_coco_packed
from segval.errors import DatasetError
from segval.io import atomic_dir
from segval.qa.splitting import SplitPlan, group_images, plan_split

#: one pooled image: (source split, its raw COCO image entry)
Entry = tuple[str, dict[str, Any]]


def pool_splits(pkg: DatasetPackage, splits: Sequence[str]) -> tuple[list[Entry], Any]:
    """The raw COCO image entries of ``splits`` (in order) and the categories; the annotations stay in the
    package's splits (written out as their text by :func:`write_resplit`).

    Raises:
        DatasetError: an image or annotation id used in two pooled splits (the new package keeps ids); no image.
    """
    entries: list[Entry] = []
    seen_img: dict[int, str] = {}
    categories = None
    for s in splits:
        d = pkg.split(s)
        coco = load_coco_packed(d.annotation_path, annotations=False)  # images and categories only
        categories = categories if categories is not None else coco.get("categories")
        for im in coco.get("images", []):
            iid = int(im["id"])
            if iid in seen_img:
                raise DatasetError(f"image id {iid} is used in split {seen_img[iid]!r} and split {s!r}; pooled splits "
                                   "need unique image ids (the new package keeps them)", path=d.annotation_path)
            seen_img[iid] = s
            entries.append((s, im))
    _check_annotation_ids(pkg, splits)
    if not entries:
        raise DatasetError(f"splits {list(splits)} hold no images; nothing to split", path=pkg.root)
    return entries, categories


def _check_annotation_ids(pkg: DatasetPackage, splits: Sequence[str]) -> None:
    """Raise DatasetError naming the first annotation id (in split order) that two pooled splits share."""
    first: dict[int, str] = {}
    for s in splits:
        ids = np.unique(pkg.split(s).annotation_ids)
        if first:
            taken = np.fromiter(first, dtype=np.int64, count=len(first))
            both = ids[np.isin(ids, taken)]
            if both.size:
                aid = int(both[0])
                raise DatasetError(f"annotation id {aid} is used in split {first[aid]!r} and split {s!r}; pooled "
                                   "splits need unique annotation ids", path=pkg.split(s).annotation_path)
        first.update(dict.fromkeys(ids.tolist(), s))


def class_pixels(pkg: DatasetPackage, entries: Sequence[Entry],
                 progress: Callable[[Iterable[Any]], Iterable[Any]] = lambda it: it) -> np.ndarray:
    """int64[N, K]: pixels of each class (train index) in each pooled image, ignore left out."""
    k = pkg.taxonomy.num_classes
    counts = np.zeros((len(entries), k), dtype=np.int64)
    for n, (s, im) in enumerate(progress(entries)):
        d = pkg.split(s)
        t = d.semantic_target(d.image(int(im["id"])), cache=False)
        counts[n] = np.bincount(t[t != 255].ravel(), minlength=k)[:k]
    return counts


def plan_resplit(pkg: DatasetPackage, source_splits: Sequence[str], names: Sequence[str], fractions: np.ndarray, *,
                 tolerance: float, min_share: float, fraction_tolerance: float, seed: int, trials: int,
                 progress: Callable[[Iterable[Any]], Iterable[Any]] = lambda it: it) -> tuple[SplitPlan, dict]:
    """Pool ``source_splits`` and plan the new splits; returns the plan and what writing needs (``pooled``)."""
    entries, categories = pool_splits(pkg, source_splits)
    counts = class_pixels(pkg, entries, progress)
    recs = [pkg.split(s).image(int(im["id"])) for s, im in entries]
    keys, gidx = group_images([r.id for r in recs], [r.video_id for r in recs])
    g_counts = np.zeros((len(keys), pkg.taxonomy.num_classes), dtype=np.int64)
    np.add.at(g_counts, gidx, counts)
    g_sizes = np.bincount(gidx, minlength=len(keys))
    plan = plan_split(g_counts, g_sizes, fractions, names, class_names=pkg.taxonomy.names, group_keys=keys,
                      tolerance=tolerance, min_share=min_share, fraction_tolerance=fraction_tolerance, seed=seed,
                      trials=trials)
    pooled = {"entries": entries, "records": recs, "categories": categories,
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
        images_out: dict[str, list[Entry]] = {n: [] for n in names}
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
            images_out[new].append((s, im))
        (tmp / "annotations").mkdir()
        info = {"description": str(meta.get("name")), "version": str(meta.get("version"))}
        for n in names:
            _write_coco(tmp / "annotations" / f"{n}.json", info, images_out[n], datas,
                        pooled["categories"] or pkg.taxonomy.coco_categories())
        (tmp / "dataset.yaml").write_text(yaml.safe_dump(meta, sort_keys=False, allow_unicode=True), encoding="utf-8")
        DatasetPackage.open(tmp)  # the cheap checks, before the package is renamed into place
    return {n: len(images_out[n]) for n in names}


def _write_coco(path: Path, info: dict[str, Any], images: Sequence[Entry], datas: Mapping[str, SplitData],
                categories: Any) -> None:
    """Write a COCO file of ``images`` (their raw entries, in order) and their annotations, streamed: each image's
    annotations go out as the text they were read as (no parsed copy of the split is held)."""
    with open(path, "w", encoding="utf-8") as f:
        f.write(f'{{"info": {json.dumps(info)}, "images": {json.dumps([im for _, im in images])}, "annotations": [')
        sep = ""
        for s, im in images:
            inner = datas[s].annotations_json(int(im["id"]))[1:-1]
            if inner:
                f.write(sep + inner)
                sep = ", "
        f.write(f'], "categories": {json.dumps(categories)}}}\n')


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
