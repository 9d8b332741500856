"""Find the split files of a COCO folder: ``format=coco source=<folder>``.

Layouts recognised (first match wins):

* segval's own export: ``export.yaml`` + ``annotations/<split>.json`` + ``images/<split>/``;
* Roboflow: ``<split>/_annotations.coco.json`` with the images beside it (``train/``, ``valid/``, ``test/``);
* COCO / mmdet: ``annotations/instances_<split>.json`` (``instances_train2017.json``) or any
  ``annotations/<name>.json``, images in ``<split>/`` (``train2017/``), ``images/<split>/``, ``images/``;
  other COCO task files (``captions_*``, ``person_keypoints_*``, ``image_info_*``, ``stuff_*``,
  ``panoptic_*``) are left out with a note saying what they are;
* a single JSON at the top (``annotations.json`` of labelme2coco), images relative to the folder.

A trailing year is dropped from split names (``train2017`` -> ``train``), with a note.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from segval.errors import DatasetError

__all__ = ["CocoSplitSource", "find_coco_splits"]

_OTHER_TASKS = {
    "captions_": "COCO captions (no masks)",
    "person_keypoints_": "COCO person keypoints",
    "image_info_": "COCO image info (images only, no annotations)",
    "stuff_": "COCO-Stuff semantic annotations",
    "panoptic_": "COCO panoptic: read it with format=coco_panoptic",
}
_YEAR = re.compile(r"^(.*?)(?:_)?((?:19|20)\d\d)$")


@dataclass(frozen=True)
class CocoSplitSource:
    """One split of a COCO folder: its name, annotation JSON and the folder its file names are relative to."""

    split: str
    annotations: Path
    images: Path


def _split_name(raw: str, notes: list[str]) -> str:
    m = _YEAR.match(raw)
    if m and m.group(1):
        notes.append(f"split {raw!r} named {m.group(1)!r} (the year dropped)")
        return m.group(1)
    return raw


def find_coco_splits(folder: str | os.PathLike) -> tuple[list[CocoSplitSource], list[str]]:
    """The splits of a COCO folder (see the module doc) and notes on what was left out or renamed.

    Raises:
        DatasetError: no layout recognised (the message lists what was looked for), a split found
            twice, or a split whose image folder cannot be found.
    """
    root = Path(folder)
    if not root.is_dir():
        raise DatasetError("COCO folder not found", path=root)
    notes: list[str] = []
    out: list[CocoSplitSource] = []
    ann_dir = root / "annotations"
    if (root / "export.yaml").is_file() and ann_dir.is_dir():
        for js in sorted(ann_dir.glob("*.json")):
            if js.stem.startswith("panoptic_"):
                notes.append(f"{js.name}: COCO panoptic: read it with format=coco_panoptic")
                continue
            out.append(CocoSplitSource(js.stem, js, root / "images" / js.stem))
        return _checked(out, notes, root)
    robo = sorted(p for p in root.glob("*/_annotations.coco.json"))
    if robo:
        for js in robo:
            out.append(CocoSplitSource(js.parent.name, js, js.parent))
        if (root / "_annotations.coco.json").is_file():
            notes.append("_annotations.coco.json at the top left out: the split folders hold the annotations")
        return _checked(out, notes, root)
    if (root / "_annotations.coco.json").is_file():
        return _checked([CocoSplitSource("train", root / "_annotations.coco.json", root)], notes, root)
    if ann_dir.is_dir():
        jsons = sorted(ann_dir.glob("*.json"))
        for js in jsons:
            stem = js.stem
            other = next((what for prefix, what in _OTHER_TASKS.items() if stem.startswith(prefix)), None)
            if other:
                notes.append(f"{js.name} left out: {other}")
                continue
            raw = stem[len("instances_"):] if stem.startswith("instances_") else stem
            split = _split_name(raw, notes)
            cands = [root / raw, root / "images" / raw, root / split, root / "images" / split, root / "images"]
            img = next((c for c in cands if c.is_dir()), None)
            if img is None:
                img = root
                notes.append(f"{js.name}: no image folder found (looked at {', '.join(c.name for c in cands)}); "
                             f"its file names are taken as relative to {root}")
            out.append(CocoSplitSource(split, js, img))
        if out:
            return _checked(out, notes, root)
    top = sorted(p for p in root.glob("*.json") if not p.name.startswith("."))
    if len(top) == 1:
        return _checked([CocoSplitSource("train", top[0], root)], notes, root)
    looked = ("annotations/instances_<split>.json (COCO), <split>/_annotations.coco.json (Roboflow), "
              "annotations/<split>.json + images/<split>/ (mmdet, segval export), one *.json at the top")
    extra = f"; {len(top)} JSON files at the top: pass the one to read" if len(top) > 1 else ""
    if notes:
        extra += "; " + "; ".join(notes)
    raise DatasetError(f"no COCO layout recognised (looked for {looked}){extra}", path=root)


def _checked(out: list[CocoSplitSource], notes: list[str], root: Path) -> tuple[list[CocoSplitSource], list[str]]:
    names = [s.split for s in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise DatasetError(f"split names {dup} come from several annotation files "
                           f"({', '.join(s.annotations.name for s in out if s.split in dup)}); keep one each", path=root)
    if not out:
        raise DatasetError("no instance-segmentation annotation file found; " + "; ".join(notes), path=root)
    return out, notes
