"""Read COCO instance segmentation as real tools write it into an :class:`ImportedDataset`.

The file is first brought to the form segval reads by :func:`segval.dataset.coco_dialects.normalize_coco`
(string booleans, hex colours, 64-bit ids, bbox-only boxes, bad area / bbox, polygons outside the
image; each kind reported once with a count and the first ids), then checked like a package's COCO
file (:func:`segval.dataset.coco.index_coco`: duplicate ids, unknown images or categories, escaping
file names) and decoded (:func:`segval.dataset.segmentation.decode_segmentation`: RLE size, corrupt
counts, bad polygons). Boxes without a mask become *ignore* regions (255 in semantic targets) where
no instance lies; crowd annotations stay crowd annotations.

A file that is not instance segmentation (a results file, captions, keypoints only, image info, an
SA-1B per-image file, COCO panoptic, ...) is refused with a sentence saying what it is.

Entry points: :func:`read_coco` (one JSON) and :func:`read_coco_folder` (a COCO / Roboflow / mmdet
folder, every split, see :mod:`.folders`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from segval.dataset.coco import index_coco, load_json
from segval.dataset.coco_dialects import bbox_ignore_mask, normalize_coco
from segval.dataset.formats.folders import find_coco_splits
from segval.dataset.formats.result import (
    DEFAULT_MAX_PIXELS,
    Findings,
    ImportedDataset,
    ImportedImage,
    ImportedInstance,
    check_unique_names,
    merge_imported,
    package_file_name,
    probe_image,
    resolve_inside,
)
from segval.dataset.segmentation import decode_segmentation
from segval.dataset.taxonomy import Taxonomy
from segval.errors import DatasetError

__all__ = ["read_coco", "read_coco_folder"]


def read_coco(
    json_path: str | os.PathLike,
    images_dir: str | os.PathLike,
    *,
    split: str = "train",
    background: str | None = "auto",
    bbox_only: str = "ignore_box",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: Callable[[Any], Any] | None = None,
) -> ImportedDataset:
    """Parse, normalise and check a COCO file (see the module doc). Nothing is written.

    Args:
        json_path: the COCO JSON.
        images_dir: the folder its ``file_name`` entries are relative to.
        split: split name.
        background: see :meth:`~segval.dataset.taxonomy.Taxonomy.from_coco_categories`.
        bbox_only: annotations with a box but no mask: ``"ignore_box"``, ``"drop"`` or ``"error"``
            (:func:`~segval.dataset.coco_dialects.normalize_coco`).
        max_pixels: limit on width * height, checked from the headers before decoding.
        progress: wraps the per-image loop.

    Raises:
        DatasetError: listing every problem found.
    """
    json_path, images_dir = Path(json_path), Path(images_dir)
    if not json_path.is_file():
        raise DatasetError("COCO annotation file not found", path=json_path)
    if not images_dir.is_dir():
        raise DatasetError("image folder not found; pass the folder the file_name entries are relative to",
                           path=images_dir)
    norm = normalize_coco(load_json(json_path), path=json_path, bbox_only=bbox_only)
    coco = norm.coco
    tax = Taxonomy.from_coco_categories(coco.get("categories") or [], background, path=json_path)
    records, by_image = index_coco(coco, tax, path=json_path, folder=str(images_dir))
    f = Findings()
    for w in norm.warnings:
        f.note(w)
    out: list[ImportedImage] = []
    for rec in (progress(records) if progress else records):
        try:
            path = resolve_inside(images_dir, rec.file_name, what="file_name")
        except ValueError as err:
            f.problem(str(err), path=json_path, image_id=rec.id)
            continue
        if not path.is_file():
            f.problem(f"image file {rec.file_name!r} not found in {images_dir}; add it or fix file_name",
                      path=json_path, image_id=rec.id)
            continue
        try:
            w, h = probe_image(path, max_pixels=max_pixels)
        except DatasetError as err:
            f.add(err)
            continue
        if (w, h) != (rec.width, rec.height):
            f.problem(f"image file is {w}x{h} but the COCO entry says {rec.width}x{rec.height} (width x height)",
                      path=json_path, image_id=rec.id)
            continue
        insts = []
        for a in by_image[rec.id]:
            try:
                rl = decode_segmentation(a, h, w, path=json_path, image_id=rec.id)
            except DatasetError as err:
                f.add(err)
                continue
            if rl.area == 0:
                f.skip("annotations with an empty mask", f"annotation id {a['id']}")
                continue
            insts.append(ImportedInstance(int(a["category_id"]), rl, int(a.get("iscrowd", 0) or 0),
                                          origin=f"annotation id {a['id']}"))
        boxes = norm.bbox_only.get(rec.id)
        ignore = bbox_ignore_mask(boxes, h, w) if boxes else None
        extra: dict[str, Any] = {"source_image_id": rec.id}
        if rec.video_id is not None:
            extra["video_id"] = rec.video_id
        if rec.frame_index is not None:
            extra["frame_index"] = rec.frame_index
        out.append(ImportedImage(package_file_name(rec.file_name), w, h, path=path, instances=insts, ignore=ignore,
                                 extra=extra, origin=f"image id {rec.id} ({rec.file_name})"))
    check_unique_names(f, split, out, json_path)
    f.raise_if_any(json_path, "COCO file")
    info = coco.get("info") if isinstance(coco.get("info"), dict) else {}
    lic = coco.get("licenses")
    license_name = lic[0].get("name") if isinstance(lic, list) and len(lic) == 1 and isinstance(lic[0], dict) \
        and lic[0].get("name") else None
    return ImportedDataset("coco", str(json_path), tax, {split: out}, f.warnings(), f.skipped,
                           license=license_name, name=info.get("description") or None, max_pixels=max_pixels)


def read_coco_folder(
    folder: str | os.PathLike,
    *,
    background: str | None = "auto",
    bbox_only: str = "ignore_box",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: Callable[[Any], Any] | None = None,
) -> ImportedDataset:
    """Every split of a COCO / Roboflow / mmdet folder (:func:`~.folders.find_coco_splits`), one taxonomy.

    The layout notes (task files left out, split names shortened) are among the warnings.

    Raises:
        DatasetError: no layout recognised, or problems in any split (all splits are read first).
    """
    splits, notes = find_coco_splits(folder)
    parts = [read_coco(s.annotations, s.images, split=s.split, background=background, bbox_only=bbox_only,
                       max_pixels=max_pixels, progress=progress) for s in splits]
    res = merge_imported(parts)
    res.warnings = notes + res.warnings
    return res
