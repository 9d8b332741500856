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
