"""Model-free evidence of label errors, gathered from the dataset package itself.

* **Temporal** (frames of a video, ordered by ``frame_index``): every annotation of frame t is
  matched to its object in frames t-2 .. t+2 by best mask IoU over *all* classes (an object keeps
  its pixels when its class is swapped; IoU >= ``pair_iou``), after translating each neighbour
  frame onto frame t by the camera's shift (the median centroid displacement of three or more
  objects matched at IoU >= ``match_iou``). Injected or real label errors are single-frame
  *spikes*: the frame disagrees with both neighbours, which agree with each other.

  - ``temporal_shape``, the best of three spike measures (+ ``second_weight`` x the others), each
    compared with the same class in the same video (its median, and its spread: 90th percentile
    - median, which keeps an articulated arm's usual changes from counting):

    * *outline band*: pixels of the annotation outside both masks of a neighbour pair plus pixels
      inside both but missing from it, over its perimeter, for the pairs (t-1, t+1) and (t-2, t+2);
      the smaller is kept (a frame next to a corrupted one is explained by the pair that skips it).
      Smooth motion keeps it near 0; dilated / eroded / shifted / simplified masks raise it. With
      one neighbour (first / last frame): the symmetric difference with it over the perimeter,
      against the class's usual consecutive-frame value. Scale ``shape_scale_px``.
    * *area spike*: ``min(|log A_t / A_t-1|, |log A_t / A_t+1|)`` when both changes have the same
      sign, else 0 (an occlusion onset or an object leaving the view changes towards one neighbour
      only). Scale ``area_scale``.
    * *position spike*: the centroid's displacement to each neighbour minus the frame's median
      displacement (the camera), ``min(|a|, |b|) * max(0, cos(a, b))`` (a steady motion points the
      two displacements in opposite directions; a shifted mask in the same). Scale ``motion_scale_px``.
  - ``temporal_class``: the neighbours' objects (IoU >= ``class_iou`` and mutual best matches, up to
    four votes, a neighbour with an overlapping object of the annotation's own class votes for it) agree
    by a majority of at least two on another class (swaps, wrong regions).
  - ``missing``: an object of frames t-1 and t+1 (or t-2 and t+2; same class, IoU >= ``pair_iou``
    with each other) has, in frame t, no annotation of any class overlapping it (IoU >=
    ``missing_iou``) and none of its class touching it or within two radii of where the two frames
    put it: a dropped annotation. Value ``min(1, 0.5 + IoU of the pair)``. In the first / last frame
    the two following / preceding frames stand for the pair (the object extrapolated; objects touching
    the image border left out, they may be entering the view), at half the value.

* **Geometry** (every image): the QA checks of :mod:`segval.qa.checks` per annotation
  (components > ``max_components``, perimeter² / area > ``max_jaggedness``, area < ``min_mask_px``).
"""

from __future__ import annotations

from array import array
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from segval.io import shipped_defaults
from segval.qa import checks as qc
from segval.relabel.scoring import Candidate, shape_value

__all__ = ["FrameObjects", "TemporalConfig", "geometry_candidates", "load_frame", "temporal_candidates", "videos_of"]


#: the defaults of TemporalConfig (written once, in the command configs)
_TEMPORAL = shipped_defaults("relabel_queue", "relabel.temporal")
_SHAPE_SCALE_PX = shipped_defaults("relabel_queue", "relabel.ranking.shape_scale_px")
_QA = shipped_defaults("qa", "qa")


@dataclass(frozen=True)
class TemporalConfig:
    """Thresholds of the temporal evidence (see the module doc); the defaults are conf/relabel_queue.yaml's
    ``relabel.temporal`` (``shape_scale_px``: ``relabel.ranking``) and, for the geometry evidence, conf/qa.yaml's ``qa``."""

    match_iou: float = _TEMPORAL["match_iou"]
    pair_iou: float = _TEMPORAL["pair_iou"]
    class_iou: float = _TEMPORAL["class_iou"]
    missing_iou: float = _TEMPORAL["missing_iou"]
    min_pixels: int = _TEMPORAL["min_pixels"]
    shape_scale_px: float = _SHAPE_SCALE_PX
    area_scale: float = _TEMPORAL["area_scale"]
    motion_scale_px: float = _TEMPORAL["motion_scale_px"]
    spread_factor: float = _TEMPORAL["spread_factor"]
    second_weight: float = _TEMPORAL["second_weight"]
    max_components: int = _QA["max_components"]
    max_jaggedness: float = _QA["max_jaggedness"]
    min_mask_px: int = _QA["min_mask_px"]


@dataclass
class FrameObjects:
    """The non-crowd, non-background annotations of one image."""

    image_id: int
    ann_ids: list[int]
    cats: list[int]
    masks: np.ndarray  # bool[N, H, W]
    height: int
    width: int

    @property
    def flat(self) -> np.ndarray:
        return self.masks.reshape(len(self.ann_ids), -1).astype(np.float32)

    @property
    def centroids(self) -> list[np.ndarray]:
        """float[2] (x, y) per mask, as :func:`_centroid`."""
        if not hasattr(self, "_centroids"):
            self._centroids = [_centroid(m) for m in self.masks]
        return self._centroids

    @property
    def stats(self) -> MaskStats:
        """The boxes and areas of :attr:`masks` (:func:`mask_stats`)."""
        if not hasattr(self, "_stats"):
            self._stats = mask_stats(self.masks)
        return self._stats


class MaskStats(NamedTuple):
    """Boxes and areas of a stack of N masks (what :func:`_iou_arrays` needs to skip disjoint pairs)."""

    boxes: np.ndarray  # int64[N, 4]: y0, y1, x0, x1 (end exclusive); 0, 0, 0, 0 for an empty mask
    areas: np.ndarray  # int64[N]


def mask_stats(masks: np.ndarray) -> MaskStats:
    """:class:`MaskStats` of bool[N, H, W] ``masks``."""
    n, h, w = masks.shape
    per_row = masks.sum(axis=2, dtype=np.int64)  # [N, H]
    rows, cols = per_row > 0, masks.any(axis=1)  # [N, H], [N, W]
    boxes = np.stack([rows.argmax(1), h - rows[:, ::-1].argmax(1), cols.argmax(1), w - cols[:, ::-1].argmax(1)],
                     axis=1).astype(np.int64).reshape(n, 4)
    areas = per_row.sum(axis=1)
    boxes[areas == 0] = 0
    return MaskStats(boxes, areas)


def load_frame(split: Any, rec: Any, background_id: int | None) -> FrameObjects:
    """Decode the annotations of ``rec`` (crowd and background annotations left out)."""
    ids, cats, masks = [], [], []
    for inst in split.instances(rec, cache=False):  # each frame is decoded once per scan
        if inst.iscrowd or (background_id is not None and inst.category_id == background_id):
            continue
        ids.append(inst.annotation_id)
        cats.append(inst.category_id)
        masks.append(inst.mask)
    arr = np.stack(masks) if masks else np.zeros((0, rec.height, rec.width), bool)
    return FrameObjects(rec.id, ids, cats, arr, rec.height, rec.width)


class _FrameWindow:
    """The decoded frames of one video, loaded on demand; :meth:`keep` drops those outside a window."""

    def __init__(self, split: Any, recs: Sequence[Any], background_id: int | None) -> None:
        self.split, self.recs, self.background_id = split, recs, background_id
        self.cache: dict[int, FrameObjects] = {}

    def __getitem__(self, t: int) -> FrameObjects:
        if t not in self.cache:
            self.cache[t] = load_frame(self.split, self.recs[t], self.background_id)
        return self.cache[t]

    def keep(self, lo: int, hi: int) -> None:
        for t in [t for t in self.cache if not lo <= t <= hi]:
            del self.cache[t]


def _iou_arrays(a: np.ndarray, b: np.ndarray, sa: MaskStats | None = None, sb: MaskStats | None = None
                ) -> np.ndarray:
    """float32[Na, Nb] IoU of two stacks of bool masks of the same size (float64 zeros when one is empty or the
    sizes differ). ``sa`` / ``sb``: their :func:`mask_stats`, when known. Pairs whose boxes are disjoint are not
    compared; the others are intersected inside the common box. Exact: the counts are integers and the ratio is
    taken in float32, as a float32 matrix product of the flattened masks would give."""
    if a.shape[0] == 0 or b.shape[0] == 0 or a.shape[1:] != b.shape[1:]:
        return np.zeros((a.shape[0], b.shape[0]))
    sa = sa if sa is not None else mask_stats(a)
    sb = sb if sb is not None else mask_stats(b)
    ba, bb = sa.boxes[:, None, :], sb.boxes[None, :, :]
    y0, y1 = np.maximum(ba[..., 0], bb[..., 0]), np.minimum(ba[..., 1], bb[..., 1])
    x0, x1 = np.maximum(ba[..., 2], bb[..., 2]), np.minimum(ba[..., 3], bb[..., 3])
    inter = np.zeros((a.shape[0], b.shape[0]), np.int64)
    for i, j in zip(*np.nonzero((y1 > y0) & (x1 > x0)), strict=True):
        win = (slice(y0[i, j], y1[i, j]), slice(x0[i, j], x1[i, j]))
        inter[i, j] = np.count_nonzero(a[i][win] & b[j][win])
    union = (sa.areas[:, None] + sb.areas[None, :] - inter).astype(np.float32)
    return np.where(union > 0, inter.astype(np.float32) / np.maximum(union, 1), 0.0)


def _window(*boxes: np.ndarray) -> tuple[slice, slice]:
    """The (rows, columns) slices of the smallest box holding every non-empty box (``y0, y1, x0, x1``)."""
    full = [b for b in boxes if b[1] > b[0]]
    if not full:
        return slice(0, 0), slice(0, 0)
    return (slice(int(min(b[0] for b in full)), int(max(b[1] for b in full))),
            slice(int(min(b[2] for b in full)), int(max(b[3] for b in full))))


def _translate(masks: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """bool[N, H, W] moved by (dy, dx); what leaves the image is lost."""
    out = np.zeros_like(masks)
    h, w = masks.shape[1:]
    if abs(dy) >= h or abs(dx) >= w:
        return out
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[:, yd, xd] = masks[:, ys, xs]
    return out


def _touches_border(mask: np.ndarray) -> bool:
    return bool(mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())


def _box(mask: np.ndarray) -> list[float] | None:
    b = qc.bounding_box(mask)
    if b is None:
        return None
    y0, x0, y1, x1 = b
    return [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]


def videos_of(records: Iterable[Any]) -> dict[int, list[Any]]:
    """``{video_id: records ordered by frame_index}`` for the records that have both."""
    out: dict[int, list[Any]] = defaultdict(list)
    for r in records:
        if r.video_id is not None and r.frame_index is not None:
            out[int(r.video_id)].append(r)
    for v in out.values():
        v.sort(key=lambda r: (r.frame_index, r.id))
    return dict(out)


def _match(iou: np.ndarray, j: int) -> tuple[int | None, float]:
    if iou.shape[1] == 0 or iou.shape[0] == 0:
        return None, 0.0
    k = int(np.argmax(iou[j]))
    return k, float(iou[j, k])


def _median(x: np.ndarray) -> np.ndarray:
    """``np.nanmedian(x, axis=0)``; ``np.median`` (the same values, a fraction of the time on small arrays) when
    ``x`` has no NaN."""
    return np.nanmedian(x, axis=0) if np.isnan(x).any() else np.median(x, axis=0)


def _centroid(m: np.ndarray) -> np.ndarray:
    """float[2]: the mean (x, y) of the pixels of bool[H, W] ``m`` (NaN when empty); exact: integer sums of the
    row and column counts divided once, as the mean of the pixel coordinates."""
    rows = np.count_nonzero(m, axis=1)
    n = int(rows.sum())
    if n == 0:
        return np.array([np.nan, np.nan])
    cols = np.count_nonzero(m, axis=0)
    sy = int(rows @ np.arange(rows.size, dtype=np.int64))
    sx = int(cols @ np.arange(cols.size, dtype=np.int64))
    return np.array([np.float64(sx) / n, np.float64(sy) / n])


def temporal_candidates(
    split: Any,
    cfg: TemporalConfig,
    *,
    background_id: int | None,
    class_name: Callable[[int], str],
    progress: Callable[[Iterable], Iterable] | None = None,
) -> list[Candidate]:
    """Candidates from temporal consistency over every video of ``split`` (see the module doc)."""
    progress = progress or (lambda it: it)
    out: list[Candidate] = []
    video_rows: list[tuple[_RowTable, dict[int, array]]] = []
    # the split's spread per class and measure (how far an articulated arm usually goes, over every video)
    pooled: dict[tuple[str, int], array] = defaultdict(lambda: array("d"))
    for vid, recs in progress(list(videos_of(split.images).items())):
        if len(recs) < 2:
            continue
        scan = _VideoScan(split, recs, vid, cfg, background_id, class_name)
        out.extend(scan.run())
        for r in scan.rows.values():
            for key in ("band", "area_spike", "motion_px"):
                if key in r and (key != "band" or r.get("sided") == 2):
                    pooled[(key, r["cat"])].append(r[key])
        # kept compact until the split's spread is known (the dicts of every video would grow with the split)
        video_rows.append((_RowTable(scan.rows.values()), {c: array("d", v) for c, v in scan.steps.items()}))
    split_spread = {k: float(np.quantile(v, 0.9) - np.median(v)) for k, v in pooled.items()}
    for table, steps in video_rows:
        out.extend(_score_rows(table.dicts(), steps, split_spread, cfg, class_name))
    return out


class _RowTable:
    """One video's rows (:attr:`_VideoScan.rows`: the raw measures per annotation) in numpy columns, with what
    :func:`_score_rows` reads of them; :meth:`dicts` gives them back as dicts, equal to the rows' own (those
    keys, the same values and types, in the same order)."""

    INTS = ("ann", "cat", "area", "image_id", "video", "sided", "pixels")
    FLOATS = ("iou_prev", "iou_next", "band", "area_spike", "motion_px")
    OPTIONAL = ("sided", "pixels", "band", "area_spike", "motion_px")  # keys a row may lack (then NaN / 0 here)

    def __init__(self, rows: Iterable[Mapping[str, Any]]) -> None:
        rows = list(rows)
        ints = [[r.get(k, 0) for k in self.INTS] for r in rows]
        try:
            self.ints = np.array(ints, np.int64).reshape(len(rows), len(self.INTS))
        except OverflowError:  # ids past int64: kept as Python ints
            self.ints = np.array(ints, object).reshape(len(rows), len(self.INTS))
        self.floats = np.array([[r.get(k, np.nan) for k in self.FLOATS] for r in rows], np.float64
                               ).reshape(len(rows), len(self.FLOATS))
        self.has = np.array([[k in r for k in self.OPTIONAL] for r in rows], bool).reshape(len(rows), len(self.OPTIONAL))
        self.boxes = np.array([r["box"] if r["box"] is not None else [np.nan] * 4 for r in rows], np.float64
                              ).reshape(len(rows), 4)
        self.has_box = np.array([r["box"] is not None for r in rows], bool)
        self.votes = {k: (r["class_to"], r["class_votes"]) for k, r in enumerate(rows) if "class_to" in r}

    def dicts(self) -> list[dict[str, Any]]:
        out = []
        for k, (ints, floats, has, box, has_box) in enumerate(zip(self.ints.tolist(), self.floats.tolist(),
                                                                  self.has.tolist(), self.boxes.tolist(),
                                                                  self.has_box.tolist())):
            row = dict(zip(self.INTS, ints)) | dict(zip(self.FLOATS, floats))
            for key, present in zip(self.OPTIONAL, has):
                if not present:
                    del row[key]
            row["box"] = box if has_box else None
            if k in self.votes:
                row["class_to"], row["class_votes"] = self.votes[k]
            out.append(row)
        return out


class _VideoScan:
    """One video, frame by frame: a row of raw measures per annotation (scored later against the video's and
    the split's usual values, :func:`_score_rows`) and the ``missing`` candidates.

    Only frames t-2 .. t+2 are decoded at a time; neighbour frames are aligned onto frame t by the camera's
    shift before any IoU is taken (:meth:`aligned`).
    """

    def __init__(self, split: Any, recs: Sequence[Any], video_id: int, cfg: TemporalConfig,
                 background_id: int | None, class_name: Callable[[int], str]) -> None:
        self.recs, self.video_id, self.cfg, self.class_name = recs, video_id, cfg, class_name
        self.frames = _FrameWindow(split, recs, background_id)
        self.n = len(recs)
        self._ious: dict[tuple[int, int], np.ndarray] = {}
        self._aligned: dict[tuple[int, int], tuple[np.ndarray, MaskStats]] = {}
        #: (t, j) -> the raw measures of annotation j of frame t
        self.rows: dict[tuple[int, int], dict[str, Any]] = {}
        #: class -> consecutive-frame symmetric difference / perimeter (the usual change of a class)
        self.steps: dict[int, list[float]] = defaultdict(list)

    def run(self) -> list[Candidate]:
        """Measure every annotation of every frame; returns the ``missing`` candidates."""
        missing: list[Candidate] = []
        for t in range(self.n):
            self._forget_before(t - 2)
            rows = [row for j in range(len(self.frames[t].ann_ids)) if (row := self._measure(t, j)) is not None]
            for row in rows:
                self.rows[(t, row["j"])] = row
            self._remove_camera_motion(rows)
            missing.extend(self._missing_objects(t))
        return missing

    # -- frames aligned onto each other
    def _forget_before(self, lo: int) -> None:
        self.frames.keep(lo, lo + 4)
        for cache in (self._ious, self._aligned):
            for key in [k for k in cache if min(k) < lo]:
                del cache[key]

    def aligned(self, u: int, t: int) -> np.ndarray:
        """bool[N_u, H, W]: frame u's masks translated onto frame t by the camera's shift between them (the
        median centroid displacement of the objects matched at IoU >= match_iou, when there are three or
        more), so a panning camera does not count as disagreement."""
        return self._aligned_stack(u, t)[0]

    def _aligned_stack(self, u: int, t: int) -> tuple[np.ndarray, MaskStats]:
        """:meth:`aligned` and its :func:`mask_stats`."""
        if (u, t) not in self._aligned:
            fu, ft = self.frames[u], self.frames[t]
            raw = _iou_arrays(ft.masks, fu.masks, ft.stats, fu.stats)
            shifts = [ft.centroids[j] - fu.centroids[int(np.argmax(raw[j]))] for j in range(raw.shape[0])
                      if raw.shape[1] and raw[j].max() >= self.cfg.match_iou]
            # the camera: the median over at least three objects (with fewer, objects' own motion would pass for it)
            d = (np.round(_median(np.stack(shifts))).astype(int) if len(shifts) >= 3
                 else np.zeros(2, int))
            if d.any():
                moved = _translate(fu.masks, int(d[1]), int(d[0]))
                self._aligned[(u, t)] = (moved, mask_stats(moved))
            else:
                self._aligned[(u, t)] = (fu.masks, fu.stats)
        return self._aligned[(u, t)]

    def iou(self, t: int, u: int) -> np.ndarray:
        """float[N_t, N_u]: IoU of frame t's masks with frame u's aligned onto t."""
        if (t, u) not in self._ious:
            ft = self.frames[t]
            moved, moved_stats = self._aligned_stack(u, t)
            self._ious[(t, u)] = _iou_arrays(ft.masks, moved, ft.stats, moved_stats)
        return self._ious[(t, u)]

    # -- one annotation
    def _measure(self, t: int, j: int) -> dict[str, Any] | None:
        """The raw measures of annotation j of frame t (None when it is too small to be scored)."""
        cfg, fo = self.cfg, self.frames[t]
        m, cat, b = fo.masks[j], fo.cats[j], fo.stats.boxes[j]
        area = int(fo.stats.areas[j])
        if area < cfg.min_pixels:
            return None
        y0, y1, x0, x1 = (int(v) for v in b)
        per = max(qc.pixel_perimeter(m[y0:y1, x0:x1]), 1)  # nothing outside the box
        row: dict[str, Any] = {"t": t, "j": j, "ann": fo.ann_ids[j], "cat": cat, "area": area, "image_id": fo.image_id,
                               "box": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)] if area else None,
                               "video": self.video_id}
        nb: dict[int, tuple[int, float]] = {}  # neighbour frame -> (index, IoU) of the same object
        for u in (t - 2, t - 1, t + 1, t + 2):
            if 0 <= u < self.n:
                k, iou = _match(self.iou(t, u), j)
                if k is not None and iou >= cfg.pair_iou:
                    nb[u] = (k, iou)
        row["iou_prev"] = nb.get(t - 1, (None, 0.0))[1]
        row["iou_next"] = nb.get(t + 1, (None, 0.0))[1]
        if t + 1 in nb and self.frames[t + 1].cats[nb[t + 1][0]] == cat and nb[t + 1][1] >= cfg.match_iou:
            mn, bn = self._neighbour(t + 1, t, nb[t + 1][0])
            w = _window(b, bn)
            self.steps[cat].append(int(np.count_nonzero(m[w] ^ mn[w])) / per)
        self._outline(row, t, m, b, per, nb)
        self._spikes(row, t, area, nb)
        self._class_votes(row, t, j, cat, nb)
        return row

    def _neighbour(self, u: int, t: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        """bool[H, W] mask k of frame u aligned onto frame t, and its box (:class:`MaskStats`)."""
        moved, stats = self._aligned_stack(u, t)
        return moved[k], stats.boxes[k]

    def _outline(self, row: dict[str, Any], t: int, m: np.ndarray, b: np.ndarray, per: int,
                 nb: Mapping[int, tuple[int, float]]) -> None:
        """(1) outline: the interpolation band over the pairs of neighbours around t (the smaller is the
        evidence: a frame next to a corrupted one is explained by the pair that skips it); with one
        neighbour, the symmetric difference with it. Pixels are counted inside the masks' common box."""
        bands = []
        for a_, b_ in ((t - 1, t + 1), (t - 2, t + 2)):
            if a_ in nb and b_ in nb:
                (ma, ba), (mb, bb) = self._neighbour(a_, t, nb[a_][0]), self._neighbour(b_, t, nb[b_][0])
                w = _window(b, ba, bb)
                px = int(np.count_nonzero(m[w] & ~ma[w] & ~mb[w])) + int(np.count_nonzero(ma[w] & mb[w] & ~m[w]))
                bands.append((px / per, px))
        if bands:
            row["band"], row["pixels"] = min(bands)
            row["sided"] = 2
            return
        one = [u for u in (t - 1, t + 1) if u in nb and nb[u][1] >= self.cfg.match_iou]
        if one:
            mo, bo = self._neighbour(one[0], t, nb[one[0]][0])
            w = _window(b, bo)
            diff = int(np.count_nonzero(m[w] ^ mo[w]))
            row.update(band=diff / per, sided=1, pixels=diff)

    def _spikes(self, row: dict[str, Any], t: int, area: int,
                nb: Mapping[int, tuple[int, float]]) -> None:
        """(2) area and (3) position against the previous and next frames, as *spikes*: a change towards both
        neighbours in the same direction (an onset of occlusion, an object leaving the view or a steady
        motion changes towards one neighbour only, or in opposite directions)."""
        if t - 1 not in nb or t + 1 not in nb:
            return
        (fp, kp), (fn, kn) = (self.frames[t - 1], nb[t - 1][0]), (self.frames[t + 1], nb[t + 1][0])
        lp = float(np.log(area / max(int(fp.stats.areas[kp]), 1)))
        ln = float(np.log(area / max(int(fn.stats.areas[kn]), 1)))
        row["area_spike"] = min(abs(lp), abs(ln)) if lp * ln > 0 else 0.0
        c = self.frames[t].centroids[row["j"]]
        row["d_prev"], row["d_next"] = c - fp.centroids[kp], c - fn.centroids[kn]

    def _class_votes(self, row: dict[str, Any], t: int, j: int, cat: int,
                     nb: Mapping[int, tuple[int, float]]) -> None:
        """(4) class: the neighbours' classes of the same object (up to 4 votes, mutual best matches only)."""
        votes = []
        for u, (k, iou) in nb.items():
            if iou < self.cfg.class_iou:
                continue
            if int(np.argmax(self.iou(t, u)[:, k])) != j:
                # not mutual: the neighbour's object is another annotation's here (a part such as a
                # gripper inside the arm's outline must not vote for the whole's class)
                continue
            c_u = self.frames[u].cats[k]
            if c_u != cat:  # an object of its own class there overlapping it as well: no vote against
                own = [kk for kk, cc in enumerate(self.frames[u].cats) if cc == cat]
                if any(self.iou(t, u)[j, kk] >= self.cfg.class_iou for kk in own):
                    c_u = cat
            votes.append(c_u)
        if votes:
            top = max(set(votes), key=lambda c: (votes.count(c), -c))
            if top != cat and votes.count(top) >= 2 and votes.count(top) * 2 > len(votes):
                row["class_to"] = top
                row["class_votes"] = f"{votes.count(top)}/{len(votes)}"

    @staticmethod
    def _remove_camera_motion(rows: Sequence[dict[str, Any]]) -> None:
        """The displacement common to the frame (the camera) removed from each row's, then its spike part."""
        moving = [r for r in rows if "d_prev" in r]
        if not moving:
            return
        dp = np.stack([r["d_prev"] for r in moving])
        dn = np.stack([r["d_next"] for r in moving])
        fp_, fn_ = (_median(dp), _median(dn)) if len(moving) > 2 else (0.0, 0.0)
        for r in moving:
            a, b = np.nan_to_num(r["d_prev"] - fp_), np.nan_to_num(r["d_next"] - fn_)
            na, nb_ = float(np.linalg.norm(a)), float(np.linalg.norm(b))
            cos = float(a @ b) / (na * nb_) if na > 0 and nb_ > 0 else 0.0
            r["motion_px"] = min(na, nb_) * max(0.0, cos)

    # -- objects of the neighbours with no annotation here
    def _missing_objects(self, t: int) -> list[Candidate]:
        """Objects in both frames of a neighbour pair, matched to each other, with nothing here."""
        out: list[Candidate] = []
        seen: set[tuple[int, int]] = set()
        pairs = [(t - 1, t + 1, False), (t - 2, t + 2, False)]
        if t == 0 or t == self.n - 1:  # the first / last frame: the next two (previous two) frames, half strength
            step = 1 if t == 0 else -1
            pairs.append((t + step, t + 2 * step, True))
        for a_, b_, edge in pairs:
            if min(a_, b_) < 0 or max(a_, b_) >= self.n:
                continue
            for i, k, iou in self._pair_objects_absent_here(t, a_, b_, edge):
                pf, nf = self.frames[a_], self.frames[b_]
                key = (pf.ann_ids[i], nf.ann_ids[k])
                if key in seen or (a_ == t - 2 and any(s[0] == pf.ann_ids[i] for s in seen)):
                    continue
                seen.add(key)
                out.append(self._missing_candidate(t, a_, b_, i, k, iou, edge))
        return out

    def _pair_objects_absent_here(self, t: int, a_: int, b_: int, edge: bool) -> Iterable[tuple[int, int, float]]:
        """(i, k, IoU): object i of frame a_ matched to object k of frame b_ (same class) that no annotation of
        frame t covers: none of any class overlapping it (a class change is scored apart), none of its class
        touching it or lying where the two frames put it (a fast object)."""
        cfg, fo = self.cfg, self.frames[t]
        pf, nf = self.frames[a_], self.frames[b_]
        pn = self.iou(a_, b_)
        ip, inn = self.iou(t, a_), self.iou(t, b_)  # [N_t, N_a], [N_t, N_b]
        here_c = fo.centroids
        for i in range(len(pf.ann_ids)):
            k, iou = _match(pn, i)
            if k is None or iou < cfg.pair_iou or nf.cats[k] != pf.cats[i] or pf.stats.areas[i] < cfg.min_pixels:
                continue
            if edge and _touches_border(pf.masks[i]):
                continue  # it may just be entering / leaving the view
            cat = pf.cats[i]
            ca, cb = pf.centroids[i], nf.centroids[k]
            mid = 2 * ca - cb if edge else (ca + cb) / 2
            reach = 2.0 * np.sqrt(max(int(pf.stats.areas[i]), 1) / np.pi)
            if any(ip[jj, i] >= cfg.missing_iou or inn[jj, k] >= cfg.missing_iou
                   or (fo.cats[jj] == cat and (ip[jj, i] > 0 or inn[jj, k] > 0
                                                or np.linalg.norm(here_c[jj] - mid) < reach))
                   for jj in range(len(fo.ann_ids))):
                continue
            yield i, k, iou

    def _missing_candidate(self, t: int, a_: int, b_: int, i: int, k: int, iou: float, edge: bool) -> Candidate:
        pf, nf = self.frames[a_], self.frames[b_]
        cat = pf.cats[i]
        union = pf.masks[i] | nf.masks[k]
        inter = pf.masks[i] & nf.masks[k]
        value = min(1.0, 0.5 + iou) * (0.5 if edge else 1.0)
        where = ("in the two frames after it" if a_ > t else "in the two frames before it") if edge else \
            f"{abs(t - a_)} frame(s) before and after"
        return Candidate(
            self.frames[t].image_id, "missing", cat, [], _box(union),
            {"missing": round(value, 4), "iou_pair": round(iou, 4), "pair_frames": [a_, b_],
             "video_edge": edge, "neighbour_annotation_ids": [pf.ann_ids[i], nf.ann_ids[k]]},
            f"a {self.class_name(cat)} labelled {where} (annotations {pf.ann_ids[i]}, {nf.ann_ids[k]}; "
            f"IoU {iou:.2f}) has no annotation here",
            float(inter.sum()), self.video_id)


def _score_rows(rows: Sequence[Mapping[str, Any]], steps: Mapping[int, Sequence[float]],
                split_spread: Mapping[tuple[str, int], float], cfg: TemporalConfig,
                class_name: Callable[[int], str]) -> list[Candidate]:
    """Candidates of one video's annotations, each measure compared with its class in the video: the video's
    median, and a spread = the larger of the video's and the split's (90th percentile - median)."""
    out: list[Candidate] = []
    meds: dict[tuple[str, int, int | None], tuple[float, float]] = {}

    def usual(key: str, cat: int, sided: int | None = None) -> tuple[float, float]:
        if (key, cat, sided) not in meds:
            if key == "band" and sided == 1 and steps.get(cat):
                vals = steps[cat]
            else:
                vals = [r[key] for r in rows if r["cat"] == cat and key in r
                        and (sided is None or r.get("sided") == sided)]
            m = float(np.median(vals)) if vals else 0.0
            spread = float(np.quantile(vals, 0.9)) - m if vals else 0.0
            meds[(key, cat, sided)] = (m, max(spread, split_spread.get((key, cat), 0.0)))
        return meds[(key, cat, sided)]

    for r in rows:
        ev: dict[str, Any] = {"iou_prev": round(r["iou_prev"], 4), "iou_next": round(r["iou_next"], 4)}
        reasons = []
        name = class_name(r["cat"])
        parts = []
        if "band" in r:
            mb, sb = usual("band", r["cat"], r["sided"])
            v = shape_value(r["band"], mb, cfg.shape_scale_px + cfg.spread_factor * sb)
            parts.append(v)
            ev.update(band_px=round(r["band"], 3), video_median_band_px=round(mb, 3), sides=r["sided"])
            if v > 0:
                reasons.append(f"its outline disagrees with the same object in the neighbouring frames by "
                               f"{r['band']:.1f} px (usual for {name} in this video: {mb:.1f} px)")
        if "area_spike" in r:
            ml, sl = usual("area_spike", r["cat"])
            v = shape_value(r["area_spike"], ml, cfg.area_scale + cfg.spread_factor * sl)
            parts.append(v)
            ev.update(area_change=round(float(np.expm1(r["area_spike"])), 4),
                      video_median_area_change=round(float(np.expm1(ml)), 4))
            if v > 0:
                reasons.append(f"its area differs by {_percent(np.expm1(r['area_spike']))} or more from both "
                               f"neighbouring frames in the same direction (usual for {name}: {_percent(np.expm1(ml))})")
        if "motion_px" in r:
            mm, sm = usual("motion_px", r["cat"])
            v = shape_value(r["motion_px"], mm, cfg.motion_scale_px + cfg.spread_factor * sm)
            parts.append(v)
            ev.update(motion_px=round(r["motion_px"], 3), video_median_motion_px=round(mm, 3))
            if v > 0:
                reasons.append(f"it jumps {r['motion_px']:.1f} px away from where both neighbouring frames put it "
                               f"(usual for {name}: {mm:.1f} px)")
        if parts:
            srt = sorted(parts, reverse=True)
            ev["temporal_shape"] = round(min(1.0, srt[0] + cfg.second_weight * sum(srt[1:])), 4)
        if "class_to" in r:
            ev["temporal_class"] = 1.0
            ev["neighbour_class"] = class_name(r["class_to"])
            ev["class_votes"] = r["class_votes"]
            reasons.insert(0, f"labelled {name} but the same object is {class_name(r['class_to'])} in "
                              f"{r['class_votes']} neighbouring frames")
        if not reasons:
            continue
        out.append(Candidate(r["image_id"], "annotation", r["cat"], [r["ann"]], r["box"], ev,
                             f"annotation {r['ann']}: " + "; ".join(reasons),
                             float(r["area"] if "class_to" in r else r.get("pixels", 0)), r["video"]))
    return out


def geometry_candidates(
    split: Any,
    cfg: TemporalConfig,
    *,
    background_id: int | None,
    class_name: Callable[[int], str],
    images: Sequence[Any] | None = None,
    progress: Callable[[Iterable], Iterable] | None = None,
) -> list[Candidate]:
    """Candidates from the QA geometry checks (value: the share of the three checks that fire)."""
    progress = progress or (lambda it: it)
    out = []
    for rec in progress(list(images if images is not None else split.images)):
        for ann, rl in split.masks(rec, cache=False):  # one pass over the split: nothing to cache
            cat = int(ann["category_id"])
            if int(ann.get("iscrowd", 0) or 0) or (background_id is not None and cat == background_id):
                continue
            box, crop = qc.rle_crop(rl.counts, rl.height, rl.width)
            info = qc.info_from_crop(box, crop)
            if info.area == 0:
                continue
            fired = []
            if info.components > cfg.max_components:
                fired.append(f"{info.components} connected components > {cfg.max_components}")
            if info.jaggedness > cfg.max_jaggedness:
                fired.append(f"perimeter²/area {info.jaggedness:.0f} > {cfg.max_jaggedness:g}")
            if info.area < cfg.min_mask_px:
                fired.append(f"{info.area} px < {cfg.min_mask_px}")
            if not fired:
                continue
            y0, x0, y1, x1 = info.box
            out.append(Candidate(rec.id, "annotation", cat, [int(ann["id"])],
                                 [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                                 {"geometry": round(len(fired) / 3, 4), "components": info.components,
                                  "jaggedness": round(info.jaggedness, 2), "area": info.area},
                                 f"annotation {int(ann['id'])} ({class_name(cat)}): " + "; ".join(fired),
                                 float(info.area) * 0.25, rec.video_id))
    return out


def merge_candidates(cands: Iterable[Candidate], *, copy: bool = True) -> list[Candidate]:
    """One candidate per (image, kind, annotation ids, class): evidence merged, reasons joined.

    ``copy=False`` merges into the first candidate of each group instead of a copy (the input's candidates are
    changed; for a caller that drops them, so a split's candidates are not held twice).
    """
    merged: dict[tuple, Candidate] = {}
    for c in cands:
        key = (c.image_id, c.kind, tuple(c.annotation_ids), c.category_id if c.kind != "annotation" else None,
               tuple(c.region or ()) if c.kind == "missing" else None)
        cur = merged.get(key)
        if cur is None:
            merged[key] = c if not copy else Candidate(c.image_id, c.kind, c.category_id, list(c.annotation_ids),
                                                       c.region, dict(c.evidence), c.reason, c.pixels, c.video_id)
            continue
        for k, v in c.evidence.items():
            if k not in cur.evidence or (isinstance(v, (int, float)) and isinstance(cur.evidence[k], (int, float))
                                         and v > cur.evidence[k]):
                cur.evidence[k] = v
        cur.reason = cur.reason + "; " + c.reason.split(": ", 1)[-1]
        cur.pixels = max(cur.pixels, c.pixels)
    return list(merged.values())


def class_names_map(taxonomy: Any) -> Mapping[int, str]:
    return {c.id: c.name for c in taxonomy.categories}


def _percent(share: float) -> str:
    """A share as a percentage for a reason: one decimal under 10 % (0.4 %, not 0 %), none above."""
    return f"{share:.1%}" if abs(share) < 0.1 else f"{share:.0%}"
