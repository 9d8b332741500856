"""QA measurements on masks and instances: pure functions (numpy + OpenCV), no thresholds.

The runner (:mod:`segval.qa.runner`) compares the values with the thresholds of ``conf/qa.yaml``.

Definitions:
    * **connected components**: ``cv2.connectedComponents`` with 8-connectivity (pixels touching
      at a corner belong to the same component).
    * **perimeter**: the *pixel-edge count*: the number of unit edges between a foreground pixel and
      a background pixel (4-neighbourhood; the image border counts as background, and the edges of
      holes count). A 10 x 10 square has perimeter 40, so ``perimeter**2 / area`` is 16 for a square
      of any size, about 20 for a disc (4**2 * 4 / pi), and grows with a ragged or thin outline
      (a 1-pixel-wide line of length L has about 4 L). It does not depend on contour approximation.
    * **temporal IoU**: IoU of the same object in two consecutive frames of a video. Objects are
      matched by category + track id when the annotations carry one (``attributes.track_id``,
      ``track_id`` or ``instance_id``), else greedily by best IoU within the category.

Example:
    >>> m = np.zeros((20, 20), bool); m[5:15, 5:15] = True
    >>> num_components(m), pixel_perimeter(m), jaggedness(m)
    (1, 40, 16.0)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

__all__ = [
    "Box",
    "MaskInfo",
    "bounding_box",
    "crop_iou",
    "crop_of",
    "flat_runs",
    "info_from_crop",
    "jaggedness",
    "mask_info",
    "match_instances",
    "num_components",
    "overlap_pixels",
    "pixel_perimeter",
    "rle_crop",
    "rle_info",
    "run_cover",
    "track_key",
    "uncovered_fraction",
]

#: (y0, x0, y1, x1), half-open
Box = tuple[int, int, int, int]


def bounding_box(mask: np.ndarray) -> Box | None:
    """Tight half-open box ``(y0, x0, y1, x1)`` of a bool mask, or None when it is empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask[rows[0] : rows[-1] + 1].any(axis=0))
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def num_components(mask: np.ndarray) -> int:
    """Number of 8-connected foreground components of a bool mask (0 for an empty mask)."""
    if not mask.any():
        return 0
    n, _ = cv2.connectedComponents(np.ascontiguousarray(mask, dtype=np.uint8), connectivity=8)
    return int(n) - 1


def pixel_perimeter(mask: np.ndarray) -> int:
    """Pixel-edge perimeter: unit edges between foreground and background (border = background)."""
    m = np.pad(np.asarray(mask, dtype=bool), 1)
    return int(np.count_nonzero(m[:, 1:] != m[:, :-1]) + np.count_nonzero(m[1:, :] != m[:-1, :]))


def jaggedness(mask: np.ndarray) -> float:
    """``pixel_perimeter(mask) ** 2 / area`` (16 for a square, ~20 for a disc); 0.0 for an empty mask."""
    area = int(np.count_nonzero(mask))
    if area == 0:
        return 0.0
    p = pixel_perimeter(mask)
    return float(p * p / area)


@dataclass
class MaskInfo:
    """Measurements of one instance mask, with its crop kept for temporal IoU.

    Attributes:
        area: foreground pixels.
        box: tight bounding box, None for an empty mask.
        crop: bool mask inside ``box`` (None for an empty mask).
        components: 8-connected components.
        perimeter: pixel-edge perimeter.
        jaggedness: perimeter**2 / area (0.0 when empty).
        runs: for a mask with exactly one run per column over its box columns, ``(tops, bottoms)``
            int64[x1 - x0] (half-open rows per column); ``crop`` is then built on first use
            (:func:`crop_of`). None otherwise.
    """

    area: int
    box: Box | None
    crop: np.ndarray | None
    components: int
    perimeter: int
    jaggedness: float
    runs: tuple[np.ndarray, np.ndarray] | None = None


def crop_of(info: MaskInfo) -> np.ndarray | None:
    """The bool crop of ``info`` (built from its runs on first use and kept)."""
    if info.crop is None and info.runs is not None:
        tops, bottoms = info.runs
        rows = np.arange(info.box[0], info.box[2])[:, None]
        info.crop = (rows >= tops[None, :]) & (rows < bottoms[None, :])
    return info.crop


def rle_info(counts: np.ndarray, height: int, width: int) -> MaskInfo:
    """:class:`MaskInfo` of a mask given as COCO run lengths, mostly without decoding it.

    When the mask has exactly one run in each column of its box, and the runs of neighbouring
    columns touch (8-connectivity), it is one component, and area, box and pixel-edge perimeter
    follow from the runs: ``2 * columns`` vertical edges plus ``2 * area - 2 * sum |A_x & A_x+1|``
    horizontal ones. Any other mask is decoded into its crop (:func:`rle_crop`). Same values as
    ``info_from_crop(*rle_crop(counts, height, width))``.
    """
    c = np.asarray(counts, dtype=np.int64)
    ends = np.cumsum(c)
    s, e = ends[:-1:2], ends[1::2]  # foreground runs: [s, e) in column-major flat index
    keep = e > s
    if not keep.all():
        s, e = s[keep], e[keep]
    if s.size == 0:
        return MaskInfo(0, None, None, 0, 0, 0.0)
    col = s // height
    if int(col[-1] - col[0]) + 1 == s.size and not np.any((e - 1) // height != col) and \
            (s.size == 1 or np.all(col[1:] - col[:-1] == 1)):
        tops, bottoms = s - col * height, e - col * height
        lo = np.maximum(tops[1:], tops[:-1])
        hi = np.minimum(bottoms[1:], bottoms[:-1])
        if np.all(hi >= lo):  # neighbouring runs overlap or touch at a corner: one component
            area = int((e - s).sum())
            per = 2 * s.size + 2 * area - 2 * int(np.maximum(hi - lo, 0).sum())
            box = (int(tops.min()), int(col[0]), int(bottoms.max()), int(col[-1]) + 1)
            return MaskInfo(area, box, None, 1, per, float(per * per / area), (tops, bottoms))
    box, crop = rle_crop(c, height, width)
    return info_from_crop(box, crop)


def mask_info(mask: np.ndarray, *, shape_checks: bool = True) -> MaskInfo:
    """Area, box, crop and (when ``shape_checks``) components / perimeter / jaggedness of a mask.

    Works on the bounding-box crop, so the cost follows the object size, not the image size.
    """
    box = bounding_box(mask)
    if box is None:
        return MaskInfo(0, None, None, 0, 0, 0.0)
    y0, x0, y1, x1 = box
    return info_from_crop(box, np.ascontiguousarray(mask[y0:y1, x0:x1]), shape_checks=shape_checks)


def rle_crop(counts: np.ndarray, height: int, width: int) -> tuple[Box | None, np.ndarray | None]:
    """Tight box and bool crop of a mask given as COCO run lengths (column-major, starting with 0).

    Decodes only the columns the mask spans, so the cost follows the object, not the image.
    Same result as ``bounding_box(mask)`` and ``mask[y0:y1, x0:x1]`` on the decoded mask.
    """
    counts = np.asarray(counts, dtype=np.int64)
    fg = np.flatnonzero(counts[1::2])
    if fg.size == 0:
        return None, None
    first, last = 2 * int(fg[0]) + 1, 2 * int(fg[-1]) + 1  # first and last non-empty foreground run
    start = int(counts[:first].sum())
    seg = counts[first : last + 1]  # runs of 1, 0, 1, ..., 1
    stop = start + int(seg.sum())
    x0, x1 = start // height, (stop - 1) // height + 1
    off = x0 * height
    flat = np.zeros((x1 - x0) * height, dtype=bool)
    flat[start - off : stop - off] = np.repeat(np.arange(seg.size) % 2 == 0, seg)
    cols = flat.reshape(x1 - x0, height)
    rows = np.flatnonzero(cols.any(axis=0))
    y0, y1 = int(rows[0]), int(rows[-1]) + 1
    return (y0, x0, y1, x1), np.ascontiguousarray(cols[:, y0:y1].T)


def info_from_crop(box: Box | None, crop: np.ndarray | None, *, shape_checks: bool = True) -> MaskInfo:
    """:class:`MaskInfo` of a mask given by its tight box and crop (see :func:`rle_crop`)."""
    if box is None or crop is None:
        return MaskInfo(0, None, None, 0, 0, 0.0)
    area = int(np.count_nonzero(crop))
    if not shape_checks:
        return MaskInfo(area, box, crop, 0, 0, 0.0)
    per = pixel_perimeter(crop)
    return MaskInfo(area, box, crop, num_components(crop), per, float(per * per / area))


def flat_runs(info: MaskInfo) -> tuple[np.ndarray, np.ndarray]:
    """Foreground runs of a :class:`MaskInfo` with ``runs``: (starts, ends) in column-major flat
    index of a box-height-free layout (column x at ``x * 2**20``), int64[columns] each."""
    tops, bottoms = info.runs
    base = np.arange(info.box[1], info.box[3], dtype=np.int64) << 20
    return base + tops, base + bottoms


def run_cover(infos: Sequence[MaskInfo]) -> tuple[int, int, list[bool]]:
    """Masks that all have ``runs``: (pixels covered by one or more, pixels covered by two or more,
    per mask whether it covers any of the latter, i.e. intersects another mask)."""
    if not infos:
        return 0, 0, []
    parts = [flat_runs(i) for i in infos]
    pos = np.concatenate([p[0] for p in parts] + [p[1] for p in parts])
    n = len(pos) // 2
    order = np.argsort(pos, kind="stable")  # at a tie starts come first: zero-length segments only
    depth = np.cumsum(np.where(order < n, 1, -1))[:-1]
    seg = np.diff(pos[order])
    over = np.concatenate(([0], np.cumsum(np.where(depth >= 2, seg, 0))))
    rank = np.empty(2 * n, dtype=np.int64)
    rank[order] = np.arange(2 * n)
    inside = over[rank[n:]] - over[rank[:n]]  # pixels of two or more inside each run
    owner = np.repeat(np.arange(len(infos)), [len(p[0]) for p in parts])
    touch = np.bincount(owner, weights=inside, minlength=len(infos)) > 0
    return int(seg[depth >= 1].sum()), int(over[-1]), touch.tolist()


def uncovered_fraction(masks: Sequence[np.ndarray], height: int, width: int) -> float:
    """Share of the image's pixels that no mask covers (the background share)."""
    total = height * width
    if total == 0:
        return 0.0
    if not masks:
        return 1.0
    covered = np.zeros((height, width), dtype=bool)
    for m in masks:
        covered |= m
    return float(1.0 - np.count_nonzero(covered) / total)


def overlap_pixels(masks: Sequence[np.ndarray]) -> tuple[int, list[int]]:
    """Pixels covered by two or more masks, and the indices of the masks touching them."""
    if len(masks) < 2:
        return 0, []
    count = np.zeros(masks[0].shape, dtype=np.uint16)
    for m in masks:
        count += m
    multi = count > 1
    n = int(np.count_nonzero(multi))
    if n == 0:
        return 0, []
    return n, [i for i, m in enumerate(masks) if np.any(m & multi)]


def crop_iou(a: MaskInfo, b: MaskInfo) -> float:
    """IoU of two masks given as :class:`MaskInfo` crops (same image size); 0.0 if both are empty."""
    if a.box is None or b.box is None:
        return 0.0
    y0, x0 = max(a.box[0], b.box[0]), max(a.box[1], b.box[1])
    y1, x1 = min(a.box[2], b.box[2]), min(a.box[3], b.box[3])
    inter = 0
    if y0 < y1 and x0 < x1 and a.runs is not None and b.runs is not None:
        ta, ba = (r[x0 - a.box[1] : x1 - a.box[1]] for r in a.runs)
        tb, bb = (r[x0 - b.box[1] : x1 - b.box[1]] for r in b.runs)
        inter = int(np.maximum(np.minimum(ba, bb) - np.maximum(ta, tb), 0).sum())
    elif y0 < y1 and x0 < x1:
        crop_of(a), crop_of(b)
        sa = a.crop[y0 - a.box[0] : y1 - a.box[0], x0 - a.box[1] : x1 - a.box[1]]
        sb = b.crop[y0 - b.box[0] : y1 - b.box[0], x0 - b.box[1] : x1 - b.box[1]]
        inter = int(np.count_nonzero(sa & sb))
    union = a.area + b.area - inter
    return float(inter / union) if union else 0.0


def track_key(ann: Mapping[str, Any]) -> Any | None:
    """The track id of a COCO annotation: ``attributes.track_id``, ``track_id`` or ``instance_id``; None if absent."""
    attrs = ann.get("attributes")
    if isinstance(attrs, Mapping) and attrs.get("track_id") is not None:
        return attrs["track_id"]
    for key in ("track_id", "instance_id"):
        if ann.get(key) is not None:
            return ann[key]
    return None


def match_instances(
    prev: Sequence[tuple[int, Any, MaskInfo]], cur: Sequence[tuple[int, Any, MaskInfo]]
) -> list[tuple[int, int, float]]:
    """Match the objects of two consecutive frames and give their IoU.

    Args:
        prev, cur: ``(category_id, track_id or None, MaskInfo)`` per instance.

    Returns:
        ``(index in prev, index in cur, iou)`` per matched pair. Objects with a track id are
        matched by (category, track id); the others greedily by highest IoU within the category
        (a current object with no same-category object left in ``prev`` is new and unmatched;
        one whose best candidate has IoU 0 is matched with IoU 0, so that a jump is reported).
    """
    pairs: list[tuple[int, int, float]] = []
    used_prev: set[int] = set()
    used_cur: set[int] = set()
    by_track = {(c, t): i for i, (c, t, _) in enumerate(prev) if t is not None}
    for j, (c, t, info) in enumerate(cur):
        if t is not None and (c, t) in by_track:
            i = by_track[(c, t)]
            pairs.append((i, j, crop_iou(prev[i][2], info)))
            used_prev.add(i)
            used_cur.add(j)
    # the rest: greedy best IoU within each category (objects with a track id only match untracked ones)
    cands = []
    for j, (c, t, info) in enumerate(cur):
        if j in used_cur:
            continue
        for i, (pc, pt, pinfo) in enumerate(prev):
            if i in used_prev or pc != c or (t is not None and pt is not None):
                continue
            cands.append((crop_iou(pinfo, info), i, j))
    cands.sort(key=lambda x: (-x[0], x[1], x[2]))
    for iou, i, j in cands:
        if i in used_prev or j in used_cur:
            continue
        pairs.append((i, j, iou))
        used_prev.add(i)
        used_cur.add(j)
    pairs.sort(key=lambda p: p[1])
    return pairs
