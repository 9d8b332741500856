"""A dataset package (dataset.yaml + per-split COCO files, images, optional label maps).

Cheap checks run when a package is opened (missing dataset.yaml or split file, invalid JSON,
duplicate ids, annotations pointing at unknown images or categories, file names escaping the
image folder). Checks that need the pixels run when an item is read, and all of them at once
in :func:`segval.dataset.validate.validate_package`.

Example:
    >>> pkg = DatasetPackage.open("data/tabletop")                      # doctest: +SKIP
    >>> train = pkg.split("train")                                      # doctest: +SKIP
    >>> target = train.semantic_target(train.images[0])  # uint8[H, W] train indices, 255 = ignore
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from segval.dataset.coco import MAX_LISTED_PROBLEMS, ImageRecord, combine_problems, load_json
from segval.dataset.coco_dialects import normalize_coco
from segval.dataset.images import DEFAULT_MAX_PIXELS
from segval.dataset.packed import load_coco_packed
from segval.dataset.split import Instance, SplitData
from segval.dataset.taxonomy import Taxonomy
from segval.errors import ConfigError, DatasetError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "MAX_LISTED_PROBLEMS",
    "DatasetPackage",
    "ImageRecord",
    "Instance",
    "SplitData",
    "SplitPaths",
    "combine_problems",
    "load_json",
    "split_layout",
]


class DatasetPackage:
    """A dataset package: dataset.yaml + per-split COCO files, images and optional label maps.

    Use :meth:`open` for a package and :meth:`from_coco` for a plain COCO export.

    Attributes:
        root: the package folder.
        name, version, license, description: from dataset.yaml.
        taxonomy: the :class:`~segval.dataset.taxonomy.Taxonomy`.
        splits: split names, in dataset.yaml order.
        warnings: what was coerced / recomputed while reading (plain COCO dialects), one line per kind.
    """

    def __init__(
        self,
        root: Path,
        *,
        name: str,
        version: str,
        taxonomy: Taxonomy,
        splits: dict[str, SplitData],
        license: str = "",  # noqa: A002
        description: str = "",
        metadata: dict[str, Any] | None = None,
        warnings: list[str] | None = None,
    ) -> None:
        self.root = Path(root)
        self.name = name
        self.version = version
        self.license = license
        self.description = description
        self.taxonomy = taxonomy
        self._splits = splits
        self.splits: list[str] = list(splits)
        self.metadata: dict[str, Any] = dict(metadata or {})
        #: what was coerced or recomputed while reading (a plain COCO export's dialect), one line per kind
        self.warnings: list[str] = list(warnings or [])

    def __repr__(self) -> str:
        return f"DatasetPackage({self.name!r} {self.version}, root={str(self.root)!r}, splits={self.splits})"

    def split(self, name: str) -> SplitData:
        """The :class:`SplitData` of split ``name`` (ConfigError naming the splits if absent)."""
        try:
            return self._splits[name]
        except KeyError:
            raise ConfigError(f"split {name!r} is not in {self.root} (splits: {self.splits})") from None

    def content_hash(self) -> str:
        """SHA-256 (hex) of dataset.yaml and the annotation files: changes when labels change.

        Image and label-map bytes are not read (that would take long on large packages).
        """
        h = hashlib.sha256()
        files = [self.root / "dataset.yaml"] if (self.root / "dataset.yaml").exists() else []
        files += [self._splits[s].annotation_path for s in self.splits]
        for f in files:
            h.update(str(f.name).encode() + b"\0")
            h.update(f.read_bytes())
        return h.hexdigest()

    # ------------------------------------------------------------------ constructors
    @classmethod
    def open(cls, root: str | os.PathLike, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> DatasetPackage:
        """Open a package folder and run the cheap checks.

        ``splits`` in dataset.yaml is a list of names (``annotations/<split>.json``,
        ``images/<split>/``, ``label_maps/<split>/``) or a mapping ``{split: {images, annotations,
        label_maps}}`` of paths relative to the root (each optional, defaulting to that layout); see
        :func:`split_layout`.

        Args:
            root: folder holding dataset.yaml.
            max_pixels: limit on width * height of an image (checked before decoding).

        Raises:
            DatasetError: missing / invalid dataset.yaml or split file, split paths leaving the root,
                invalid JSON (with line and column), duplicate ids, unknown image or category, file
                names escaping.
        """
        root = Path(root)
        meta_path = root / "dataset.yaml"
        if not meta_path.is_file():
            raise DatasetError(f"dataset.yaml not found; {_not_a_package_hint(root)}", path=meta_path)
        meta = _load_yaml(meta_path)
        for key in ("name", "version", "splits", "taxonomy"):
            if key not in meta:
                raise DatasetError(f"dataset.yaml has no {key!r}; add it (see the README section 'The dataset package')", path=meta_path)
        layout = split_layout(meta["splits"], root, path=meta_path)
        taxonomy = Taxonomy.from_dict(meta, path=meta_path)
        data: dict[str, SplitData] = {}
        for s, where in layout.items():
            if not where.annotations.is_file():
                raise DatasetError(
                    f"annotation file of split {s!r} not found; every split listed in dataset.yaml needs "
                    f"{where.annotations.relative_to(root).as_posix()}: add it or remove {s!r} from 'splits'",
                    path=where.annotations,
                )
            data[s] = SplitData(
                s,
                load_coco_packed(where.annotations),
                images_dir=where.images,
                taxonomy=taxonomy,
                annotation_path=where.annotations,
                label_maps_dir=where.label_maps if where.label_maps.is_dir() else None,
                max_pixels=max_pixels,
            )
        extra = {k: v for k, v in meta.items() if k not in ("name", "version", "license", "description", "splits",
                                                             "taxonomy", "background_id")}
        return cls(
            root,
            name=str(meta["name"]),
            version=str(meta["version"]),
            taxonomy=taxonomy,
            splits=data,
            license=str(meta.get("license") or ""),
            description=str(meta.get("description") or ""),
            metadata=extra,
        )

    @classmethod
    def from_coco(
        cls,
        annotations: str | os.PathLike,
        images: str | os.PathLike,
        *,
        split: str = "train",
        name: str | None = None,
        background: str | None = "auto",
        bbox_only: str = "ignore_box",
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> DatasetPackage:
        """Wrap a plain COCO export (labelme, Label Studio, CVAT, COCO-Annotator, ...) as a one-split package.

        The file is read as real tools write it (:func:`~segval.dataset.coco_dialects.normalize_coco`):
        string booleans, hex colours, 64-bit ids, extra fields, bad ``area`` / ``bbox`` and polygons
        outside the image are accepted, each kind reported once in :attr:`warnings`. Annotations with
        a box but no mask follow ``bbox_only``. A file that is no COCO instance segmentation (results,
        captions, keypoints, image info, SA-1B, panoptic, Label Studio, a CVAT XML, ...) is refused
        with a sentence saying what it is and which command reads it.

        Args:
            annotations: the COCO JSON file.
            images: the folder the ``file_name`` entries are relative to (for labelme's
                ``JPEGImages/x.jpg`` names: the folder holding ``JPEGImages``).
            split: name given to the split.
            name: dataset name (default: the images folder name).
            background: see :meth:`Taxonomy.from_coco_categories` (``"auto"``, ``"none"`` or a
                category name).
            bbox_only: annotations with a box but no mask: ``"ignore_box"`` (their box is ignored (255)
                in the semantic target where no annotation lies), ``"drop"`` or ``"error"``.
            max_pixels: limit on width * height of an image.

        Raises:
            DatasetError: as :meth:`open`, for categories from which no background can be chosen, for
                a file of another kind (named), and for bbox-only annotations with ``bbox_only="error"``.
        """
        ann_path = Path(annotations)
        img_dir = Path(images)
        if not ann_path.is_file():
            raise DatasetError("COCO annotation file not found; check the path", path=ann_path)
        if not img_dir.is_dir():
            raise DatasetError("image folder not found; pass the folder the file_name entries are relative to",
                               path=img_dir)
        norm = normalize_coco(_load_coco_json(ann_path), path=ann_path, bbox_only=bbox_only)
        coco = norm.coco
        taxonomy = Taxonomy.from_coco_categories(coco.get("categories") or [], background, path=ann_path)
        data = {
            split: SplitData(split, coco, images_dir=img_dir, taxonomy=taxonomy, annotation_path=ann_path,
                             max_pixels=max_pixels, ignore_boxes=norm.bbox_only)
        }
        info = coco.get("info") if isinstance(coco.get("info"), Mapping) else {}
        version = str(info.get("version") or "0.0.0")
        return cls(
            img_dir,
            name=name or img_dir.resolve().name,
            version=version,
            taxonomy=taxonomy,
            splits=data,
            license="",
            description=str(info.get("description") or f"COCO export {ann_path}"),
            warnings=norm.warnings,
        )


# ---------------------------------------------------------------------- layout
@dataclass(frozen=True)
class SplitPaths:
    """Where one split's files are (absolute; ``label_maps`` may not exist)."""

    annotations: Path
    images: Path
    label_maps: Path


_SPLIT_KEYS = ("images", "annotations", "label_maps")
_SPLIT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def split_layout(splits: Any, root: str | os.PathLike, *, path: object | None = None) -> dict[str, SplitPaths]:
    """The files of each split from dataset.yaml's ``splits``, in its order.

    Args:
        splits: a list of split names (the standard layout: ``annotations/<split>.json``,
            ``images/<split>/``, ``label_maps/<split>/``), or a mapping ``{split: {images: <folder>,
            annotations: <file.json>, label_maps: <folder>}}`` with paths relative to ``root``; a
            key left out (or a split mapped to null) takes the standard path.
        root: the package folder.
        path: dataset.yaml (named in errors).

    Raises:
        DatasetError: an empty or malformed ``splits``, a split name that is no plain folder name, an
            unknown key, a path that is absolute, holds ``..`` or resolves outside ``root``.
    """
    root = Path(root)
    if isinstance(splits, list):
        entries: dict[Any, Any] = {s: None for s in splits}
        if len(entries) != len(splits):
            raise DatasetError(f"'splits' names a split twice: {splits!r}", path=path)
    elif isinstance(splits, Mapping):
        entries = dict(splits)
    else:
        entries = {}
    if not entries or not all(isinstance(s, str) and s for s in entries):
        raise DatasetError("'splits' must be a non-empty list of names or a mapping {split: {images, annotations, "
                           f"label_maps}}, got {splits!r}", path=path)
    out: dict[str, SplitPaths] = {}
    for s, entry in entries.items():
        if not _SPLIT_NAME.fullmatch(s):
            raise DatasetError(f"split name {s!r} must be a plain folder name", path=path)
        entry = {} if entry is None else entry
        if not isinstance(entry, Mapping):
            raise DatasetError(f"splits.{s} must be a mapping with {list(_SPLIT_KEYS)} (paths relative to the "
                               f"package folder), got {entry!r}", path=path)
        unknown = sorted(set(entry) - set(_SPLIT_KEYS))
        if unknown:
            raise DatasetError(f"splits.{s} has unknown keys {unknown}; allowed: {list(_SPLIT_KEYS)}", path=path)
        default = {"images": f"images/{s}", "annotations": f"annotations/{s}.json", "label_maps": f"label_maps/{s}"}
        where = {k: _inside(root, entry.get(k) or default[k], f"splits.{s}.{k}", path) for k in _SPLIT_KEYS}
        out[s] = SplitPaths(where["annotations"], where["images"], where["label_maps"])
    return out


def _inside(root: Path, rel: Any, key: str, path: object | None) -> Path:
    if not isinstance(rel, str):
        raise DatasetError(f"{key} must be a path relative to the package folder, got {rel!r}", path=path)
    p = PurePosixPath(rel.replace("\\", "/"))
    if p.is_absolute() or re.match(r"^[A-Za-z]:", rel) or ".." in p.parts:
        raise DatasetError(f"{key} = {rel!r} must be a relative path inside the package folder, without '..'",
                           path=path)
    full = (root / p).resolve()
    if not full.is_relative_to(root.resolve()):
        raise DatasetError(f"{key} = {rel!r} resolves to {full}, outside the package folder {root.resolve()} "
                           "(a link?); keep the package's files inside it", path=path)
    return root / p


def _not_a_package_hint(root: Path) -> str:
    """What a folder without dataset.yaml (or a file given as a package) looks like, and how to read it."""
    if root.is_file():
        from segval.dataset.formats.detect import identify

        found = identify(root)
        if found.format == "coco":
            return (f"{root} is a file, not a package folder: it is a COCO file; run with data=coco "
                    f"data.annotations={root} data.images=<folder its file_name entries are relative to>")
        return f"{root} is a file, not a package folder: {found.message}"
    if root.is_dir():
        from segval.dataset.formats.detect import identify

        found = identify(root)
        if found.format == "coco" or (found.format is None and any(root.glob("*.json"))):
            return ("it looks like a plain COCO export: run with data=coco data.annotations=<file.json> "
                    "data.images=<folder its file_name entries are relative to>, or make a package of it with "
                    f"`segval dataset import format=coco source={root} output=<package>`")
        if found.format not in (None, "package"):
            return f"this is no segval package: {found.message}"
    return ("point to the package folder (the one holding dataset.yaml) or write one (see the README section "
            "'The dataset package')")


# ---------------------------------------------------------------------- helpers
def _load_coco_json(path: Path) -> Any:
    """The parsed JSON, or a DatasetError saying what the file is when it is another export (e.g. a CVAT XML)."""
    try:
        return load_json(path)
    except DatasetError:
        from segval.dataset.formats.detect import identify

        found = identify(path)
        if found.format not in (None, "coco"):
            raise DatasetError(f"not a COCO JSON file: {found.message}") from None
        raise


def _load_yaml(path: Path) -> dict[str, Any]:
    try:
        meta = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise DatasetError(f"invalid YAML{where}: {getattr(err, 'problem', err)}", path=path) from None
    if not isinstance(meta, dict):
        raise DatasetError("dataset.yaml must be a mapping (name, version, splits, taxonomy, ...)", path=path)
    return meta
