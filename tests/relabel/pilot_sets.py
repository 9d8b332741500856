"""Returned annotation sets of a pilot, built from a package's own labels: a CVAT-like COCO 1.0 file and a Label
Studio JSON export (tests/relabel/test_pilot.py, tests/commands/test_qa_pilot.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

from segval.dataset.brush_rle import encode_mask
from segval.dataset.package import DatasetPackage


def masks_of(pkg: DatasetPackage, image_id: int, *, half_gripper: bool = False) -> list[tuple[str, np.ndarray]]:
    """(class name, mask) of the image's annotations; ``half_gripper``: the gripper's right half only."""
    sd = pkg.split("train")
    names = {c.id: c.name for c in pkg.taxonomy}
    out = []
    for inst in sd.instances(sd.image(image_id)):
        m = inst.mask.copy()
        if half_gripper and names[inst.category_id] == "gripper":
            xs = np.nonzero(m.any(axis=0))[0]
            m[:, xs[0]: xs[0] + len(xs) // 2] = False  # 6x6 -> 6x3: IoU with the full one 18 / 36
        out.append((names[inst.category_id], m))
    return out


def coco_set(pkg: DatasetPackage, ids: list[int], path: Path, **kw) -> Path:
    """A CVAT-like COCO 1.0 export: its own image and category ids, matched back by file name and class name."""
    sd = pkg.split("train")
    cats = [{"id": 10 + c.id, "name": c.name} for c in pkg.taxonomy if c.id != 0]
    cid = {c["name"]: c["id"] for c in cats}
    images, anns = [], []
    for k, image_id in enumerate(ids):
        rec = sd.image(image_id)
        images.append({"id": 100 + k, "file_name": rec.file_name, "width": rec.width, "height": rec.height})
        for name, m in masks_of(pkg, image_id, **kw):
            rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
            anns.append({"id": len(anns) + 1, "image_id": 100 + k, "category_id": cid[name], "iscrowd": 0,
                         "segmentation": {"size": list(m.shape), "counts": rle["counts"].decode()},
                         "area": int(m.sum()), "bbox": [0, 0, 1, 1]})
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return path


def ls_set(pkg: DatasetPackage, ids: list[int], path: Path) -> Path:
    """A Label Studio JSON export of the same labels (brush RLE), tasks carrying data.image_id."""
    sd = pkg.split("train")
    tasks = []
    for image_id in ids:
        rec = sd.image(image_id)
        result = [{"id": f"r{k}", "type": "brushlabels", "from_name": "label", "to_name": "image",
                   "original_width": rec.width, "original_height": rec.height,
                   "value": {"format": "rle", "rle": encode_mask(m), "brushlabels": [name]}}
                  for k, (name, m) in enumerate(masks_of(pkg, image_id))]
        tasks.append({"data": {"image_id": image_id}, "annotations": [{"result": result, "was_cancelled": False}]})
    path.write_text(json.dumps(tasks))
    return path
