"""The semantic rasterisation rule: COCO instances -> one category id per pixel.

The rule (used by :class:`~segval.dataset.writer.PackageWriter` for label maps and by
:class:`~segval.dataset.package.SplitData` for targets built from COCO):

1. start from ``background_id`` everywhere (255, i.e. ignore, when it is None);
2. paint the instances in order of **decreasing area** (ties: increasing annotation id), each
   with its category id, so a smaller instance lying on a larger one stays visible;
3. crowd annotations are painted with their category like any other.

"Area" is the number of pixels of the decoded mask (the RLE area), not the annotation's
``area`` field, which exports compute differently for polygons.

The result holds category ids; map them to train indices with ``taxonomy.lut()[result]``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np

from segval.dataset.rle import RunLengths, ranges

IGNORE = 255


class PaintItem(NamedTuple):
    """One instance to paint.

    Attributes:
        category_id: the value painted.
        mask: bool[H, W] or :class:`~segval.dataset.rle.RunLengths` of size (H, W).
        area: pixel count of the mask (decides the painting order).
        ann_id: annotation id (breaks ties in area).
    """

    category_id: int
    mask: np.ndarray | RunLengths
    area: int
    ann_id: int


def paint_order(areas: Sequence[int], ann_ids: Sequence[int]) -> list[int]:
    """Indices of the instances in painting order: decreasing area, ties by increasing id.

    >>> paint_order([10, 50, 10], [3, 1, 2])
    [1, 2, 0]
    """
    return sorted(range(len(areas)), key=lambda i: (-int(areas[i]), int(ann_ids[i])))


def rasterize_semantic(
    height: int,
    width: int,
    instances: Iterable[PaintItem | tuple],
    background_id: int | None,
) -> np.ndarray:
    """Rasterise instances to a category-id map with the rule of this module.

    Args:
        height: H.
        width: W.
        instances: ``(category_id, mask, area, ann_id)`` tuples (or :class:`PaintItem`), mask
            ``bool[H, W]`` or :class:`~segval.dataset.rle.RunLengths`.
        background_id: category id of unannotated pixels, or None for 255 (ignore).

    Returns:
        uint8[H, W] of category ids (255 where ignored).

    Example:
        >>> big = np.ones((2, 3), bool); small = np.zeros((2, 3), bool); small[0, 0] = True
        >>> rasterize_semantic(2, 3, [(7, small, 1, 2), (5, big, 6, 1)], background_id=0).tolist()
        [[7, 5, 5], [5, 5, 5]]
    """
    items = [PaintItem(*it) for it in instances]
    fill = IGNORE if background_id is None else int(background_id)
    # paint in column-major order (the RLE order), i.e. on the transposed image, then transpose
    out_t = np.full((width, height), fill, dtype=np.uint8)
    flat = out_t.reshape(-1)
    for i in paint_order([it.area for it in items], [it.ann_id for it in items]):
        cat, mask = int(items[i].category_id), items[i].mask
        if not 0 <= cat <= IGNORE:
            raise ValueError(f"annotation id {items[i].ann_id}: category id {cat} does not fit in uint8")
        if isinstance(mask, RunLengths):
            if (mask.height, mask.width) != (height, width):
                raise ValueError(
                    f"annotation id {items[i].ann_id}: mask size [{mask.height}, {mask.width}] "
                    f"!= image size [{height}, {width}]"
                )
            starts, lengths = mask.fg_runs()
            if len(starts) <= 8:  # few runs: slices are cheaper than an index array
                for s, n in zip(starts.tolist(), lengths.tolist()):
                    flat[s : s + n] = cat
            else:
                flat[ranges(starts, lengths)] = cat
        else:
            m = np.asarray(mask)
            if m.shape != (height, width):
                raise ValueError(
                    f"annotation id {items[i].ann_id}: mask shape {m.shape} != image size ({height}, {width})"
                )
            np.copyto(out_t, cat, where=m.T.astype(bool, copy=False))
    return np.ascontiguousarray(out_t.T)
