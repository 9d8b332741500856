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
from pathlib import Path
from typing import Any

import yaml

from segval.dataset.coco import MAX_LISTED_PROBLEMS, ImageRecord, combine_problems, load_json
from segval.dataset.images import DEFAULT_MAX_PIXELS
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
    "combine_problems",
    "load_json",
]


class DatasetPackage:
    """A dataset package: dataset.yaml + per-split COCO files, images and optional label maps.

    Use :meth:`open` for a package and :meth:`from_coco` for a plain COCO export.

    Attributes:
        root: the package folder.
        name, version, license, description: from dataset.yaml.
        taxonomy: the :class:`~segval.dataset.taxonomy.Taxonomy`.
        splits: split names, in dataset.yaml order.
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

        Args:
            root: folder holding dataset.yaml.
            max_pixels: limit on width * height of an image (checked before decoding).

        Raises:
            DatasetError: missing / invalid dataset.yaml or split file, invalid JSON (with line
                and column), duplicate ids, unknown image or category, file names escaping.
        """
        root = Path(root)
        meta_path = root / "dataset.yaml"
        if not meta_path.is_file():
            hint = (
                "it looks like a plain COCO export: run with data=coco data.annotations=<file.json> data.images=<folder its file_name entries are relative to>"
                if root.is_dir() and any(root.glob("*.json"))
                else "point to the package folder (the one holding dataset.yaml) or write one (see the README section 'The dataset package')"
            )
            raise DatasetError(f"dataset.yaml not found; {hint}", path=meta_path)
        meta = _load_yaml(meta_path)
        for key in ("name", "version", "splits", "taxonomy"):
            if key not in meta:
                raise DatasetError(f"dataset.yaml has no {key!r}; add it (see the README section 'The dataset package')", path=meta_path)
        splits = meta["splits"]
        if not isinstance(splits, list) or not splits or not all(isinstance(s, str) and s for s in splits):
            raise DatasetError(f"'splits' must be a non-empty list of names, got {splits!r}", path=meta_path)
        taxonomy = Taxonomy.from_dict(meta, path=meta_path)
        data: dict[str, SplitData] = {}
        for s in splits:
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", s):
                raise DatasetError(f"split name {s!r} must be a plain folder name", path=meta_path)
            ann_path = root / "annotations" / f"{s}.json"
            if not ann_path.is_file():
                raise DatasetError(
                    f"annotation file of split {s!r} not found; every split listed in dataset.yaml needs "
                    f"annotations/{s}.json: add it or remove {s!r} from 'splits'",
                    path=ann_path,
                )
            lm_dir = root / "label_maps" / s
            data[s] = SplitData(
                s,
                load_json(ann_path),
                images_dir=root / "images" / s,
                taxonomy=taxonomy,
                annotation_path=ann_path,
                label_maps_dir=lm_dir if lm_dir.is_dir() else None,
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
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> DatasetPackage:
        """Wrap a plain COCO export (labelme, Label Studio, CVAT, ...) as a one-split package.

        Args:
            annotations: the COCO JSON file.
            images: the folder the ``file_name`` entries are relative to (for labelme's
                ``JPEGImages/x.jpg`` names: the folder holding ``JPEGImages``).
            split: name given to the split.
            name: dataset name (default: the images folder name).
            background: see :meth:`Taxonomy.from_coco_categories` (``"auto"``, ``"none"`` or a
                category name).
            max_pixels: limit on width * height of an image.

        Raises:
            DatasetError: as :meth:`open`, and for categories from which no background can be chosen.
        """
        ann_path = Path(annotations)
        img_dir = Path(images)
        if not ann_path.is_file():
            raise DatasetError("COCO annotation file not found; check the path", path=ann_path)
        if not img_dir.is_dir():
            raise DatasetError("image folder not found; pass the folder the file_name entries are relative to",
                               path=img_dir)
        coco = load_json(ann_path)
        if not isinstance(coco, Mapping):
            raise DatasetError(f"a COCO file must hold a JSON object, got {type(coco).__name__}", path=ann_path)
        taxonomy = Taxonomy.from_coco_categories(coco.get("categories") or [], background, path=ann_path)
        data = {
            split: SplitData(split, coco, images_dir=img_dir, taxonomy=taxonomy, annotation_path=ann_path,
                             max_pixels=max_pixels)
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
        )


# ---------------------------------------------------------------------- helpers
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
