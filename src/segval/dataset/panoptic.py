"""Panoptic targets of a split: read the package's ``panoptic/`` (panopticapi format) or build them from COCO.

The format is the one :mod:`segval.dataset.export` writes (COCO panoptic, as panopticapi reads it):
``panoptic/<split>/<file stem>.png`` (RGB, segment id = R + 256 G + 256^2 B, 0 = void) and
``annotations/panoptic_<split>.json`` (``annotations[{image_id, file_name, segments_info[{id,
category_id, iscrowd, ...}]}]``). An image is matched to its panoptic annotation by the PNG name
(its ``file_name`` with ``.png``), else by ``image_id``.

Without a ``panoptic/`` folder the target is built from the COCO instances with the painting rule of
:mod:`segval.dataset.semantic` (smaller instances on top), so overlapping COCO annotations become
non-overlapping segments: things one segment per instance, stuff one segment per category, the
uncovered pixels the background category (or void when the taxonomy has none).

Checks (each a :class:`~segval.errors.DatasetError` naming the file and image id): a PNG segment id
missing from the JSON (panopticapi refuses it too), a JSON segment absent from the PNG, two JSON
segments with the same id (segments that would claim the same pixels: overlapping segments cannot be
represented in the format), an unknown category, a PNG that is not RGB or not the image's size.

Example:
    >>> pan = PanopticSplit.for_split(split, package_root)              # doctest: +SKIP
    >>> ids, segments = pan.target(split.images[0])  # int32[H, W], [{id, category_id, iscrowd}] # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from segval.dataset.coco import load_json
from segval.errors import DatasetError

__all__ = ["PanopticSplit", "decode_panoptic_png", "id_map_from_masks", "panoptic_json_path", "panoptic_png_dir"]


def panoptic_json_path(root: str | Path, split: str) -> Path:
    """``<root>/annotations/panoptic_<split>.json`` (whether or not it exists)."""
    return Path(root) / "annotations" / f"panoptic_{split}.json"


def panoptic_png_dir(root: str | Path, split: str) -> Path:
    """``<root>/panoptic/<split>`` (whether or not it exists)."""
    return Path(root) / "panoptic" / split


def decode_panoptic_png(rgb: np.ndarray) -> np.ndarray:
    """uint8[H, W, 3] -> int32[H, W] segment ids (R + 256 G + 256^2 B)."""
    rgb = rgb.astype(np.int32)
    return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]


def id_map_from_masks(masks: Sequence[np.ndarray], ids: Sequence[int] | None = None) -> np.ndarray:
    """Non-overlapping bool[H, W] segment masks -> int32[H, W] id map (0 = void).

    Raises:
        ValueError: two masks share a pixel (panoptic segments may not overlap; resolve the overlap
            first, e.g. with the painting rule of :func:`segval.dataset.export.panoptic_image`).
    """
    if not masks:
        raise ValueError("id_map_from_masks needs at least one mask (it takes the size from them)")
    ids = list(range(1, len(masks) + 1)) if ids is None else list(ids)
    out = np.zeros(masks[0].shape, dtype=np.int32)
    count = np.zeros(masks[0].shape, dtype=np.int32)
    for sid, m in zip(ids, masks):
        out[m] = sid
        count += m
    if (count > 1).any():
        n = int((count > 1).sum())
        raise ValueError(f"panoptic segments overlap on {n} pixels; each pixel belongs to at most one segment")
    return out


class PanopticSplit:
    """Panoptic targets of one split, from panoptic PNGs + JSON or built from the COCO instances.

    Args:
        split: the :class:`~segval.dataset.split.SplitData`.
        json_path, png_dir: the panoptic JSON and PNG folder, or both None to build from COCO.
    """

    def __init__(self, split: Any, json_path: Path | None = None, png_dir: Path | None = None) -> None:
        self.split = split
        self.json_path = json_path
        self.png_dir = png_dir
        self._by_image: dict[int, Mapping[str, Any]] = {}
        if json_path is not None:
            data = load_json(json_path)
            anns = data.get("annotations") if isinstance(data, Mapping) else None
            if not isinstance(anns, list):
                raise DatasetError("a panoptic JSON needs an 'annotations' list", path=json_path)
            by_png = {a.get("file_name"): a for a in anns if isinstance(a, Mapping)}
            by_id = {a.get("image_id"): a for a in anns if isinstance(a, Mapping)}
            for rec in split.images:
                png = PurePosixPath(rec.file_name).with_suffix(".png").as_posix()
                ann = by_png.get(png) or by_id.get(rec.id)
                if ann is not None:
                    self._by_image[rec.id] = ann

    @classmethod
    def for_split(cls, split: Any, root: str | Path | None) -> PanopticSplit:
        """The package's panoptic files when ``<root>/annotations/panoptic_<split>.json`` exists, else COCO."""
        if root is not None:
            js, pngs = panoptic_json_path(root, split.name), panoptic_png_dir(root, split.name)
            if js.is_file():
                if not pngs.is_dir():
                    raise DatasetError(f"panoptic JSON found but no PNG folder {pngs}; add the PNGs or remove the "
                                       "JSON (the target is then built from COCO)", path=js)
                return cls(split, js, pngs)
        return cls(split)

    @property
    def from_files(self) -> bool:
        return self.json_path is not None

    def target(self, rec: Any) -> tuple[np.ndarray, list[dict[str, int]]]:
        """The panoptic target of an image.

        Returns:
            ``(ids int32[H, W] (0 = void), segments [{"id", "category_id", "iscrowd"}])``, every id of
            the map listed once.
        """
        if self.json_path is None:
            return self._from_coco(rec)
        return self._from_files(rec)

    def _from_coco(self, rec: Any) -> tuple[np.ndarray, list[dict[str, int]]]:
        from segval.dataset.export import panoptic_image

        png, segments = panoptic_image(rec.height, rec.width, self.split.instances(rec), self.split.taxonomy)
        segs = [{"id": int(s["id"]), "category_id": int(s["category_id"]), "iscrowd": int(s["iscrowd"])}
                for s in segments]
        return decode_panoptic_png(png), segs

    def _from_files(self, rec: Any) -> tuple[np.ndarray, list[dict[str, int]]]:
        from segval.dataset import images as imio

        ann = self._by_image.get(rec.id)
        if ann is None:
            raise DatasetError(f"image {rec.file_name!r} has no entry in the panoptic JSON; add one (or remove the "
                               "panoptic files so the target is built from COCO)", path=self.json_path, image_id=rec.id)
        assert self.png_dir is not None
        name = str(ann.get("file_name") or PurePosixPath(rec.file_name).with_suffix(".png").as_posix())
        path = (self.png_dir / name).resolve()
        if not path.is_relative_to(self.png_dir.resolve()):
            raise DatasetError(f"panoptic file_name {name!r} leaves the folder {self.png_dir}", path=self.json_path,
                               image_id=rec.id)
        rgb = imio.read_rgb(path, width=rec.width, height=rec.height, max_pixels=self.split.max_pixels,
                            image_id=rec.id, listed_in=self.json_path)
        ids = decode_panoptic_png(rgb)
        infos = ann.get("segments_info")
        if not isinstance(infos, list):
            raise DatasetError("panoptic annotation has no 'segments_info' list", path=self.json_path, image_id=rec.id)
        segs: list[dict[str, int]] = []
        seen: set[int] = set()
        tax = self.split.taxonomy
        for s in infos:
            sid, cat = int(s["id"]), int(s["category_id"])
            if sid in seen:
                raise DatasetError(f"segment id {sid} is listed twice in segments_info: two segments would claim the "
                                   "same pixels (overlapping segments cannot be represented); give each segment its "
                                   "own id and pixels", path=self.json_path, image_id=rec.id)
            if sid == 0:
                raise DatasetError("segment id 0 is void and cannot be a segment", path=self.json_path,
                                   image_id=rec.id)
            if cat not in tax:
                raise DatasetError(f"segment {sid} has category_id {cat}, not in the taxonomy (ids {tax.ids})",
                                   path=self.json_path, image_id=rec.id)
            seen.add(sid)
            segs.append({"id": sid, "category_id": cat, "iscrowd": int(s.get("iscrowd", 0) or 0)})
        present = set(np.unique(ids).tolist()) - {0}
        missing = sorted(present - seen)
        if missing:
            raise DatasetError(f"segment ids {missing[:10]} appear in the PNG {path.name} but not in its segments_info "
                               "(panopticapi refuses this too); list them in the JSON or paint them void (0)",
                               path=self.json_path, image_id=rec.id)
        absent = sorted(seen - present)
        if absent:
            raise DatasetError(f"segments {absent[:10]} of segments_info have no pixel in the PNG {path.name}; remove "
                               "them from the JSON", path=self.json_path, image_id=rec.id)
        return ids, segs
