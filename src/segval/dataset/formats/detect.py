"""Say what an export is, so ``data check`` / ``dataset import`` can name the right reader.

:func:`identify` looks at a file or folder (cheaply: an XML's first bytes, a JSON's top-level keys)
and returns the ``format=`` value of ``segval dataset import`` with a sentence saying what it is and
how to read it. It never raises for an unknown input: ``format`` is then None.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Identified", "identify"]


@dataclass(frozen=True)
class Identified:
    """What :func:`identify` found.

    Attributes:
        format: the ``format=`` of ``segval dataset import`` (``coco``, ``coco_panoptic``, ``cvat``,
            ``cvat_masks``, ``labelstudio``, ``voc``, ``labelme``), ``package`` for a segval package, or
            None when the input is not readable (``message`` says what it is).
        message: what it is and how to read it.
    """

    format: str | None
    message: str


def _json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def identify(path: str | os.PathLike) -> Identified:
    """What the file or folder ``path`` is (see the module doc)."""
    p = Path(path)
    if p.is_dir():
        return _folder(p)
    if not p.is_file():
        return Identified(None, f"{p} does not exist")
    if p.suffix.lower() == ".xml":
        head = p.read_bytes()[:4096]
        if b"<annotations" in head:
            return Identified("cvat", f"{p} is a CVAT XML export; read it with `segval dataset import format=cvat "
                              f"source={p} images=<image folder>`")
        return Identified(None, f"{p} is an XML file but not a CVAT export (no <annotations> root)")
    if p.suffix.lower() == ".json":
        data = _json(p)
        if data is None:
            return Identified(None, f"{p} is not valid UTF-8 JSON")
        from segval.dataset.coco_dialects import classify_coco

        kind = classify_coco(data)
        fmt = {"instances": "coco", "panoptic": "coco_panoptic", "labelstudio": "labelstudio",
               "labelme": "labelme"}.get(kind.kind)
        if kind.kind == "instances":
            return Identified("coco", f"{p} is a COCO instance-segmentation file; use it with data=coco "
                              f"data.annotations={p} data.images=<folder its file_name entries are relative to>, or "
                              "`segval dataset import format=coco`")
        return Identified(fmt, f"{p} is {kind.message}")
    return Identified(None, f"{p}: not a format segval reads (JSON, XML or a folder)")


def _folder(p: Path) -> Identified:
    if (p / "dataset.yaml").is_file():
        return Identified("package", f"{p} is a segval dataset package")
    if (p / "SegmentationClass").is_dir():
        if (p / "labelmap.txt").is_file() or (p / "ImageSets").is_dir() and not (p / "Annotations").is_dir():
            return Identified("cvat_masks", f"{p} is a CVAT 'Segmentation mask 1.1' export; read it with "
                              f"`segval dataset import format=cvat_masks source={p}`")
        return Identified("voc", f"{p} is a PASCAL VOC-style folder; read it with `segval dataset import format=voc "
                          f"source={p}` (SegmentationClass/ + JPEGImages/ [+ SegmentationObject/])")
    if (p / "annotations.xml").is_file():
        return identify(p / "annotations.xml")
    if (p / "dataset_meta.json").is_file() or (p / "labelmap.txt").is_file():
        return Identified("voc", f"{p} holds a colour table; read its mask folder with `segval dataset import "
                          "format=voc source=<mask folder> images=<image folder>`")
    if (p / "annotations").is_dir() and any((p / "annotations").glob("panoptic_*.json")) and not any(
            (p / "annotations").glob("instances_*.json")):
        js = sorted((p / "annotations").glob("panoptic_*.json"))[0]
        return Identified("coco_panoptic", f"{p} is a COCO panoptic folder; read it with `segval dataset import "
                          f"format=coco_panoptic source={js}`")
    jsons = sorted(p.glob("*.json"))
    if jsons and all(isinstance(d := _json(j), dict) and "shapes" in d for j in jsons[:3]):
        return Identified("labelme", f"{p} is a folder of labelme JSON files; read it with `segval dataset import "
                          f"format=labelme source={p}`")
    try:
        from segval.dataset.formats.folders import find_coco_splits

        splits, _ = find_coco_splits(p)
        names = ", ".join(f"{s.split}: {s.annotations.name}" for s in splits)
        return Identified("coco", f"{p} is a COCO folder ({names}); read it with `segval dataset import format=coco "
                          f"source={p}`")
    except Exception:  # noqa: BLE001 - not a COCO folder: look further
        pass
    return Identified(None, f"{p}: no export layout recognised (COCO, COCO panoptic, CVAT, Label Studio, VOC, labelme)")
