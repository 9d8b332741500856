"""CVAT: a "COCO 1.0" package of the queued images, and reading CVAT's COCO 1.0 export back.

Export (``cvat/`` in the run directory), the layout CVAT's "Upload annotations -> COCO 1.0" takes:

* ``annotations/instances_default.json``: ``licenses``, ``info``, ``categories`` ({id, name,
  supercategory}), ``images`` ({id, file_name, width, height, ...}, file names relative to the
  split's image folder, as CVAT stores them when the task is created from that folder) and
  ``annotations`` ({id, image_id, category_id, segmentation: uncompressed RLE {size, counts: [..]}
  as CVAT itself writes masks, area, bbox, iscrowd, attributes {occluded: false}});
* ``cvat_coco.zip``: the same file zipped (what the upload dialog takes);
* ``images/<file_name>``: copies of the queued images (create the CVAT task from this folder).

Import (:func:`read_export`): a "COCO 1.0" export (segmentation RLE, compressed or not, or polygons) or a
"CVAT for images 1.1" XML export (read with the dataset reader's shape decoding). CVAT renumbers image ids,
so images are matched by file name (the exact relative path, else a unique basename); classes by name.
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


def read_export(path: str | os.PathLike, split: Any, taxonomy: Any, *,
                findings: Any | None = None) -> dict[int, list[ReturnedInstance]]:
    """Parse a CVAT export of the queued images: "COCO 1.0" (the JSON, or the zip holding
    ``annotations/*.json``) or "CVAT for images 1.1" (``annotations.xml``, or the zip holding it).

    Images are matched by file name (CVAT renumbers ids; :class:`~segval.relabel.labelstudio.ImageMatcher`),
    classes by name. The XML is read with the dataset reader (:func:`segval.dataset.formats.cvat.parse_cvat`,
    :func:`~segval.dataset.formats.cvat.frame_instances`): polygons, masks at their offset, ellipses, groups and
    z_order; boxes, points, polylines, skeletons and tags are skipped into ``findings``.

    Raises:
        DatasetError: invalid / truncated JSON or XML, an image whose file name matches no image of the
            split, a category / label name not in the taxonomy, a segmentation of another size than the image.
    """
    p = Path(path)
    if not p.is_file():
        raise DatasetError("CVAT export not found; export the task as 'CVAT for images 1.1' or 'COCO 1.0'", path=p)
    xml = _xml_bytes(p)
    if xml is not None:
        return _read_xml(p, xml, split, taxonomy, findings)
    return _read_coco(p, split, taxonomy)


def _xml_bytes(p: Path) -> bytes | None:
    """The XML of a "CVAT for images" export (the file, or ``annotations.xml`` in its zip), else None."""
    if zipfile.is_zipfile(p):
        with zipfile.ZipFile(p) as z:
            return z.read("annotations.xml") if "annotations.xml" in z.namelist() else None
    with open(p, "rb") as fh:
        head = fh.read(256).lstrip(b"\xef\xbb\xbf \t\r\n")
    return p.read_bytes() if head.startswith(b"<") else None


def _read_xml(p: Path, data: bytes, split: Any, taxonomy: Any, findings: Any | None) -> dict[int, list[ReturnedInstance]]:
    from segval.dataset.formats.cvat import frame_instances, parse_cvat
    from segval.dataset.formats.result import Findings
    from segval.relabel.labelstudio import ImageMatcher

    f = findings if findings is not None else Findings()
    doc = parse_cvat(p, split=split.name, findings=f, data=data)
    if doc.tracks:
        raise DatasetError("a 'CVAT for video' export (tracks): export the task as 'CVAT for images 1.1' so each "
                           "image keeps its file name", path=p)
    by_name = {c.name: c.id for c in taxonomy.categories}
    match = ImageMatcher(split)
    out: dict[int, list[ReturnedInstance]] = {}
    for (_, fid), info in sorted(doc.frames.items(), key=lambda kv: kv[0][1]):
        where = f"image {info['name']!r} (CVAT id {fid})"
        try:
            rec = match.by_names([info["name"] or ""], what=where)
        except DatasetError as err:
            f.problem(str(err), path=p)
            continue
        if (info["width"], info["height"]) != (rec.width, rec.height):
            f.problem(f"{where} is {info['width']}x{info['height']} in the export but {rec.width}x{rec.height} in the "
                      "dataset", path=p, image_id=rec.id)
            continue
        unknown = sorted({sh[1] for sh in info["shapes"] if sh[1] not in by_name})
        if unknown:
            f.problem(f"{where}: labels {unknown} are not classes of the taxonomy ({sorted(by_name)}); use the "
                      "exported task's labels", path=p, image_id=rec.id)
            continue
        if rec.id in out:
            f.problem(f"{where}: a second image with the file name {rec.file_name!r}", path=p, image_id=rec.id)
            continue
        insts = frame_instances(info["shapes"], rec.height, rec.width, by_name, f, p)
        out[rec.id] = [ReturnedInstance(i.category_id, i.mask.decode(), f"cvat:{i.origin}") for i in insts]
    f.raise_if_any(p, "CVAT XML export")
    return out


def _read_coco(p: Path, split: Any, taxonomy: Any) -> dict[int, list[ReturnedInstance]]:
    from segval.dataset.coco import load_json
    from segval.relabel.labelstudio import ImageMatcher

    if zipfile.is_zipfile(p):
        import json

        from segval.dataset.archive import checked_members, read_member

        names = [n for n in checked_members(p) if n.startswith("annotations/") and n.endswith(".json")]  # no zip-slip
        if len(names) != 1:
            raise DatasetError(f"the zip holds {len(names)} annotations/*.json files and no annotations.xml; "
                               "expected a 'COCO 1.0' or 'CVAT for images 1.1' export", path=p)
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
    match = ImageMatcher(split)
    rec_of: dict[int, Any] = {}
    for im in coco["images"]:
        fn = str(im.get("file_name", ""))
        try:
            rec = match.by_names([fn], what=f"image {fn!r} (CVAT id {im.get('id')})")
        except DatasetError as err:
            raise DatasetError(str(err), path=p) from None
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
        mask = _coco_mask(a, rec, p)
        if mask.any():
            out[rec.id].append(ReturnedInstance(cat_of[int(a["category_id"])], mask, f"cvat:{a.get('id')}"))
    return out


def _coco_mask(a: Mapping[str, Any], rec: Any, p: Path) -> np.ndarray:
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
            return mask_utils.decode(rle).astype(bool)
        if isinstance(seg, list) and seg:
            rles = mask_utils.frPyObjects([list(map(float, s)) for s in seg], h, w)
            return mask_utils.decode(mask_utils.merge(rles)).astype(bool)
        raise DatasetError(f"annotation {a.get('id')} has no segmentation", path=p, image_id=rec.id)
    except (TypeError, ValueError, KeyError) as err:
        raise DatasetError(f"annotation {a.get('id')}: unreadable segmentation ({err})", path=p,
                           image_id=rec.id) from None
