"""CVAT: a "COCO 1.0" package of the queued images, and reading CVAT's COCO 1.0 export back.

Export (``cvat/`` in the run directory), the layout CVAT's "Upload annotations -> COCO 1.0" takes:

* ``annotations/instances_default.json``: ``licenses``, ``info``, ``categories`` ({id, name,
  supercategory}), ``images`` ({id, file_name, width, height, ...}, file names relative to the
  split's image folder, as CVAT stores them when the task is created from that folder) and
  ``annotations`` ({id, image_id, category_id, segmentation: uncompressed RLE {size, counts: [..]}
  as CVAT itself writes masks, area, bbox, iscrowd, attributes {occluded: false}});
* ``cvat_coco.zip``: the same file zipped (what the upload dialog takes);
* ``images/<file_name>``: copies of the queued images (create the CVAT task from this folder).

Import (:func:`read_export`): CVAT renumbers image ids, so images are matched by ``file_name``
(the exact relative path, else a unique basename); categories by name; segmentation RLE
(compressed or not) or polygons.
"""

from __future__ import annotations

import os
import shutil
import zipfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from segval.dataset.rle import encode_coco_rle
from segval.errors import DatasetError
from segval.relabel.labelstudio import ReturnedInstance

__all__ = ["coco_for_queue", "read_export", "write_cvat_package"]


def _uncompressed(mask: np.ndarray) -> dict[str, Any]:
    from segval.dataset.rle import from_mask

    rl = from_mask(mask)
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": [int(c) for c in rl.counts]}


def coco_for_queue(queue: Mapping[str, Any], split: Any, taxonomy: Any) -> dict[str, Any]:
    """The COCO 1.0 document of the queued images with their current annotations."""
    ids = []
    for it in queue["items"]:
        if int(it["image_id"]) not in ids:
            ids.append(int(it["image_id"]))
    have = {r.id for r in split.images}
    missing = [i for i in ids if i not in have]
    if missing:
        raise DatasetError(f"queued image ids {missing[:20]} are not in split {split.name!r} of the dataset; "
                           "export a queue built for this dataset version and split", path=split.annotation_path)
    cats = [{"id": c.id, "name": c.name, "supercategory": ""} for c in taxonomy.categories
            if taxonomy.background_id is None or c.id != taxonomy.background_id]
    images, anns = [], []
    for image_id in ids:
        rec = split.image(image_id)
        images.append({"id": rec.id, "width": rec.width, "height": rec.height, "file_name": rec.file_name,
                       "license": 0, "flickr_url": "", "coco_url": "", "date_captured": 0})
        for inst in split.instances(rec):
            if taxonomy.background_id is not None and inst.category_id == taxonomy.background_id:
                continue
            _, area, bbox = encode_coco_rle(inst.mask)
            anns.append({"id": inst.annotation_id, "image_id": rec.id, "category_id": inst.category_id,
                         "segmentation": _uncompressed(inst.mask), "area": float(area),
                         "bbox": bbox, "iscrowd": int(inst.iscrowd),
                         "attributes": {"occluded": False}})
    return {"licenses": [{"name": "", "id": 0, "url": ""}],
            "info": {"contributor": "segval relabel export", "date_created": "", "description": "",
                     "url": "", "version": "", "year": ""},
            "categories": cats, "images": images, "annotations": anns}


def write_cvat_package(coco: Mapping[str, Any], split: Any, out_dir: str | os.PathLike) -> Path:
    """Write the CVAT layout of the module doc into ``out_dir`` (a temporary folder of the caller)."""
    import json

    out = Path(out_dir)
    ann = out / "annotations" / "instances_default.json"
    ann.parent.mkdir(parents=True, exist_ok=True)
    ann.write_text(json.dumps(coco), encoding="utf-8")
    with zipfile.ZipFile(out / "cvat_coco.zip", "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.write(ann, "annotations/instances_default.json")
    for im in coco["images"]:
        rec = split.image(int(im["id"]))
        dst = out / "images" / PurePosixPath(rec.file_name)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(split.image_path(rec), dst)
    return out


def read_export(path: str | os.PathLike, split: Any, taxonomy: Any) -> dict[int, list[ReturnedInstance]]:
    """Parse a CVAT COCO 1.0 export (the JSON, or the zip holding ``annotations/*.json``).

    Raises:
        DatasetError: invalid / truncated JSON, an image whose file name matches no image of the
            split, a category name not in the taxonomy, a segmentation of another size than the image.
    """
    from segval.dataset.coco import load_json

    p = Path(path)
    if not p.is_file():
        raise DatasetError("CVAT export not found; export the task as COCO 1.0", path=p)
    if zipfile.is_zipfile(p):
        import json

        from segval.dataset.archive import checked_members, read_member

        names = [n for n in checked_members(p) if n.startswith("annotations/") and n.endswith(".json")]  # no zip-slip
        if len(names) != 1:
            raise DatasetError(f"the zip holds {len(names)} annotations/*.json files; expected one", path=p)
        try:
            coco = json.loads(read_member(p, names[0]).decode("utf-8"))
        except (ValueError, zipfile.BadZipFile) as err:
            raise DatasetError(f"{names[0]} in the zip is not valid JSON ({err})", path=p) from None
    else:
        coco = load_json(p)
    if not isinstance(coco, Mapping) or not isinstance(coco.get("images"), list) \
            or not isinstance(coco.get("annotations"), list) or not isinstance(coco.get("categories"), list):
        raise DatasetError("a COCO 1.0 export needs 'images', 'annotations' and 'categories' lists", path=p)
    by_name = {c.name: c.id for c in taxonomy.categories}
    cat_of: dict[int, int] = {}
    for c in coco["categories"]:
        if c.get("name") not in by_name:
            raise DatasetError(f"category {c.get('name')!r} (id {c.get('id')}) is not a class of the taxonomy "
                               f"({sorted(by_name)})", path=p)
        cat_of[int(c["id"])] = by_name[c["name"]]
    by_path = {r.file_name: r for r in split.images}
    by_base: dict[str, list[Any]] = {}
    for r in split.images:
        by_base.setdefault(PurePosixPath(r.file_name).name, []).append(r)
    rec_of: dict[int, Any] = {}
    for im in coco["images"]:
        fn = str(im.get("file_name", "")).replace("\\", "/")
        rec = by_path.get(fn)
        if rec is None:
            cands = by_base.get(PurePosixPath(fn).name, [])
            if len(cands) != 1:
                raise DatasetError(f"image {fn!r} (CVAT id {im.get('id')}) matches "
                                   f"{'no' if not cands else 'several'} image(s) of split {split.name!r} by file name",
                                   path=p)
            rec = cands[0]
        if (int(im.get("width", rec.width)), int(im.get("height", rec.height))) != (rec.width, rec.height):
            raise DatasetError(f"image {fn!r} is {im.get('width')}x{im.get('height')} in the export but "
                               f"{rec.width}x{rec.height} in the dataset", path=p, image_id=rec.id)
        rec_of[int(im["id"])] = rec
    out: dict[int, list[ReturnedInstance]] = {rec.id: [] for rec in rec_of.values()}
    for a in coco["annotations"]:
        rec = rec_of.get(int(a.get("image_id", -1)))
        if rec is None:
            raise DatasetError(f"annotation {a.get('id')} points at image {a.get('image_id')}, not in the export", path=p)
        if int(a.get("category_id", -1)) not in cat_of:
            raise DatasetError(f"annotation {a.get('id')}: category id {a.get('category_id')} is not in the export's "
                               "categories", path=p)
        seg = a.get("segmentation")
        h, w = rec.height, rec.width
        try:
            if isinstance(seg, Mapping):
                size = [int(v) for v in seg.get("size", [])]
                if size != [h, w]:
                    raise DatasetError(f"annotation {a.get('id')}: mask size {size} != image size {[h, w]}", path=p,
                                       image_id=rec.id)
                rle = mask_utils.frPyObjects(dict(seg), h, w) if isinstance(seg.get("counts"), list) else \
                    {"size": size, "counts": seg["counts"].encode() if isinstance(seg["counts"], str) else seg["counts"]}
                mask = mask_utils.decode(rle).astype(bool)
            elif isinstance(seg, list) and seg:
                rles = mask_utils.frPyObjects([list(map(float, s)) for s in seg], h, w)
                mask = mask_utils.decode(mask_utils.merge(rles)).astype(bool)
            else:
                raise DatasetError(f"annotation {a.get('id')} has no segmentation", path=p, image_id=rec.id)
        except (TypeError, ValueError, KeyError) as err:
            raise DatasetError(f"annotation {a.get('id')}: unreadable segmentation ({err})", path=p,
                               image_id=rec.id) from None
        if mask.any():
            out[rec.id].append(ReturnedInstance(cat_of[int(a["category_id"])], mask, f"cvat:{a.get('id')}"))
    return out
