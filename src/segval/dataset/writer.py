"""Write a dataset package (see the README section "The dataset package") atomically.

Example:
    >>> with PackageWriter(root, name="demo", version="1.0.0", taxonomy=tax,
    ...                    splits=["train", "val"]) as w:                      # doctest: +SKIP
    ...     image_id = w.add_image("train", rgb, "video_000/frame_0000.png",
    ...                            instances=[InstanceMask(5, mug_mask)],
    ...                            extra={"video_id": 0, "frame_index": 0})

Everything is written into a temporary folder beside ``root`` and renamed into place when the
``with`` block ends without an error; on an error nothing is left behind.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import yaml
from PIL import Image

from segval.dataset.rle import encode_coco_rle, from_counts_string
from segval.dataset.semantic import rasterize_semantic
from segval.dataset.taxonomy import Taxonomy
from segval.errors import DatasetError
from segval.io import atomic_dir

SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")
IMAGE_EXTS = (".png", ".jpg", ".jpeg")
_RESERVED_IMAGE_KEYS = ("id", "file_name", "width", "height")


@dataclass
class InstanceMask:
    """One object instance to write.

    Args:
        category_id: a category id of the taxonomy.
        mask: bool[H, W], same size as the image.
        iscrowd: 0, or 1 for a crowd region.
    """

    category_id: int
    mask: np.ndarray
    iscrowd: int = 0


class PackageWriter:
    """Context manager writing a dataset package; commits atomically on success.

    Args:
        root: the package folder to create.
        name: dataset name.
        version: semver string, e.g. ``"1.0.0"``.
        taxonomy: the classes (their ids are the label-map values).
        splits: split names, e.g. ``["train", "val"]``; each gets an annotation file even if empty.
        license: licence identifier written to dataset.yaml.
        description: free text.
        label_maps: also write ``label_maps/<split>/<file_name>.png`` (category ids, the
            rasterisation rule of :mod:`segval.dataset.semantic`).
        image_ext: extension appended to a ``file_name`` given without one (``.png`` or ``.jpg``).
        overwrite: replace an existing ``root``.

    Raises:
        DatasetError: ``root`` exists and ``overwrite`` is False (also a ``FileExistsError``).
        ValueError: bad name / version / splits / image_ext.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        name: str,
        version: str,
        taxonomy: Taxonomy,
        splits: Sequence[str],
        license: str = "CC-BY-4.0",  # noqa: A002 - the dataset.yaml key
        description: str = "",
        label_maps: bool = True,
        image_ext: str = ".png",
        overwrite: bool = False,
    ) -> None:
        self.root = Path(root)
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty string, got {name!r}")
        if not isinstance(version, str) or not SEMVER.match(version):
            raise ValueError(f"version must be a semver string such as '1.0.0', got {version!r}")
        if not isinstance(taxonomy, Taxonomy):
            raise ValueError(f"taxonomy must be a segval.dataset.Taxonomy, got {type(taxonomy).__name__}")
        splits = list(splits)
        if not splits or len(set(splits)) != len(splits):
            raise ValueError(f"splits must be a non-empty list of unique names, got {splits!r}")
        for s in splits:
            if not isinstance(s, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", s):
                raise ValueError(f"split name {s!r} must be letters, digits, '_', '-', '.' (it is a folder name)")
        image_ext = image_ext if image_ext.startswith(".") else "." + image_ext
        if image_ext.lower() not in IMAGE_EXTS:
            raise ValueError(f"image_ext must be one of {IMAGE_EXTS}, got {image_ext!r}")
        if self.root.exists() and not overwrite:
            raise PackageExistsError(
                "the dataset package folder already exists; choose another folder, delete it, "
                "or pass overwrite=True to replace it",
                path=self.root,
            )
        self.name, self.version, self.taxonomy, self.splits = name, version, taxonomy, splits
        self.license, self.description = license, description
        self.label_maps, self.image_ext, self.overwrite = label_maps, image_ext, overwrite
        self._images: dict[str, list[dict[str, Any]]] = {s: [] for s in splits}
        self._annotations: dict[str, list[dict[str, Any]]] = {s: [] for s in splits}
        self._file_names: dict[str, set[str]] = {s: set() for s in splits}
        self._stems: dict[str, set[str]] = {s: set() for s in splits}  # file names without extension
        self._next_image_id = 1
        self._next_ann_id = 1
        self._tmp: Path | None = None
        self._stack: ExitStack | None = None

    # ------------------------------------------------------------------ context manager
    def __enter__(self) -> PackageWriter:
        self._stack = ExitStack()
        try:
            self._tmp = self._stack.enter_context(atomic_dir(self.root, overwrite=self.overwrite))
        except FileExistsError:
            self._stack = None
            raise PackageExistsError(
                "the dataset package folder already exists; pass overwrite=True to replace it", path=self.root
            ) from None
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        stack, self._stack = self._stack, None
        assert stack is not None, "PackageWriter.__exit__ without __enter__"
        try:
            if exc_type is None:
                self._write_metadata()
        except BaseException as err:
            stack.__exit__(type(err), err, err.__traceback__)
            self._tmp = None
            raise
        stack.__exit__(exc_type, exc, tb)  # commits (rename) or removes the temporary folder
        self._tmp = None
        return False

    # ------------------------------------------------------------------ writing
    @property
    def num_images(self) -> int:
        """Images added so far (all splits)."""
        return self._next_image_id - 1

    def add_image(
        self,
        split: str,
        image: np.ndarray,
        file_name: str,
        *,
        instances: Sequence[InstanceMask],
        extra: dict[str, Any] | None = None,
    ) -> int:
        """Write one image with its instances (and label map).

        Args:
            split: one of ``splits``.
            image: uint8[H, W, 3] RGB.
            file_name: path relative to ``images/<split>/`` with '/' separators, e.g.
                ``"video_000/frame_0003.png"``; ``image_ext`` is appended when it has no
                extension. Must be unique within the split and stay inside the folder.
            instances: the objects; masks bool[H, W]; empty masks are rejected.
            extra: more keys for the COCO image entry, e.g. ``{"video_id": 0, "frame_index": 3}``.

        Returns:
            The new image id (ids start at 1 and are unique across the package).

        Raises:
            ValueError: bad split, image, file_name, mask or category id (the message names the file).
        """
        if self._tmp is None:
            raise RuntimeError("use PackageWriter as a context manager: `with PackageWriter(...) as w:`")
        if split not in self._images:
            raise ValueError(f"{file_name}: split {split!r} is not one of {self.splits}")
        file_name = self._check_file_name(split, file_name)
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"{file_name}: image must be uint8[H, W, 3] RGB, got {image.dtype}{list(image.shape)}")
        h, w = image.shape[:2]
        if h == 0 or w == 0:
            raise ValueError(f"{file_name}: image is empty ({h}x{w})")
        extra = dict(extra or {})
        for key in _RESERVED_IMAGE_KEYS:
            if key in extra:
                raise ValueError(f"{file_name}: extra must not set {key!r}; the writer sets it")

        image_id = self._next_image_id
        anns = []
        paint = []
        for k, inst in enumerate(instances):
            cat = inst.category_id
            if isinstance(cat, bool) or not isinstance(cat, (int, np.integer)) or int(cat) not in self.taxonomy:
                raise ValueError(
                    f"{file_name}: instance {k} has category id {cat!r}, which is not in the taxonomy "
                    f"(ids: {self.taxonomy.ids})"
                )
            m = np.asarray(inst.mask)
            if m.shape != (h, w):
                raise ValueError(f"{file_name}: instance {k} mask shape {m.shape} != image size ({h}, {w})")
            if m.dtype != bool:
                if not np.isin(m, (0, 1)).all():
                    raise ValueError(f"{file_name}: instance {k} mask must be boolean (or 0/1), got dtype {m.dtype}")
                m = m.astype(bool)
            if inst.iscrowd not in (0, 1):
                raise ValueError(f"{file_name}: instance {k} iscrowd must be 0 or 1, got {inst.iscrowd!r}")
            rle, area, bbox = encode_coco_rle(m)
            if area == 0:
                raise ValueError(f"{file_name}: instance {k} (category id {int(cat)}) has an empty mask; drop it")
            ann_id = self._next_ann_id + len(anns)
            anns.append(
                {
                    "id": ann_id,
                    "image_id": image_id,
                    "category_id": int(cat),
                    "segmentation": rle,
                    "area": area,
                    "bbox": bbox,
                    "iscrowd": int(inst.iscrowd),
                }
            )
            paint.append((int(cat), from_counts_string(rle["counts"], h, w), area, ann_id))

        assert self._tmp is not None
        img_path = self._tmp / "images" / split / file_name
        img_path.parent.mkdir(parents=True, exist_ok=True)
        pil = Image.fromarray(np.ascontiguousarray(image))
        if img_path.suffix.lower() in (".jpg", ".jpeg"):
            pil.save(img_path, quality=95, subsampling=0)
        else:
            pil.save(img_path, compress_level=1)
        if self.label_maps:
            lm = rasterize_semantic(h, w, paint, self.taxonomy.background_id)
            lm_path = self._tmp / "label_maps" / split / PurePosixPath(file_name).with_suffix(".png")
            lm_path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(lm).save(lm_path, compress_level=1)

        entry: dict[str, Any] = {"id": image_id, "file_name": file_name, "width": int(w), "height": int(h)}
        entry.update(_jsonable(extra, file_name))
        self._images[split].append(entry)
        self._annotations[split].extend(anns)
        self._file_names[split].add(file_name)
        self._stems[split].add(PurePosixPath(file_name).with_suffix("").as_posix())
        self._next_image_id += 1
        self._next_ann_id += len(anns)
        return image_id

    def _check_file_name(self, split: str, file_name: str) -> str:
        if not isinstance(file_name, str) or not file_name or "\\" in file_name:
            raise ValueError(f"file_name must be a non-empty relative path with '/' separators, got {file_name!r}")
        p = PurePosixPath(file_name)
        if p.is_absolute() or ".." in p.parts or p.parts[0] == "." or re.match(r"^[A-Za-z]:", file_name):
            raise ValueError(f"{file_name}: file_name must be relative to images/{split}/ without '..'")
        if not p.suffix:
            p = p.with_name(p.name + self.image_ext)
        elif p.suffix.lower() not in IMAGE_EXTS:
            raise ValueError(f"{file_name}: extension must be one of {IMAGE_EXTS}")
        name = p.as_posix()
        if name in self._file_names[split]:
            raise ValueError(f"{name}: file_name already used in split {split!r}")
        if self.label_maps and p.with_suffix("").as_posix() in self._stems[split]:
            raise ValueError(
                f"{name}: another image of split {split!r} has the same name without extension, "
                "so both would get the same label map"
            )
        return name

    def _write_metadata(self) -> None:
        assert self._tmp is not None
        coco_cats = self.taxonomy.coco_categories()
        (self._tmp / "annotations").mkdir(exist_ok=True)
        for split in self.splits:
            (self._tmp / "images" / split).mkdir(parents=True, exist_ok=True)
            if self.label_maps:
                (self._tmp / "label_maps" / split).mkdir(parents=True, exist_ok=True)
            coco = {
                "info": {"description": self.name, "version": self.version},
                "images": self._images[split],
                "annotations": self._annotations[split],
                "categories": coco_cats,
            }
            with open(self._tmp / "annotations" / f"{split}.json", "w", encoding="utf-8") as f:
                json.dump(coco, f, separators=(",", ":"))
        meta: dict[str, Any] = {
            "name": self.name,
            "version": self.version,
            "license": self.license,
            "description": self.description,
            "splits": list(self.splits),
        }
        meta.update(self.taxonomy.to_dict())
        with open(self._tmp / "dataset.yaml", "w", encoding="utf-8") as f:
            yaml.safe_dump(meta, f, sort_keys=False, default_flow_style=None, allow_unicode=True)


class PackageExistsError(DatasetError, FileExistsError):
    """The package folder to write already exists (and ``overwrite`` is False)."""


def _jsonable(extra: dict[str, Any], file_name: str) -> dict[str, Any]:
    def conv(v: Any) -> Any:
        if isinstance(v, np.generic):
            return v.item()
        if isinstance(v, np.ndarray):
            return v.tolist()
        if isinstance(v, dict):
            return {str(k): conv(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [conv(x) for x in v]
        return v

    out = {str(k): conv(v) for k, v in extra.items()}
    try:
        json.dumps(out)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{file_name}: extra is not JSON-serialisable: {err}") from None
    return out
