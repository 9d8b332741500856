"""The demo's annotators: answer a relabel queue with the clean ground truth, as CVAT would export it.

Example:
    >>> export = answer_queue(queue, clean=DatasetPackage.open("data/demo"))          # doctest: +SKIP
    >>> write_json("corrections/annotations/instances_default.json", export)          # doctest: +SKIP

The answer is a CVAT "COCO 1.0" export, the file ``segval relabel import`` reads:
``images`` renumbered 1..n in queue order (CVAT renumbers; images are matched back by
``file_name``, relative to the split's image folder), ``annotations`` renumbered 1..m holding
every clean annotation of those images (compressed RLE, ``iscrowd``, ``bbox``, ``area``,
``attributes``), ``categories`` the taxonomy's classes except the background, renumbered 1..k in
taxonomy order as CVAT numbers its labels (match them by name).

Only queued images are answered: asking about an image that is not in the queue, or a queued
image that is not in the dataset (or whose file differs from the clean package's), is an error.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from segval.dataset.package import DatasetPackage
from segval.dataset.rle import encode_coco_rle
from segval.errors import DatasetError

__all__ = ["answer_queue", "load_queue", "queued_image_ids"]


def load_queue(path: str | os.PathLike) -> dict[str, Any]:
    """Read a queue.json and check the keys the oracle needs."""
    from segval.dataset.coco import load_json

    path = Path(path)
    if not path.is_file():
        raise DatasetError("relabel queue not found; `segval relabel queue` writes queue.json", path=path)
    queue = load_json(path)
    if not isinstance(queue, dict) or not isinstance(queue.get("items"), list) or not isinstance(queue.get("dataset"), dict):
        raise DatasetError("not a relabel queue (expected keys schema_version, dataset, split, items)", path=path)
    for k, item in enumerate(queue["items"]):
        if not isinstance(item, dict) or isinstance(item.get("image_id"), bool) or not isinstance(item.get("image_id"), int):
            raise DatasetError(f"queue item {k} has no integer image_id", path=path)
    return queue


def queued_image_ids(queue: Mapping[str, Any]) -> list[int]:
    """Distinct image ids of the queue, in rank order (an image may carry several items)."""
    items = sorted(queue["items"], key=lambda it: (it.get("rank", 0), it["image_id"]))
    seen: dict[int, None] = {}
    for it in items:
        seen.setdefault(int(it["image_id"]), None)
    return list(seen)


def answer_queue(
    queue: Mapping[str, Any],
    clean: DatasetPackage,
    *,
    dataset: DatasetPackage | None = None,
    image_ids: Iterable[int] | None = None,
) -> dict[str, Any]:
    """The clean ground truth of the queued images, as a CVAT "COCO 1.0" export.

    Args:
        queue: a queue.json document.
        clean: the clean package (the truth the oracle knows).
        dataset: the package the queue was built on (checked: each queued image id must be there with
            the same file name); default: ``queue["dataset"]["root"]`` when it exists.
        image_ids: answer only these images (each must be queued); default: every queued image.

    Raises:
        DatasetError: an image asked about that is not in the queue; a queued image not in the
            dataset or the clean package, or whose file name differs between them.
    """
    split_name = str(queue.get("split") or "train")
    queued = queued_image_ids(queue)
    if image_ids is None:
        asked = queued
    else:
        asked = [int(i) for i in image_ids]
        missing = [i for i in asked if i not in set(queued)]
        if missing:
            raise DatasetError(
                f"the oracle answers queued images only; image ids {missing} are not in the queue "
                f"({len(queued)} queued images: {queued[:10]}{' ...' if len(queued) > 10 else ''})")
    if dataset is None:
        root = (queue.get("dataset") or {}).get("root")
        if root and (Path(root) / "dataset.yaml").is_file():
            dataset = DatasetPackage.open(root)
    truth = clean.split(split_name)
    target = dataset.split(split_name) if dataset is not None else None
    tax = clean.taxonomy
    cats = [c for c in tax if c.id != tax.background_id]
    cvat_id = {c.id: k + 1 for k, c in enumerate(cats)}
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for image_id in asked:
        where = f"queued image id {image_id}"
        if target is not None:
            try:
                rec_t = target.image(image_id)
            except KeyError:
                raise DatasetError(f"{where} is not in split {split_name!r} of the queued dataset "
                                   f"{dataset.name} {dataset.version} at {dataset.root}") from None
        try:
            rec = truth.image(image_id)
        except KeyError:
            raise DatasetError(f"{where} is not in split {split_name!r} of the clean dataset at {clean.root}: "
                               "the oracle knows the truth of the clean package's images only") from None
        if target is not None and rec_t.file_name != rec.file_name:
            raise DatasetError(f"{where} is {rec_t.file_name!r} in the queued dataset but {rec.file_name!r} in the "
                               "clean one: they are not versions of the same package")
        images.append({"id": len(images) + 1, "width": rec.width, "height": rec.height, "file_name": rec.file_name,
                       "license": 0, "flickr_url": "", "coco_url": "", "date_captured": 0})
        for inst in truth.instances(rec):
            if inst.category_id not in cvat_id:
                continue
            seg, area, bbox = encode_coco_rle(inst.mask)
            annotations.append({
                "id": len(annotations) + 1, "image_id": images[-1]["id"], "category_id": cvat_id[inst.category_id],
                "segmentation": seg, "area": float(area), "bbox": bbox, "iscrowd": int(inst.iscrowd),
                "attributes": {"occluded": False},
            })
    return {
        "licenses": [{"name": "", "id": 0, "url": ""}],
        "info": {"contributor": "segval demo oracle (clean ground truth)", "date_created": "",
                 "description": f"answers to {len(asked)} queued images of {clean.name}", "url": "",
                 "version": "1.0", "year": ""},
        "categories": [{"id": cvat_id[c.id], "name": c.name, "supercategory": ""} for c in cats],
        "images": images,
        "annotations": annotations,
    }
