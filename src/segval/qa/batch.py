"""Parse the compressed COCO RLEs of many annotations at once (one vectorised pass, for ``segval qa``).

:func:`parse_many` gives the same run lengths as :func:`segval.dataset.rle.parse_counts_string`
on each string, with no per-string numpy calls; a string it cannot vouch for (bad characters, a value
cut off or too long, negative runs, runs not covering the image) is reported as not parsed, and the
caller decodes that annotation the ordinary way, which raises the usual error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from segval.dataset.rle import RunLengths
from segval.qa.checks import MaskInfo, rle_info


def parse_many(strings: Sequence[bytes], pixels: Sequence[int]) -> list[np.ndarray | None]:
    """Run lengths (int64[K]) of each compressed counts string, or None where the string is not a
    valid RLE of ``pixels`` (height * width) pixels."""
    n = len(strings)
    lens = np.fromiter((len(s) for s in strings), dtype=np.int64, count=n)
    out: list[np.ndarray | None] = [None] * n
    if n == 0 or lens.sum() == 0:
        return out
    bad = lens == 0
    ends = np.cumsum(lens)
    c = np.frombuffer(b"".join(strings), dtype=np.uint8).astype(np.int64) - 48
    sid = np.repeat(np.arange(n), lens)
    bad[sid[(c < 0) | (c > 63)]] = True
    c &= 63
    more = (c & 0x20) != 0
    last_char = ends[lens > 0] - 1
    bad[sid[last_char[more[last_char]]]] = True  # a value cut off at the end
    more[last_char] = False
    value_end = np.flatnonzero(~more)
    value_start = np.concatenate(([0], value_end[:-1] + 1))
    k = np.arange(c.size) - np.repeat(value_start, value_end - value_start + 1)
    bad[sid[k > 11]] = True  # over 60 bits
    k = np.minimum(k, 11)
    x = np.add.reduceat((c & 0x1F) << (5 * k), value_start)
    x = np.where((c[value_end] & 0x10) != 0, x | (-1 << (5 * (k[value_end] + 1))), x)
    # undo the delta coding per string: cnts[m] = x[m] + cnts[m - 2] for m > 2
    vsid = sid[value_end]
    first = np.searchsorted(vsid, np.arange(n))
    m = np.arange(x.size) - first[vsid]
    odd = (m % 2) == 1
    co = np.concatenate(([0], np.cumsum(np.where(odd, x, 0))))
    ce = np.concatenate(([0], np.cumsum(np.where(~odd & (m >= 2), x, 0))))
    base = first[vsid]
    cnts = np.where(odd, co[1:] - co[base], np.where(m >= 2, ce[1:] - ce[base], x))
    bad[vsid[cnts < 0]] = True
    nv = np.bincount(vsid, minlength=n)
    sums = np.bincount(vsid, weights=cnts.astype(np.float64), minlength=n)
    bad |= sums != np.asarray(pixels, dtype=np.float64)
    stops = first + nv
    for i in np.flatnonzero(~bad).tolist():
        out[i] = cnts[first[i]:stops[i]]
    return out


def compressed_counts(ann: Mapping[str, Any], height: int, width: int) -> bytes | None:
    """The compressed counts of an RLE annotation of size [height, width] (ASCII bytes), else None."""
    segm = ann.get("segmentation")
    if not isinstance(segm, Mapping):
        return None
    size, counts = segm.get("size"), segm.get("counts")
    if not (isinstance(size, list) and len(size) == 2 and type(size[0]) is int and type(size[1]) is int) \
            or size[0] != height or size[1] != width:
        return None
    if isinstance(counts, str):
        return counts.encode("ascii") if counts.isascii() else None
    return counts if isinstance(counts, bytes) else None


def split_masks(split: Any, recs: Sequence[Any]) -> list[list[tuple[dict, RunLengths]] | None]:
    """``split.masks(rec)`` for each image, parsed in one pass; None for an image with any annotation
    that is not a valid compressed RLE (decode that one with ``split.masks``, which names the problem)."""
    anns = [split.annotations_for(r.id) for r in recs]
    strings: list[bytes] = []
    pixels: list[int] = []
    start: list[int | None] = []  # first string of each image; None: not queued
    for r, a in zip(recs, anns):
        queued = [compressed_counts(ann, r.height, r.width) for ann in a]
        if all(q is not None for q in queued):
            start.append(len(strings))
            strings += queued
            pixels += [r.height * r.width] * len(queued)
        else:
            start.append(None)
    parsed = parse_many(strings, pixels)
    out: list[list | None] = []
    for r, a, s0 in zip(recs, anns, start):
        cnts = None if s0 is None else parsed[s0:s0 + len(a)]
        if cnts is None or any(c is None for c in cnts):
            out.append(None)
        else:
            out.append([(ann, RunLengths(r.height, r.width, c)) for ann, c in zip(a, cnts)])
    return out


def infos_many(counts: Sequence[np.ndarray], heights: Sequence[int], widths: Sequence[int]) -> list[MaskInfo]:
    """:func:`segval.qa.checks.rle_info` of many masks, the one-run-per-column ones in one
    vectorised pass (the others one by one)."""
    n = len(counts)
    nv = np.fromiter((len(c) for c in counts), dtype=np.int64, count=n)
    if n == 0 or not nv.all():
        return [rle_info(c, int(h), int(w)) for c, h, w in zip(counts, heights, widths)]
    allc = np.concatenate([np.asarray(c, dtype=np.int64) for c in counts])
    first = np.cumsum(nv) - nv
    vid = np.repeat(np.arange(n), nv)
    m = np.arange(allc.size) - first[vid]
    cs = np.cumsum(allc)
    ends = cs - (cs[first] - allc[first])[vid]  # per-mask cumulative sums
    fg = np.flatnonzero((m % 2 == 1) & (allc > 0))  # non-empty foreground runs
    mid = vid[fg]
    e = ends[fg]
    s = e - allc[fg]
    h = np.asarray(heights, dtype=np.int64)[mid]
    col = s // h
    nruns = np.bincount(mid, minlength=n)
    bad = np.bincount(mid, weights=((e - 1) // h != col), minlength=n) > 0  # a run crossing a column
    same = mid[1:] == mid[:-1]
    tops, bottoms = s - col * h, e - col * h
    lo = np.maximum(tops[1:], tops[:-1])
    hi = np.minimum(bottoms[1:], bottoms[:-1])
    step_bad = same & ((col[1:] - col[:-1] != 1) | (hi < lo))  # not the next column, or not touching
    bad |= np.bincount(mid[1:], weights=step_bad, minlength=n) > 0
    inter = np.bincount(mid[1:], weights=np.where(same, np.maximum(hi - lo, 0), 0), minlength=n).astype(np.int64)
    area = np.bincount(mid, weights=e - s, minlength=n).astype(np.int64)
    rfirst = np.cumsum(nruns) - nruns
    has = nruns > 0
    y0 = np.zeros(n, np.int64)
    y1 = np.zeros(n, np.int64)
    if has.any():
        y0[has] = np.minimum.reduceat(tops, rfirst[has])
        y1[has] = np.maximum.reduceat(bottoms, rfirst[has])
    out: list[MaskInfo] = []
    for i in range(n):
        k, r = int(rfirst[i]), int(nruns[i])
        if r == 0 or bad[i]:
            out.append(rle_info(counts[i], int(heights[i]), int(widths[i])))
            continue
        a = int(area[i])
        per = 2 * r + 2 * a - 2 * int(inter[i])
        x0 = int(col[k])
        out.append(MaskInfo(a, (int(y0[i]), x0, int(y1[i]), x0 + r), None, 1, per, float(per * per / a),
                            (tops[k:k + r], bottoms[k:k + r])))
    return out


def image_infos(items_per_image: Sequence[list[tuple[dict, RunLengths]] | None],
                background_id: int | None) -> list[list[MaskInfo | None] | None]:
    """:func:`infos_many` over the annotations of many images (aligned with each image's items;
    None for background annotations and for images without items)."""
    where, counts, hs, ws = [], [], [], []
    for i, items in enumerate(items_per_image):
        for j, (ann, rl) in enumerate(items or ()):
            if background_id is None or int(ann["category_id"]) != background_id:
                where.append((i, j))
                counts.append(rl.counts)
                hs.append(rl.height)
                ws.append(rl.width)
    out: list[list | None] = [None if items is None else [None] * len(items) for items in items_per_image]
    for (i, j), info in zip(where, infos_many(counts, hs, ws)):
        out[i][j] = info
    return out
