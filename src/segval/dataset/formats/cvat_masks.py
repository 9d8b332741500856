"""Read CVAT's "Segmentation mask 1.1" export (VOC-style colour PNGs + ``labelmap.txt``): ``format=cvat_masks``.

Layout (docs.cvat.ai "Segmentation Mask")::

    labelmap.txt                     # label:color_rgb:parts:actions, then name:r,g,b:: (optional: VOC classes)
    ImageSets/Segmentation/<subset>.txt   image names without extension (default.txt for a task)
    SegmentationClass/<name>.png     class colours (1 or 3 channels)
    SegmentationObject/<name>.png    instance colours (VOC instance colormap), optional
    JPEGImages/<name>.<ext>          the images, when exported with images (else pass images_dir)

Classes: the ``labelmap.txt`` order gives the ids (``background:0,0,0::`` first is id 0, the
background). Instances from ``SegmentationObject`` (majority class per object); see
:mod:`.palette` for the decoding rules and the errors (unknown colours name the file, the colour
and its pixel count). Subset lists name the splits (``default`` -> ``split``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from segval.dataset.formats.palette import (
    IMAGE_EXTS,
    ColorTable,
    _read_pairs,
    read_labelmap_txt,
)
from segval.dataset.formats.result import (
    DEFAULT_MAX_PIXELS,
    Findings,
    ImportedDataset,
    ImportedImage,
    check_unique_names,
    resolve_inside,
)
from segval.errors import DatasetError

__all__ = ["read_cvat_masks"]


def _subsets(root: Path, split: str) -> dict[str, list[str]] | None:
    d = root / "ImageSets" / "Segmentation"
    if not d.is_dir():
        return None
    out: dict[str, list[str]] = {}
    for txt in sorted(d.glob("*.txt")):
        name = txt.stem if txt.stem.lower() != "default" else split
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", name.lower()) or split
        items = [ln.strip().split()[0] for ln in txt.read_text(encoding="utf-8").splitlines()
                 if ln.strip() and not ln.startswith("#")]
        out.setdefault(name, []).extend(items)
    return out or None


def read_cvat_masks(
    root: str | os.PathLike,
    images_dir: str | os.PathLike | None = None,
    *,
    split: str = "train",
    background: str | None = "auto",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: Callable[[Any], Any] | None = None,
) -> ImportedDataset:
    """Parse and check a CVAT "Segmentation mask 1.1" folder (unzipped). Nothing is written.

    Args:
        root: the export folder (holding ``SegmentationClass/``).
        images_dir: the images (default ``<root>/JPEGImages``).
        split: split name for ``default.txt`` / no subset lists.
        background: ``"auto"`` (the label named background), ``"none"`` or a label name.
        max_pixels: limit on width * height, checked from the headers before decoding.
        progress: wraps the per-image loop.

    Raises:
        DatasetError: listing every problem found.
    """
    root = Path(root)
    cls_dir = root / "SegmentationClass"
    if not cls_dir.is_dir():
        raise DatasetError("no SegmentationClass/ folder: not a CVAT 'Segmentation mask 1.1' export (unzip it and "
                           "pass the folder holding SegmentationClass/)", path=root)
    img_dir = Path(images_dir) if images_dir is not None else root / "JPEGImages"
    if not img_dir.is_dir():
        raise DatasetError("image folder not found: export with images (JPEGImages/) or pass images_dir=<folder>",
                           path=img_dir)
    f = Findings()
    if (root / "labelmap.txt").is_file():
        table = read_labelmap_txt(root / "labelmap.txt")
    else:
        table = ColorTable.voc()
        f.note("no labelmap.txt: the masks are read with the 21 PASCAL VOC classes and colours")
    tax = table.taxonomy(background)
    obj_dir = root / "SegmentationObject"
    subsets = _subsets(root, split)
    if subsets is None:
        subsets = {split: sorted(p.relative_to(cls_dir).with_suffix("").as_posix() for p in cls_dir.rglob("*.png"))}
    by_stem: dict[str, str] = {}
    for p in sorted(img_dir.rglob("*")):
        if p.is_file() and p.suffix.lower() in IMAGE_EXTS:
            by_stem.setdefault(p.relative_to(img_dir).with_suffix("").as_posix(), p.relative_to(img_dir).as_posix())
    out: dict[str, list[ImportedImage]] = {}
    for s, names in subsets.items():
        pairs = []
        for name in names:
            try:
                mask = resolve_inside(cls_dir, name + ".png", what="item name")
            except ValueError as err:
                f.problem(str(err), path=root / "ImageSets" / "Segmentation")
                continue
            if not mask.is_file():
                f.problem(f"item {name!r} is listed but SegmentationClass/{name}.png is missing", path=cls_dir)
                continue
            rel = by_stem.get(name)
            if rel is None:
                f.problem(f"no image for item {name!r} in {img_dir} (looked for {name}.<jpg|png|...>)", path=mask)
                continue
            pairs.append((img_dir / rel, mask, rel))
        out[s] = _read_pairs(pairs, table, tax, obj_dir if obj_dir.is_dir() else None, max_pixels, f, progress,
                             "cvat")
        check_unique_names(f, s, out[s], root)
    f.raise_if_any(root, "CVAT segmentation-mask export")
    return ImportedDataset("cvat_masks", str(root), tax, out, f.warnings(), f.skipped, max_pixels=max_pixels)
