"""Real instances of a package as annotation examples: one scan of the package, diverse picks, image crops.

* :func:`scan_instances`: every non-crowd instance (:class:`InstanceRef`: tight box, area, video, position and
  occlusion = share of its outline touching another instance or the image border) and the semantic pixel count
  per class (the rasterisation rule of :mod:`segval.dataset.semantic`).
* :func:`select_diverse`: ``k`` instances spread over size (log area), occlusion and position, farthest-point
  order from the most typical one (median size, least occluded). No two come from the same video (an image
  without ``video_id`` is its own video) while an unused video has a candidate; then no two from the same image
  while one is left; among those, instances at least ``min_size`` are preferred. Deterministic.
* :func:`read_crops`: the pixels of crop requests (each image read once) as :class:`~segval.report.guideline.Crop`.

Used by the annotation guideline (:mod:`segval.qa.guideline`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from segval.dataset.semantic import rasterize_semantic
from segval.errors import ConfigError
from segval.report.guideline import Crop

__all__ = ["CropRequest", "InstanceRef", "Scan", "instance_order", "read_crops", "scan_instances", "select_diverse"]


@dataclass(frozen=True)
class InstanceRef:
    """One non-crowd instance of the package, with what example selection needs.

    Attributes:
        bbox: tight box of the mask ``(x, y, w, h)`` in px.
        occlusion: share of the mask's outline pixels touching another instance or the image border, [0, 1].
        cx, cy: box centre over the image width / height, [0, 1].
    """

    split: str
    image_id: int
    file_name: str
    video_id: int | None
    annotation_id: int
    category_id: int
    bbox: tuple[int, int, int, int]
    area: int
    occlusion: float
    cx: float
    cy: float

    @property
    def unit(self) -> tuple[Any, ...]:
        """The video the instance comes from (an image without video is its own)."""
        return (self.split, "video", self.video_id) if self.video_id is not None else (self.split, "image",
                                                                                      self.image_id)

    def to_dict(self) -> dict[str, Any]:
        return {"split": self.split, "image_id": self.image_id, "file_name": self.file_name,
                "video_id": self.video_id, "annotation_id": self.annotation_id, "bbox": list(self.bbox),
                "area": self.area, "occlusion": round(self.occlusion, 4)}


@dataclass
class Scan:
    """What :func:`scan_instances` found: instances, pixels per category id (and ``255``), images."""

    instances: list[InstanceRef]
    pixels: np.ndarray
    images: int


def _occlusion(mask: np.ndarray, others: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """Share of the outline pixels of ``mask`` (bool[H, W]) with a 4-neighbour in ``others`` or outside the image."""
    x, y, w, h = box
    H, W = mask.shape
    x0, y0, x1, y1 = max(0, x - 1), max(0, y - 1), min(W, x + w + 1), min(H, y + h + 1)
    m = np.pad(mask[y0:y1, x0:x1], 1, constant_values=False)
    # beyond the image counts as "another object" (a cut-off instance); elsewhere the window has a 1 px margin
    o = np.pad(others[y0:y1, x0:x1], 1, constant_values=((y0 == 0, y1 == H), (x0 == 0, x1 == W)))
    inner = m[1:-1, 1:-1]
    edge = inner & ~(m[:-2, 1:-1] & m[2:, 1:-1] & m[1:-1, :-2] & m[1:-1, 2:])
    n_edge = int(edge.sum())
    if n_edge == 0:
        return 0.0
    touching = edge & (o[:-2, 1:-1] | o[2:, 1:-1] | o[1:-1, :-2] | o[1:-1, 2:])
    return float(touching.sum()) / n_edge


def scan_instances(pkg: Any, splits: Sequence[str] | None = None, *,
                   progress: Callable[[Iterable[Any]], Iterable[Any]] | None = None) -> Scan:
    """Every non-crowd instance of ``splits`` (all when None) as :class:`InstanceRef`, and the semantic pixel
    count per category id (the rasterisation rule of :mod:`segval.dataset.semantic`)."""
    tax = pkg.taxonomy
    names = list(splits) if splits else list(pkg.splits)
    for s in names:
        if s not in pkg.splits:
            raise ConfigError(f"split {s!r} is not in the package (splits: {list(pkg.splits)})")
    pixels = np.zeros(256, dtype=np.int64)
    out: list[InstanceRef] = []
    n_images = 0
    for s in names:
        sd = pkg.split(s)
        for rec in (progress(sd.images) if progress else sd.images):
            n_images += 1
            masks = sd.masks(rec)
            lm = rasterize_semantic(rec.height, rec.width, [(int(a["category_id"]), rl, rl.area, int(a["id"]))
                                                            for a, rl in masks], tax.background_id)
            pixels += np.bincount(lm.ravel(), minlength=256)
            decoded = [(a, rl.decode()) for a, rl in masks]
            count = np.zeros((rec.height, rec.width), dtype=np.uint16)
            for _, m in decoded:
                count += m
            for a, m in decoded:
                if int(a.get("iscrowd", 0) or 0) or int(a["category_id"]) == tax.background_id:
                    continue
                ys, xs = np.nonzero(m.any(axis=1))[0], np.nonzero(m.any(axis=0))[0]
                if not len(ys):
                    continue
                box = (int(xs[0]), int(ys[0]), int(xs[-1] - xs[0] + 1), int(ys[-1] - ys[0] + 1))
                occ = _occlusion(m, (count - m) > 0, box)
                out.append(InstanceRef(s, int(rec.id), rec.file_name, rec.video_id, int(a["id"]),
                                       int(a["category_id"]), box, int(m.sum()), occ,
                                       (box[0] + box[2] / 2) / rec.width, (box[1] + box[3] / 2) / rec.height))
    return Scan(out, pixels, n_images)


# ---------------------------------------------------------------------------------------- selection
def instance_order(r: InstanceRef) -> tuple[Any, ...]:
    return (r.split, r.image_id, r.annotation_id)


def select_diverse(cands: Sequence[InstanceRef], k: int, *,
                   min_size: tuple[int, int] = (20, 20)) -> list[InstanceRef]:
    """``k`` instances spread over size, occlusion and position (see the module doc); deterministic.

    >>> refs = [InstanceRef("train", i, f"{i}.png", i // 2, i, 1, (0, 0, 30, 30), 900 + i, 0.0, 0.5, 0.5)
    ...         for i in range(6)]
    >>> sorted({r.video_id for r in select_diverse(refs, 3)})   # three videos, never two from one
    [0, 1, 2]
    """
    pool = sorted(cands, key=instance_order)
    if k <= 0 or not pool:
        return []
    big = {i for i, r in enumerate(pool) if r.bbox[2] >= min_size[0] and r.bbox[3] >= min_size[1]}
    la = np.log(np.array([max(r.area, 1) for r in pool], dtype=np.float64))
    span = float(la.max() - la.min()) or 1.0
    feats = np.stack([(la - la.min()) / span, [r.occlusion for r in pool],
                      0.5 * np.array([r.cx for r in pool]), 0.5 * np.array([r.cy for r in pool])], axis=1)
    first_pool = sorted(big) or list(range(len(pool)))
    med = float(np.median(la[first_pool]))
    chosen = [min(first_pool, key=lambda i: (abs(la[i] - med), pool[i].occlusion, i))]
    while len(chosen) < min(k, len(pool)):
        units = {pool[i].unit for i in chosen}
        images = {(pool[i].split, pool[i].image_id) for i in chosen}
        rest = [i for i in range(len(pool)) if i not in chosen]
        # 1. an unused video, 2. an unused image, 3. anything; within that, at least min_size when possible
        fresh = [i for i in rest if pool[i].unit not in units] or \
            [i for i in rest if (pool[i].split, pool[i].image_id) not in images] or rest
        fresh = [i for i in fresh if i in big] or fresh
        dist = np.min(np.linalg.norm(feats[fresh][:, None, :] - feats[chosen][None, :, :], axis=2), axis=1)
        chosen.append(fresh[int(np.argmax(dist))])  # argmax: the first of equals, so ties keep file order
    return [pool[i] for i in chosen]



# ---------------------------------------------------------------------------------------- crops
@dataclass
class CropRequest:
    key: str
    split: str
    image_id: int
    window: tuple[int, int, int, int] | None  # x0, y0, x1, y1; None: the whole image
    annotation_ids: list[int] | None = None  # outline these ...
    category_ids: set[int] | None = None  # ... else every annotation of these classes in the window
    caption: str = ""


def _visible(color: Sequence[int]) -> tuple[int, int, int]:
    """The outline colour of a class: its own, or white when it is too dark to see."""
    r, g, b = (int(v) for v in color)
    return (255, 255, 255) if 0.299 * r + 0.587 * g + 0.114 * b < 40 else (r, g, b)


def read_crops(pkg: Any, requests: Sequence[CropRequest]) -> dict[str, Crop]:
    """The pixels of every request (each image read once)."""
    colors = {c.id: _visible(c.color) for c in pkg.taxonomy}
    by_image: dict[tuple[str, int], list[CropRequest]] = {}
    for r in requests:
        by_image.setdefault((r.split, r.image_id), []).append(r)
    out: dict[str, Crop] = {}
    for (split, image_id), reqs in sorted(by_image.items()):
        sd = pkg.split(split)
        rec = sd.image(image_id)
        image = sd.read_image(rec)
        masks = [(int(a["id"]), int(a["category_id"]), rl) for a, rl in sd.masks(rec)]
        for r in reqs:
            x0, y0, x1, y1 = r.window or (0, 0, rec.width, rec.height)
            wanted = [(aid, cid, rl) for aid, cid, rl in masks if r.annotation_ids and aid in r.annotation_ids]
            if not wanted and r.category_ids:
                wanted = [(aid, cid, rl) for aid, cid, rl in masks if cid in r.category_ids]
            outlines = []
            for _, cid, rl in wanted:
                m = rl.decode()[y0:y1, x0:x1]
                if m.any():
                    outlines.append((m, colors[cid]))
            out[r.key] = Crop(np.ascontiguousarray(image[y0:y1, x0:x1]), outlines, r.caption)
    return out
