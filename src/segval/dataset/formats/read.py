"""One entry point for ``segval dataset import``: the reader of a ``format=`` and where its files are.

:func:`read_export` takes the export as a user points at it (a file or the folder an export unzips to)
and calls the reader of :mod:`segval.dataset.formats` with the folders each tool's layout implies:

=================  ==========================================================================================
format             source (and the defaults of ``images``)
=================  ==========================================================================================
``coco``           a COCO JSON (images: the JSON's folder) or a COCO / Roboflow / mmdet folder (every split)
``coco_panoptic``  a panoptic JSON, or a folder with ``annotations/panoptic_<split>.json`` (every split)
``cvat``           ``annotations.xml`` or the unzipped export folder (images: its ``images/``)
``cvat_masks``     the unzipped "Segmentation mask 1.1" folder (images: its ``JPEGImages/``)
``labelstudio``    the JSON / JSON-MIN export (images: the JSON's folder)
``voc``            a VOC-style root (``SegmentationClass/`` + ``JPEGImages/`` [+ ``SegmentationObject/``]) or
                   a mask folder (images: a ``JPEGImages/`` beside it, else ``images=`` is needed)
``labelme``        a folder of labelme JSONs (images embedded or beside each JSON)
=================  ==========================================================================================

Nothing is written here; :func:`~segval.dataset.formats.result.write_imported` writes the result.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from segval.dataset.formats.result import DEFAULT_MAX_PIXELS, ImportedDataset, merge_imported
from segval.errors import ConfigError, DatasetError

__all__ = ["READ_FORMATS", "read_export"]

#: the formats :func:`read_export` reads
READ_FORMATS = ("coco", "coco_panoptic", "cvat", "cvat_masks", "labelstudio", "voc", "labelme")
#: the options each format takes (the keys of its group in conf/dataset_import.yaml that reach the reader)
OPTIONS = {
    "coco": ("bbox_only",),
    "coco_panoptic": ("png_dir",),
    "cvat": (),
    "cvat_masks": (),
    "labelstudio": ("labels",),
    "voc": ("colors", "pair", "objects"),
    "labelme": ("labels", "skip_unsupported", "ignore_labels"),
}


def read_export(
    fmt: str,
    source: str | os.PathLike,
    *,
    images: str | os.PathLike | None = None,
    split: str = "train",
    background: str | None = None,
    options: Mapping[str, Any] | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: Callable[[Any], Any] | None = None,
) -> ImportedDataset:
    """Parse and check the export ``source`` of format ``fmt`` (see the module doc). Nothing is written.

    Args:
        fmt: one of :data:`READ_FORMATS`.
        source: the export file or folder.
        images: the folder its image names are relative to (default: per format, see the module doc).
        split: split name for single-split exports.
        background: ``"auto"``, ``"none"`` or a class name; None: the format's default (``"none"`` for
            COCO panoptic, where uncovered pixels are void, else ``"auto"``).
        options: format options (:data:`OPTIONS`), e.g. ``{"bbox_only": "drop"}``; None values are left out.
        max_pixels: images above this pixel count are refused before decoding.
        progress: wraps the per-image loop.

    Raises:
        ConfigError: an unknown format or option, a source that does not exist.
        DatasetError: every problem of the export, listed at once.
    """
    if fmt not in READ_FORMATS:
        raise ConfigError(f"format must be one of {list(READ_FORMATS)}, got {fmt!r}")
    src = Path(source)
    if not src.exists():
        raise DatasetError(f"the {fmt} export was not found; check source=", path=src)
    opts = {k: v for k, v in (options or {}).items() if v is not None}
    unknown = sorted(set(opts) - set(OPTIONS[fmt]))
    if unknown:
        raise ConfigError(f"format={fmt} takes the options {list(OPTIONS[fmt])}, not {unknown}")
    img = Path(images) if images is not None else None
    bg = background if background is not None else ("none" if fmt == "coco_panoptic" else "auto")
    common = {"max_pixels": int(max_pixels), "progress": progress}
    try:
        return _read(fmt, src, img, split, bg, opts, common)
    except DatasetError as err:
        _add_format_hint(err, fmt, src)
        raise


def _add_format_hint(err: DatasetError, fmt: str, src: Path) -> None:
    """When ``src`` is recognisably another format than ``fmt`` (:func:`~segval.dataset.formats.detect.identify`),
    add to ``err``'s message what it is and which ``format=`` reads it."""
    from segval.dataset.formats.detect import identify

    found = identify(src)
    if found.format not in (None, fmt) and err.args and f"format={found.format}" not in str(err.args[0]):
        err.args = (f"{err.args[0]}\n  (format={fmt} was used, but {found.message})",) + err.args[1:]


def _read(fmt: str, src: Path, img: Path | None, split: str, bg: str, opts: dict[str, Any],
          common: dict[str, Any]) -> ImportedDataset:
    """Dispatch to the reader of ``fmt`` (arguments as :func:`read_export`)."""
    progress = common["progress"]
    if fmt == "coco":
        return _coco(src, img, split, bg, opts, common)
    if fmt == "coco_panoptic":
        return _panoptic(src, img, split, bg, opts, common)
    if fmt == "cvat":
        from segval.dataset.formats.cvat import read_cvat_xml

        return read_cvat_xml(src, img, split=split, background=bg, **common)
    if fmt == "cvat_masks":
        from segval.dataset.formats.cvat_masks import read_cvat_masks

        _need_dir(src, fmt)
        return read_cvat_masks(src, img, split=split, background=bg, **common)
    if fmt == "labelstudio":
        from segval.dataset.formats.labelstudio import read_labelstudio

        return read_labelstudio(src, img, split=split, labels=_labels(opts.get("labels")), background=bg, **common)
    if fmt == "voc":
        return _voc(src, img, split, bg, opts, common)
    from segval.dataset.labelme import IGNORE_LABEL, read_labelme

    _need_dir(src, fmt)
    return read_labelme(src, split=split, labels=_labels(opts.get("labels")),
                        skip_unsupported=bool(opts.get("skip_unsupported", False)),
                        ignore_labels=tuple(opts.get("ignore_labels", (IGNORE_LABEL,))), progress=progress)


def _need_dir(src: Path, fmt: str) -> None:
    if not src.is_dir():
        raise DatasetError(f"format={fmt} reads a folder; source= is a file", path=src)


def _labels(v: Any) -> Any:
    """A label option: a file path (str) or a list of names."""
    if v is None or isinstance(v, (str, os.PathLike)):
        return v
    return [str(n) for n in v]


def _coco(src: Path, img: Path | None, split: str, bg: str, opts: dict[str, Any], common: dict[str, Any]
          ) -> ImportedDataset:
    from segval.dataset.formats.coco import read_coco, read_coco_folder

    bbox_only = str(opts.get("bbox_only", "ignore_box"))
    if src.is_dir():
        if img is not None:
            raise ConfigError("images= is for a COCO JSON source; a COCO folder names its image folders itself")
        return read_coco_folder(src, background=bg, bbox_only=bbox_only, **common)
    return read_coco(src, img if img is not None else src.parent, split=split, background=bg, bbox_only=bbox_only,
                     **common)


def _panoptic(src: Path, img: Path | None, split: str, bg: str, opts: dict[str, Any], common: dict[str, Any]
              ) -> ImportedDataset:
    from segval.dataset.formats.coco_panoptic import read_coco_panoptic

    png_dir = opts.get("png_dir")
    if src.is_file():
        return read_coco_panoptic(src, png_dir, img, split=split, background=bg, **common)
    jsons = sorted((src / "annotations").glob("panoptic_*.json"))
    if not jsons:
        raise DatasetError("no annotations/panoptic_<split>.json in the folder; pass the panoptic JSON as source=",
                           path=src)
    if png_dir is not None or img is not None:
        raise ConfigError("coco_panoptic.png_dir / images= are for one panoptic JSON; a folder names them per split")
    res = merge_imported(read_coco_panoptic(js, None, None, split=js.stem[len("panoptic_"):], background=bg,
                                            **common) for js in jsons)
    manifest = src / "export.yaml"  # `segval dataset export format=panoptic` names the package's licence there
    if res.license is None and manifest.is_file():
        import yaml

        meta = yaml.safe_load(manifest.read_text(encoding="utf-8"))
        res.license = str(meta["license"]) if isinstance(meta, dict) and meta.get("license") else None
    return res


def _voc(src: Path, img: Path | None, split: str, bg: str, opts: dict[str, Any], common: dict[str, Any]
         ) -> ImportedDataset:
    from segval.dataset.formats.palette import read_voc

    _need_dir(src, "voc")
    if (src / "SegmentationClass").is_dir():  # the VOC root
        root, masks = src, src / "SegmentationClass"
    else:
        root, masks = src.parent, src
    if img is None:
        img = root / "JPEGImages"
        if not img.is_dir():
            raise ConfigError(f"no JPEGImages/ beside {masks}: pass images=<folder of the images>")
    objects = opts.get("objects")
    if objects is None and (root / "SegmentationObject").is_dir() and masks.name == "SegmentationClass":
        objects = root / "SegmentationObject"
    colors = opts.get("colors")
    return read_voc(masks, img, colors=colors, pair=opts.get("pair"), objects_dir=objects, split=split,
                    background=bg, **common)
