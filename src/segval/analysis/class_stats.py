"""Per-class statistics of one split: how many images, instances and pixels each class has.

The diagnosis (:mod:`segval.analysis.diagnosis`) compares these figures on the TRAIN split
against the median class to find classes with too few examples or too small objects.

Everything comes from one pass over the split with its own readers, so the numbers are those
the model trains on:

* ``images`` and ``pixels`` come from the semantic target (:meth:`SplitData.semantic_target`,
  the COCO rasterisation rule, or the label maps with ``source="label_map"``): occluded parts of
  an instance are not counted, ignore pixels (255) belong to no class;
* ``instances`` counts the non-crowd annotations of the category;
* ``median_instance_area`` is the median pixel count of those instances' decoded masks (the
  run-length area of the checked RLE, not the COCO ``area`` field, which exports compute
  differently for polygons; the two agree for RLE written by segval).

Example:
    >>> split = DatasetPackage.open("data/tabletop").split("train")       # doctest: +SKIP
    >>> class_statistics(split)["mug"]                                     # doctest: +SKIP
    {'images': 212, 'instances': 230, 'pixels': 1203311, 'median_instance_area': 4890.0}
"""

from __future__ import annotations

from typing import Any

import numpy as np
from tqdm import tqdm

from segval.dataset.split import SplitData
from segval.dataset.taxonomy import Taxonomy

__all__ = ["class_statistics"]


def class_statistics(
    split: SplitData,
    taxonomy: Taxonomy | None = None,
    *,
    source: str = "coco",
    progress: bool = False,
) -> dict[str, dict[str, Any]]:
    """Images, instances, pixels and median instance area per class of one split (one pass).

    Args:
        split: the split (e.g. ``pkg.split("train")``).
        taxonomy: the classes to report (default: ``split.taxonomy``); must be the split's
            taxonomy, since the semantic targets hold its train indices.
        source: where the semantic targets come from: ``"coco"`` (rasterised annotations) or
            ``"label_map"`` (the split's label-map PNGs).
        progress: show a progress bar (one step per image).

    Returns:
        ``{class name: {"images": int (images where the class has >= 1 pixel in the semantic
        target), "instances": int (non-crowd annotations), "pixels": int (semantic-target
        pixels), "median_instance_area": float | None (median decoded mask area of those
        instances; None without instances)}}`` for every class of the taxonomy, in train-index
        order.

    Raises:
        ValueError: ``taxonomy`` differs from the split's, or a bad ``source``.
        DatasetError: an annotation or label map cannot be read (names the file and ids).
    """
    tax = split.taxonomy if taxonomy is None else taxonomy
    if tax != split.taxonomy:
        raise ValueError(
            f"taxonomy must be the split's own taxonomy (its targets hold that taxonomy's train indices); "
            f"got {tax!r}, the split has {split.taxonomy!r}"
        )
    if source not in ("coco", "label_map"):
        raise ValueError(f"source must be 'coco' or 'label_map', got {source!r}")
    C = tax.num_classes
    lut = tax.lut()
    pixels = np.zeros(256, dtype=np.int64)  # by train index, 255 = ignore
    images = np.zeros(256, dtype=np.int64)
    areas: list[list[int]] = [[] for _ in range(C)]
    for rec in tqdm(split.images, desc=f"class statistics ({split.name})", unit="img", disable=not progress):
        # the run lengths are parsed once and cached by the split, so semantic_target reuses them
        for ann, rl in split.masks(rec):
            if not int(ann.get("iscrowd", 0) or 0):
                areas[int(lut[int(ann["category_id"])])].append(rl.area)
        target = split.semantic_target(rec, source=source)  # uint8[H, W], train indices
        counts = np.bincount(target.reshape(-1), minlength=256)
        pixels += counts
        images += counts > 0
    out: dict[str, dict[str, Any]] = {}
    for i, c in enumerate(tax):
        a = areas[i]
        out[c.name] = {
            "images": int(images[i]),
            "instances": len(a),
            "pixels": int(pixels[i]),
            "median_instance_area": float(np.median(np.asarray(a, dtype=np.int64))) if a else None,
        }
    return out
