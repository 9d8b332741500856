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
    if items and all(isinstance(it.mask, RunLengths) for it in items):
        return paint_runs(height, width, [it.mask for it in items], [it.category_id for it in items],
                          [it.area for it in items], [it.ann_id for it in items], background_id)
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


def paint_runs(
    height: int,
    width: int,
    runs: Sequence[RunLengths],
    category_ids: Sequence[int],
    areas: Sequence[int] | None,
    ann_ids: Sequence[int],
    background_id: int | None,
) -> np.ndarray:
    """:func:`rasterize_semantic` of masks given as run lengths: uint8[H, W] (C-contiguous).

    Works on intervals, not pixels: the run boundaries of all masks cut the column-major pixel
    order into intervals that each mask covers entirely or not at all; each mask paints its
    intervals (one indexed write per mask, in the order of :func:`paint_order`), the intervals are
    expanded to pixels in one ``np.repeat`` and the column-major result is transposed once.
    ``category_ids`` may be any uint8 values (e.g. train indices): painting is per pixel, so
    mapping the values before or after gives the same target.

    Args:
        height: H.
        width: W.
        runs: the masks, each of size (H, W).
        category_ids: the value painted per mask.
        areas: pixel count per mask (decides the order), or None to count them from ``runs``.
        ann_ids: annotation id per mask (breaks ties in area).
        background_id: category id of unannotated pixels, or None for 255 (ignore).
    """
    fill = IGNORE if background_id is None else int(background_id)
    if not runs:
        return np.full((height, width), fill, dtype=np.uint8)
    for rl, ann_id in zip(runs, ann_ids):
        if (rl.height, rl.width) != (height, width):
            raise ValueError(
                f"annotation id {ann_id}: mask size [{rl.height}, {rl.width}] != image size [{height}, {width}]"
            )
    starts, ends, owner = _foreground_runs(runs)
    if areas is None:
        areas = np.bincount(owner, weights=ends - starts, minlength=len(runs)).astype(np.int64).tolist()
    order = paint_order(areas, ann_ids)
    cats = [int(category_ids[i]) for i in order]
    for i, cat in zip(order, cats):
        if not 0 <= cat <= IGNORE:
            raise ValueError(f"annotation id {ann_ids[i]}: category id {cat} does not fit in uint8")
    # sorted run boundaries (repeats only make empty intervals: cheaper than np.unique)
    cuts = np.sort(np.concatenate(([0, height * width], starts, ends)))
    first, last = np.searchsorted(cuts, starts), np.searchsorted(cuts, ends)  # run = intervals [first, last)
    covered = ranges(first, last - first)  # interval indices of each run, runs grouped by mask
    bounds = np.concatenate(([0], np.cumsum(np.bincount(owner, weights=last - first, minlength=len(runs)))))
    bounds = bounds.astype(np.int64).tolist()
    value = np.full(cuts.size - 1, fill, dtype=np.uint8)
    for i, cat in zip(order, cats):
        value[covered[bounds[i] : bounds[i + 1]]] = cat
    return np.ascontiguousarray(np.repeat(value, np.diff(cuts)).reshape(width, height).T)


def _foreground_runs(runs: Sequence[RunLengths]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Foreground runs of all masks: ``(starts, ends, owner)``, int64[R] each: column-major pixel
    offsets ``[start, end)`` and the position of the mask in ``runs``, grouped by mask in order."""
    sizes = np.fromiter((rl.counts.size for rl in runs), dtype=np.int64, count=len(runs))
    counts = np.concatenate([rl.counts for rl in runs])
    first = np.cumsum(sizes) - sizes
    owner = np.repeat(np.arange(len(runs)), sizes)
    ends = np.cumsum(counts, dtype=np.int64)
    ends -= np.concatenate(([0], ends))[first][owner]  # pixel offset of each run's end in its mask
    # foreground = odd position in its mask (empty runs may stay: they cover no interval)
    fg = ((np.arange(counts.size) - first[owner]) & 1).astype(bool)
    ends = ends[fg]
    return ends - counts[fg], ends, owner[fg]
