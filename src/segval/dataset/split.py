"""One split of a dataset package: image records, annotations, pixels and semantic targets.

Example:
    >>> split = DatasetPackage.open("data/tabletop").split("train")    # doctest: +SKIP
    >>> rec = split.images[0]                                           # doctest: +SKIP
    >>> rgb = split.read_image(rec)              # uint8[H, W, 3]       # doctest: +SKIP
    >>> target = split.semantic_target(rec)      # uint8[H, W] train indices, 255 = ignore
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from segval.dataset import images as imio
from segval.dataset import segmentation as seg
from segval.dataset.coco import ImageRecord, index_coco
from segval.dataset.coco_dialects import bbox_ignore_mask
from segval.dataset.packed import AnnotationTable
from segval.dataset.rle import from_counts_strings
from segval.dataset.semantic import IGNORE, paint_runs
from segval.dataset.taxonomy import Taxonomy
from segval.errors import ConfigError, DatasetError

__all__ = ["ImageRecord", "Instance", "SplitData"]


@dataclass(frozen=True)
class Instance:
    """One decoded annotation.

    Attributes:
        annotation_id: COCO annotation id.
        category_id: COCO category id (not the train index).
        mask: bool[H, W].
        iscrowd: 0 or 1.
    """

    annotation_id: int
    category_id: int
    mask: np.ndarray
    iscrowd: int


class SplitData:
    """The images and annotations of one split.

    Construction runs the cheap checks of :func:`segval.dataset.coco.index_coco`; pixel checks
    run when an item is read. Decoded annotations are kept as run lengths (up to
    ``rle_cache_bytes`` per split and process) so later epochs skip parsing.

    Args:
        name: split name.
        coco: the parsed COCO dict (its annotations may be packed: :func:`segval.dataset.packed.load_coco_packed`).
        images_dir: folder the ``file_name`` entries are relative to.
        taxonomy: the package taxonomy.
        annotation_path: the COCO file (named in errors).
        label_maps_dir: folder of label maps, or None.
        max_pixels: limit on width * height of an image.
        ignore_boxes: image id -> COCO boxes ``[x, y, w, h]`` to ignore (255) in the semantic target
            where no annotation lies: the boxes of bbox-only annotations of a plain COCO export
            (:func:`segval.dataset.coco_dialects.normalize_coco`).

    Attributes:
        name: split name.
        images: list of :class:`ImageRecord`, in file order.
    """

    #: memory for cached run lengths, per split and process (DataLoader workers have their own)
    rle_cache_bytes: int = 256 * 2**20

    def __init__(
        self,
        name: str,
        coco: Mapping[str, Any],
        *,
        images_dir: Path,
        taxonomy: Taxonomy,
        annotation_path: Path,
        label_maps_dir: Path | None = None,
        max_pixels: int = imio.DEFAULT_MAX_PIXELS,
        ignore_boxes: Mapping[int, Sequence[Sequence[float]]] | None = None,
    ) -> None:
        self.name = name
        self.images_dir = Path(images_dir)
        self.label_maps_dir = None if label_maps_dir is None else Path(label_maps_dir)
        self.taxonomy = taxonomy
        self.annotation_path = Path(annotation_path)
        self.max_pixels = int(max_pixels)
        imio.raise_pil_limit(self.max_pixels)
        self._lut = taxonomy.lut()
        self._valid_value = np.zeros(256, dtype=bool)  # label-map values allowed
        self._valid_value[taxonomy.ids] = True
        self._valid_value[255] = True
        self._images_root = self.images_dir.resolve()
        self._paths: dict[int, Path] = {}
        self._real_dirs: dict[str, str] = {}  # folder -> its resolved path
        self._images_dir_str = str(self.images_dir)
        folder = f"images/{name}/" if self.images_dir.name == name else str(self.images_dir)
        self.images, by_image = index_coco(coco, taxonomy, path=self.annotation_path, folder=folder)
        self._anns = AnnotationTable(by_image)  # packed annotations stay JSON text until asked for
        self._by_id = {rec.id: rec for rec in self.images}
        self.ignore_boxes: dict[int, list[list[float]]] = {
            int(k): [list(map(float, b)) for b in v] for k, v in (ignore_boxes or {}).items() if v}
        # parsed, checked run lengths by annotation id; filled up to rle_cache_bytes (no eviction:
        # an epoch walks the whole split, so least-recently-used eviction would only thrash)
        self._rle_cache: dict[int, seg.RunLengths] = {}
        self._rle_cache_nbytes = 0

    # ------------------------------------------------------------------ lookups
    def __len__(self) -> int:
        return len(self.images)

    def __repr__(self) -> str:
        return f"SplitData({self.name!r}, images={len(self.images)}, label_maps={self.has_label_maps})"

    @property
    def has_label_maps(self) -> bool:
        """True when the split has a label-map folder."""
        return self.label_maps_dir is not None and self.label_maps_dir.is_dir()

    @property
    def num_annotations(self) -> int:
        """Number of annotations in the split."""
        return self._anns.count

    def image(self, image_id: int) -> ImageRecord:
        """The :class:`ImageRecord` with this id (KeyError if absent)."""
        return self._by_id[image_id]

    def annotations_for(self, image_id: int) -> list[dict[str, Any]]:
        """The COCO annotation dicts of an image, in file order (do not modify them: for a package's
        split they are parsed anew on each call, :mod:`segval.dataset.packed`)."""
        return self._anns.get(image_id)

    def annotations_json(self, image_id: int) -> str:
        """The annotations of an image as one JSON array text (their compact text as read for a package's split),
        for writing them out unchanged without parsing them."""
        return self._anns.json_text(image_id)

    @property
    def annotation_ids(self) -> np.ndarray:
        """int64[num_annotations]: every annotation id of the split, image by image."""
        return self._anns.ids

    def image_path(self, rec: ImageRecord) -> Path:
        """Resolved path of the image file.

        Raises:
            DatasetError: the path leaves the image folder (e.g. through a symbolic link).
        """
        p = self._paths.get(rec.id)
        if p is None:
            p = self._resolve(rec.file_name)
            if not p.is_relative_to(self._images_root):
                raise DatasetError(
                    f"file_name {rec.file_name!r} resolves to {p}, outside the image folder {self._images_root}; "
                    "file names must stay inside the folder",
                    path=self.annotation_path,
                    image_id=rec.id,
                )
            self._paths[rec.id] = p
        return p

    def _resolve(self, file_name: str) -> Path:
        """``(images_dir / file_name).resolve()``, resolving each folder once (many images share one)."""
        head, name = os.path.split(os.path.join(self._images_dir_str, file_name))
        if name in ("", ".", "..") or ".." in file_name.split("/"):
            return (self.images_dir / file_name).resolve()
        real = self._real_dirs.get(head)
        if real is None:
            real = self._real_dirs[head] = os.path.realpath(head)
        q = os.path.join(real, name)
        if os.path.islink(q):  # follow it as resolve() does
            return (self.images_dir / file_name).resolve()
        return Path(q)

    def label_map_path(self, rec: ImageRecord) -> Path:
        """``label_maps/<split>/<file_name with .png>`` (whether or not it exists).

        Raises:
            DatasetError: the split has no label maps.
        """
        if self.label_maps_dir is None:
            raise DatasetError(f"split {self.name!r} has no label maps; use source='coco'", path=self.annotation_path)
        return self.label_maps_dir / PurePosixPath(rec.file_name).with_suffix(".png")

    # ------------------------------------------------------------------ pixels
    def read_image(self, rec: ImageRecord) -> np.ndarray:
        """Read an image as RGB.

        Returns:
            uint8[H, W, 3] (writable).

        Raises:
            DatasetError: missing, unreadable or truncated file; width * height over
                ``max_pixels`` (checked from the header, before decoding); size not the COCO
                width / height.
        """
        return imio.read_rgb(self.image_path(rec), width=rec.width, height=rec.height, max_pixels=self.max_pixels,
                             image_id=rec.id, listed_in=self.annotation_path)

    def check_image_header(self, rec: ImageRecord) -> None:
        """Check existence, pixel limit and size from the header only (no decoding)."""
        imio.check_header(self.image_path(rec), width=rec.width, height=rec.height, max_pixels=self.max_pixels,
                          image_id=rec.id, listed_in=self.annotation_path)

    def masks(self, rec: ImageRecord, *, cache: bool = True) -> list[tuple[dict[str, Any], seg.RunLengths]]:
        """Each annotation of the image with its checked run lengths.

        ``cache=False`` keeps the parsed run lengths out of the cache (a walk over the split that reads each
        image once would only fill it: up to ``rle_cache_bytes`` per split); cached ones are still used.

        Raises:
            DatasetError: RLE size != image size, corrupt counts, polygon with < 3 points, ...
        """
        anns = self._anns.get(rec.id)
        parsed = self._parse_compressed([a for a in anns if a["id"] not in self._rle_cache], rec)
        return [(a, self._run_lengths(a, rec, parsed.get(a["id"]), cache=cache)) for a in anns]

    def _parse_compressed(self, anns: list[dict[str, Any]], rec: ImageRecord) -> dict[Any, seg.RunLengths]:
        """Run lengths of the annotations that are compressed RLE at the image size, parsed
        together (:func:`~segval.dataset.rle.from_counts_strings`), by annotation id; empty when
        one is corrupt (each is then decoded alone, which names the culprit)."""
        ok = [a for a in anns if _is_compressed_rle(a.get("segmentation"), rec.height, rec.width)]
        if len(ok) < 2:
            return {}
        try:
            runs = from_counts_strings([a["segmentation"]["counts"] for a in ok], rec.height, rec.width)
        except ValueError:
            return {}
        return {a["id"]: rl for a, rl in zip(ok, runs)}

    def _run_lengths(self, ann: Mapping[str, Any], rec: ImageRecord,
                     rl: seg.RunLengths | None = None, *, cache: bool = True) -> seg.RunLengths:
        """The annotation's run lengths: cached, else ``rl`` (already parsed) or decoded, then cached (``cache``)."""
        ann_id = ann["id"]
        cached = self._rle_cache.get(ann_id)
        if cached is not None:
            return cached
        if rl is None:
            rl = seg.decode_segmentation(ann, rec.height, rec.width, path=self.annotation_path, image_id=rec.id)
        if rec.height * rec.width < 2**31 and rl.counts.dtype != np.int32:
            rl = seg.RunLengths(rl.height, rl.width, rl.counts.astype(np.int32))
        if cache and self._rle_cache_nbytes + rl.counts.nbytes <= self.rle_cache_bytes:
            self._rle_cache[ann_id] = rl
            self._rle_cache_nbytes += rl.counts.nbytes
        return rl

    def instances(self, rec: ImageRecord, *, cache: bool = True) -> list[Instance]:
        """Decoded instances of an image (masks bool[H, W], COCO category ids), in file order (``cache``: as
        :meth:`masks`)."""
        return [
            Instance(int(a["id"]), int(a["category_id"]), rl.decode(), int(a.get("iscrowd", 0) or 0))
            for a, rl in self.masks(rec, cache=cache)
        ]

    def semantic_target(self, rec: ImageRecord, source: str = "coco", *, cache: bool = True) -> np.ndarray:
        """Semantic target of an image.

        Args:
            rec: the image.
            source: ``"coco"`` (rasterise the annotations with the rule of
                :mod:`segval.dataset.semantic`) or ``"label_map"`` (read the label-map PNG).
            cache: keep the parsed run lengths (as :meth:`masks`).

        Returns:
            uint8[H, W] of TRAIN INDICES, 255 = ignore.
        """
        if source == "coco":
            return self._coco_target(rec, cache=cache)
        if source == "label_map":
            return self._lut[self.read_label_map(rec)]
        raise ConfigError(f"source must be 'coco' or 'label_map', got {source!r}")

    def _coco_target(self, rec: ImageRecord, *, cache: bool = True) -> np.ndarray:
        """The COCO side of :meth:`semantic_target`: train indices are painted directly (the
        lookup table maps pixel by pixel, so mapping before painting gives the same target)."""
        masks = self.masks(rec, cache=cache)
        lut = self._lut
        background = self.taxonomy.background_id
        target = paint_runs(rec.height, rec.width, [rl for _, rl in masks], [lut[a["category_id"]] for a, _ in masks],
                            None, [int(a["id"]) for a, _ in masks], lut[IGNORE if background is None else background])
        ignore = self.ignore_mask(rec)
        if ignore is not None:
            for _, rl in masks:  # annotated pixels keep their label: an ignore box never erases an object
                ignore &= ~rl.decode()
            target[ignore] = IGNORE
        return target

    def ignore_mask(self, rec: ImageRecord) -> np.ndarray | None:
        """bool[H, W] of the image's ignore boxes (before annotations are taken out), or None without any."""
        boxes = self.ignore_boxes.get(rec.id)
        if not boxes:
            return None
        return bbox_ignore_mask(boxes, rec.height, rec.width).decode()

    def read_label_map(self, rec: ImageRecord) -> np.ndarray:
        """Read a label map: uint8[H, W] of CATEGORY IDS (255 = ignore), checked.

        Raises:
            DatasetError: no label maps, missing file, not single-channel 8-bit, size != image,
                values that are no category id nor 255 (listed).
        """
        return imio.read_label_map(self.label_map_path(rec), width=rec.width, height=rec.height,
                                   valid=self._valid_value, image_id=rec.id, max_pixels=self.max_pixels)


def _is_compressed_rle(segm: Any, height: int, width: int) -> bool:
    """True for a compressed RLE ``{"size": [height, width], "counts": str}`` (the size checked as
    :func:`~segval.dataset.segmentation.decode_segmentation` checks it)."""
    if not isinstance(segm, Mapping) or not isinstance(segm.get("counts"), (str, bytes)):
        return False
    size = segm.get("size")
    return (isinstance(size, (list, tuple)) and len(size) == 2 and all(isinstance(v, int) for v in size)
            and size[0] == height and size[1] == width)
