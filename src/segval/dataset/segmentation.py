"""Decode and check one COCO ``segmentation``: compressed RLE, uncompressed RLE or polygons.

Every form becomes :class:`~segval.dataset.rle.RunLengths` (checked: size equals the image,
counts add up to H * W). Problems raise :class:`~segval.errors.DatasetError` naming the
annotation file, image id and annotation id.

pycocotools is used for polygons (``frPyObjects`` + ``merge``). Compressed counts are parsed
with numpy because pycocotools does not check them: on a cut-off or foreign string
(pycocotools 2.0.11) ``mask.decode`` returns a mask of uninitialised memory instead of failing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pycocotools import mask as mask_utils

from segval.dataset.rle import RunLengths, from_counts_list, from_counts_string
from segval.errors import DatasetError

__all__ = ["RunLengths", "decode_segmentation"]


def decode_segmentation(
    ann: Mapping[str, Any],
    height: int,
    width: int,
    *,
    path: Path | str | None = None,
    image_id: int | None = None,
) -> RunLengths:
    """Decode ``ann["segmentation"]`` for an image of size (height, width).

    Args:
        ann: a COCO annotation dict.
        height: H of the image.
        width: W of the image.
        path: annotation file named in errors.
        image_id: image id named in errors.

    Returns:
        The mask as checked run lengths.

    Raises:
        DatasetError: RLE size != image size, corrupt counts, polygon with fewer than 3 points,
            odd or non-numeric coordinates, unknown segmentation form.
    """
    ann_id = ann.get("id")
    segm = ann.get("segmentation")

    def fail(msg: str) -> DatasetError:
        return DatasetError(msg, path=path, image_id=image_id, annotation_id=ann_id)

    if isinstance(segm, Mapping):  # RLE
        size, counts = segm.get("size"), segm.get("counts")
        if not (isinstance(size, (list, tuple)) and len(size) == 2 and all(isinstance(v, int) for v in size)):
            raise fail(f"RLE 'size' must be [height, width], got {size!r}")
        if list(size) != [height, width]:
            raise fail(
                f"RLE size [{size[0]}, {size[1]}] (height, width) != image size [{height}, {width}]; "
                "re-encode the mask at the image size"
            )
        try:
            if isinstance(counts, (str, bytes)):
                return from_counts_string(counts, height, width)
            if isinstance(counts, list):
                return from_counts_list(counts, height, width)
        except ValueError as err:
            raise fail(f"corrupt RLE counts: {err}; re-export the annotation") from None
        raise fail(f"RLE 'counts' must be a string (compressed) or a list (uncompressed), got {type(counts).__name__}")

    if isinstance(segm, list):  # polygons
        if not segm:
            raise fail("segmentation is an empty polygon list; drop the annotation or draw its outline")
        for k, poly in enumerate(segm):
            if not isinstance(poly, list):
                raise fail(f"polygon {k} must be a flat list [x1, y1, x2, y2, ...], got {type(poly).__name__}")
            if len(poly) < 6:
                raise fail(
                    f"polygon {k} has {len(poly) // 2} point(s) ({len(poly)} numbers); a polygon needs at "
                    "least 3 points (6 numbers): fix or drop it"
                )
            if len(poly) % 2:
                raise fail(f"polygon {k} has an odd number of coordinates ({len(poly)}); expected x, y pairs")
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in poly):
                raise fail(f"polygon {k} has a coordinate that is not a finite number")
        try:
            rles = mask_utils.frPyObjects([[float(v) for v in poly] for poly in segm], height, width)
            merged = mask_utils.merge(rles) if len(rles) > 1 else rles[0]
            return from_counts_string(merged["counts"], height, width)
        except Exception as err:  # noqa: BLE001 - pycocotools raises assorted types
            raise fail(f"cannot rasterise the polygons: {err}") from None

    raise fail(f"segmentation must be an RLE object or a list of polygons, got {type(segm).__name__}")
