"""COCO run-length encoding, parsed with numpy and checked.

COCO stores a mask ``bool[H, W]`` as run lengths over the *column-major* (Fortran) pixel order,
starting with a run of zeros: ``counts = [n0, n1, n0', n1', ...]`` summing to ``H * W``.
"Compressed" RLE packs the counts into an ASCII string (pycocotools' ``rleToString``);
"uncompressed" RLE keeps the list.

:class:`RunLengths` holds the parsed counts of one mask. Keeping masks as runs lets the
semantic rasteriser paint only the pixels an instance covers (O(area), not O(H * W) per
instance), which makes COCO-RLE targets about as cheap to build as reading a label-map PNG.
Parsing checks what pycocotools does not: counts that do not add up to ``H * W`` or that are
negative (a corrupt string) raise :class:`ValueError` instead of yielding garbage.

:func:`encode_coco_rle` is the one encoder of masks as COCO compressed RLE (with area and bbox).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class RunLengths:
    """A mask as COCO run lengths.

    Attributes:
        height: H.
        width: W.
        counts: int[K] (int64, or int32 when H * W < 2**31), alternating runs of 0 and 1 in column-major order, starting with 0;
            non-negative, summing to H * W.
    """

    height: int
    width: int
    counts: np.ndarray

    @property
    def area(self) -> int:
        """Number of foreground pixels."""
        return int(self.counts[1::2].sum())

    def fg_runs(self) -> tuple[np.ndarray, np.ndarray]:
        """Foreground runs as (starts, lengths), int64[R] each, in column-major pixel offsets."""
        ends = np.cumsum(self.counts)
        lengths = self.counts[1::2]
        starts = ends[1::2] - lengths
        keep = lengths > 0
        return starts[keep], lengths[keep]

    def fg_index(self) -> np.ndarray:
        """Column-major flat indices of the foreground pixels, int64[area], ascending."""
        starts, lengths = self.fg_runs()
        return ranges(starts, lengths)

    def decode(self) -> np.ndarray:
        """The mask, bool[H, W] (C-contiguous)."""
        flat = np.zeros(self.height * self.width, dtype=bool)
        flat[self.fg_index()] = True
        return flat.reshape(self.width, self.height).T.copy()

    def to_coco(self) -> dict:
        """Uncompressed COCO RLE ``{"size": [H, W], "counts": [...]}``."""
        return {"size": [self.height, self.width], "counts": [int(c) for c in self.counts]}


def ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, s + l)`` for each (s, l), vectorised. int64[sum(lengths)]."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    # offset of each run's first element in the output
    out_start = np.cumsum(lengths) - lengths
    return np.arange(total, dtype=np.int64) + np.repeat(starts - out_start, lengths)


def parse_counts_string(counts: str | bytes) -> np.ndarray:
    """Parse a compressed COCO RLE ``counts`` string into run lengths (int64[K]).

    Mirrors pycocotools' ``rleFrString``: each value is 5-bit groups (offset by 48, 0x20 =
    continuation, 0x10 in the last group = negative); from the fourth value on, each value is a
    delta to the count two places before it.

    Raises:
        ValueError: a character outside the encoding's range or a value cut off at the end.
    """
    if isinstance(counts, str):
        try:
            counts = counts.encode("ascii")
        except UnicodeEncodeError:
            raise ValueError("counts string has non-ASCII characters") from None
    c = np.frombuffer(counts, dtype=np.uint8).astype(np.int64) - 48
    if c.size == 0:
        return np.zeros(0, dtype=np.int64)
    if c.min() < 0 or c.max() > 63:
        raise ValueError("counts string has characters outside the COCO RLE alphabet ('0'..'o')")
    more = (c & 0x20) != 0
    if more[-1]:
        raise ValueError("counts string ends in the middle of a value")
    last = ~more  # the final 5-bit group of each value
    value_end = np.flatnonzero(last)
    value_start = np.concatenate(([0], value_end[:-1] + 1))
    k = np.arange(c.size) - np.repeat(value_start, value_end - value_start + 1)  # group index in value
    if k.max() > 11:  # 60 bits: far beyond any image
        raise ValueError("counts string has a value too long to be a run length")
    x = np.add.reduceat((c & 0x1F) << (5 * k), value_start)
    negative = (c[value_end] & 0x10) != 0
    x = np.where(negative, x | (-1 << (5 * (k[value_end] + 1))), x)
    # undo the delta coding: cnts[m] = x[m] + cnts[m - 2] for m > 2
    cnts = x.copy()
    if cnts.size > 3:
        cnts[3::2] = np.cumsum(x[1::2])[1:]
    if cnts.size > 4:
        cnts[4::2] = np.cumsum(x[2::2])[1:]
    return cnts


def from_counts_strings(strings: Sequence[str | bytes], height: int, width: int) -> list[RunLengths]:
    """Parse and check several compressed RLEs of one image in a single vectorised pass.

    Same result as ``[from_counts_string(s, height, width) for s in strings]``, without a round
    of numpy calls per string (an image's annotations cost about as much as one). The counts are
    views into one array: int32 when ``height * width < 2**31``, else int64.

    Raises:
        ValueError: any string is corrupt (which one is not said: parse it with
            :func:`from_counts_string` for the message).
    """
    if not strings:
        return []
    raw = [s.encode("ascii") if isinstance(s, str) else bytes(s) for s in strings]  # UnicodeError is a ValueError
    cnts, offsets = _parse_concatenated(raw)
    if cnts.size and cnts.min() < 0:
        raise ValueError("RLE counts contain negative run lengths (corrupt counts)")
    if np.any(np.add.reduceat(cnts, offsets[:-1]) != height * width):
        raise ValueError(f"RLE counts do not cover the {height * width} pixels of size [{height}, {width}]")
    if height * width < 2**31:
        cnts = cnts.astype(np.int32)
    bounds = offsets.tolist()
    return [RunLengths(int(height), int(width), cnts[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]


def _char_tables() -> tuple[np.ndarray, np.ndarray]:
    """Per byte value: its kind (0 = last 5-bit group of a value, 1 = more groups follow, 2 = not in
    the alphabet) and its 5-bit payload, sign-extended in a last group (so a value is the plain
    sum of ``payload << 5 * group index``)."""
    c = np.arange(256) - 48
    kind = np.where((c < 0) | (c > 63), 2, (c & 0x20) >> 5).astype(np.int8)
    payload = (c & 0x1F) - np.where((kind == 0) & ((c & 0x10) != 0), 32, 0)
    return kind, payload.astype(np.int64)


_CHAR_KIND, _CHAR_PAYLOAD = _char_tables()


def _parse_concatenated(raw: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """:func:`parse_counts_string` of each string at once: ``(counts int64[K], offsets int64[N + 1])``,
    string i's counts being ``counts[offsets[i]:offsets[i + 1]]``. Every string holds at least one value."""
    if not all(raw):
        raise ValueError("empty counts string")
    lengths = np.fromiter(map(len, raw), dtype=np.int64, count=len(raw))
    b = np.frombuffer(b"".join(raw), dtype=np.uint8)
    kind = _CHAR_KIND[b]
    if kind.max() > 1:
        raise ValueError("counts string has characters outside the COCO RLE alphabet ('0'..'o')")
    char_end = np.cumsum(lengths)
    if kind[char_end - 1].any():  # no value runs on into the next string
        raise ValueError("counts string ends in the middle of a value")
    value_end = np.flatnonzero(kind == 0)
    value_start = np.concatenate(([0], value_end[:-1] + 1))
    groups = value_end - value_start + 1
    if groups.max() > 12:  # 60 bits: far beyond any image
        raise ValueError("counts string has a value too long to be a run length")
    shift = 5 * (np.arange(b.size) - np.repeat(value_start, groups))  # 5 * group index in its value
    x = np.add.reduceat(_CHAR_PAYLOAD[b] << shift, value_start)
    offsets = np.concatenate(([0], np.searchsorted(value_end, char_end)))  # values before each string's end
    per_string = np.diff(offsets)
    # undo the delta coding: cnts[m] = x[m] + cnts[m - 2] for m > 2 (m: value index in its string).
    # Running sums over every other value of the whole array give each chain's sums after
    # subtracting the sum before the chain's head (m = 1 for odd m, m = 2 for even m, m = 0 alone).
    first = np.repeat(offsets[:-1], per_string)
    m = np.arange(x.size) - first
    head = first + np.minimum(m, 2 - (m & 1))  # m = 0: itself; odd m: m = 1; even m: m = 2
    total = np.empty_like(x)
    total[0::2] = np.cumsum(x[0::2])
    total[1::2] = np.cumsum(x[1::2])
    return total - total[head] + x[head], offsets


def check_counts(counts: np.ndarray, height: int, width: int) -> None:
    """Raise ValueError unless ``counts`` are non-negative and sum to ``height * width``."""
    if counts.size and counts.min() < 0:
        raise ValueError("RLE counts contain negative run lengths (corrupt counts)")
    total = int(counts.sum())
    if total != height * width:
        raise ValueError(
            f"RLE counts cover {total} pixels but size [{height}, {width}] has {height * width} (corrupt counts)"
        )


def from_counts_string(counts: str | bytes, height: int, width: int) -> RunLengths:
    """Parse and check a compressed RLE. Raises ValueError when corrupt."""
    cnts = parse_counts_string(counts)
    check_counts(cnts, height, width)
    return RunLengths(int(height), int(width), cnts)


def from_counts_list(counts: list, height: int, width: int) -> RunLengths:
    """Check an uncompressed RLE counts list. Raises ValueError when corrupt."""
    try:
        cnts = np.asarray(counts, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("uncompressed RLE counts must be a list of integers") from None
    if cnts.ndim != 1 or (cnts.size and not np.all(np.isfinite(cnts) & (cnts == np.round(cnts)))):
        raise ValueError("uncompressed RLE counts must be a flat list of integers")
    cnts = cnts.astype(np.int64)
    check_counts(cnts, height, width)
    return RunLengths(int(height), int(width), cnts)


def from_mask(mask: np.ndarray) -> RunLengths:
    """Run lengths of a mask ``bool[H, W]``."""
    h, w = mask.shape
    flat = np.asarray(mask, dtype=bool).T.reshape(-1)  # column-major order
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate(([0], change, [flat.size]))
    counts = np.diff(bounds)
    if flat.size and flat[0]:
        counts = np.concatenate(([0], counts))
    return RunLengths(h, w, counts.astype(np.int64))


def encode_coco_rle(mask: np.ndarray) -> tuple[dict[str, Any], int, list[float]]:
    """A mask ``bool[H, W]`` (or 0/1) as COCO compressed RLE, with its area and bbox.

    Returns:
        ``({"size": [H, W], "counts": str}, area, [x, y, w, h])``: the segmentation as COCO JSON holds it,
        the number of mask pixels, and pycocotools' ``toBbox`` box as floats.
    """
    from pycocotools import mask as mask_utils

    h, w = mask.shape
    rle = mask_utils.encode(np.asfortranarray(np.asarray(mask).astype(np.uint8)))
    return ({"size": [int(h), int(w)], "counts": rle["counts"].decode("ascii")}, int(mask_utils.area(rle)),
            [float(v) for v in mask_utils.toBbox(rle)])
