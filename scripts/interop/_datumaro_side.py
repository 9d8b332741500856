"""The Datumaro half of ``datumaro_check.py``; runs inside the throwaway Datumaro venv (datumaro + numpy only).

    python _datumaro_side.py read FORMAT PATH OUT.npz
        Dataset.import_from(PATH, FORMAT): per item its id, subset, image path (and whether the file exists),
        size, and every mask / polygon annotation as a decoded bool[H, W] mask with its label name.
    python _datumaro_side.py edit-export SRC OUT_DIR EDIT.json
        What a CVAT user does: the task created from SRC (imported as COCO 1.0, ``coco_instances``; the box
        Datumaro adds to each mask group is dropped, as CVAT holds a mask as one shape), one annotation corrected (class changed, a stroke erased: rows [y0, y1) of one mask set to 0), then exported
        by Datumaro as "COCO 1.0" (``coco_instances``, masks as RLE and, default mode, as polygons) and
        "CVAT for images 1.1" (``cvat``), with images. Writes what was changed to OUT_DIR/edit_done.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from datumaro.components.annotation import AnnotationType, LabelCategories, Mask
from datumaro.components.dataset import Dataset
from pycocotools import mask as mask_utils


def _mask_of(ann, h: int, w: int) -> np.ndarray | None:
    if ann.type == AnnotationType.mask:
        return np.asarray(ann.image).astype(bool)
    if ann.type == AnnotationType.polygon:
        rle = mask_utils.frPyObjects([list(map(float, ann.points))], h, w)
        return mask_utils.decode(mask_utils.merge(rle)).astype(bool)
    return None


def read(fmt: str, path: str, out: str) -> None:
    ds = Dataset.import_from(path, fmt)
    labels = ds.categories()[AnnotationType.label]
    index, arrays = [], {}
    for item in ds:
        media_path = getattr(item.media, "path", None)
        h, w = item.media.size if item.media is not None and item.media.size else (None, None)
        anns = []
        for a in item.annotations:
            if h is None:
                break
            m = _mask_of(a, h, w)
            if m is None:
                continue
            key = f"m{len(arrays)}"
            arrays[key] = m
            anns.append({"key": key, "type": a.type.name, "label": labels[a.label].name if a.label is not None else None,
                         "id": a.id, "group": a.group, "attributes": {k: str(v) for k, v in a.attributes.items()}})
        index.append({"id": item.id, "subset": item.subset, "path": media_path,
                      "exists": bool(media_path and Path(media_path).is_file()), "height": h, "width": w,
                      "annotations": anns})
    np.savez_compressed(out, index=np.array(json.dumps({"format": fmt, "labels": [c.name for c in labels],
                                                         "items": index})), **arrays)
    print(f"datumaro read {fmt}: {len(index)} items, {len(arrays)} masks")


def edit_export(src: str, out_dir: str, edit_json: str) -> None:
    edit = json.loads(Path(edit_json).read_text())
    ds = Dataset.import_from(src, "coco_instances")
    labels: LabelCategories = ds.categories()[AnnotationType.label]
    new_label = labels.find(edit["new_label"])[0]
    done = {"item_id": edit["item_id"], "boxes_dropped": 0}
    for item in list(ds):  # CVAT holds a mask as one shape: the COCO importer's box of each mask group goes
        grouped = {a.group for a in item.annotations if a.type == AnnotationType.mask and a.group}
        keep = [a for a in item.annotations if not (a.type == AnnotationType.bbox and a.group in grouped)]
        done["boxes_dropped"] += len(item.annotations) - len(keep)
        ds.put(item.wrap(annotations=keep))
    item = next(it for it in ds if it.id == edit["item_id"])
    masks = [a for a in item.annotations if a.type == AnnotationType.mask]
    anns = []
    for a in item.annotations:
        if a is masks[edit["relabel"]]:
            a = Mask(image=np.asarray(a.image).astype(np.uint8), label=new_label, id=a.id, group=a.group,
                     attributes=dict(a.attributes))
            done["relabelled_id"] = a.id
        elif a is masks[edit["erase"]]:
            img = np.asarray(a.image).astype(np.uint8).copy()
            y0, y1 = edit["erase_rows"]
            done["erased_pixels"] = int(img[y0:y1].sum())
            img[y0:y1] = 0
            a = Mask(image=img, label=a.label, id=a.id, group=a.group, attributes=dict(a.attributes))
            done["erased_id"] = a.id
        anns.append(a)
    ds.put(item.wrap(annotations=anns))
    out = Path(out_dir)
    ds.export(str(out / "coco_mask"), "coco_instances", save_media=True, segmentation_mode="mask")
    ds.export(str(out / "coco_guess"), "coco_instances", save_media=True)
    ds.export(str(out / "cvat"), "cvat", save_media=True)
    (out / "edit_done.json").write_text(json.dumps(done))
    print(f"datumaro exported coco_instances (mask, guess) and cvat to {out}: {done}")


if __name__ == "__main__":
    cmd, *args = sys.argv[1:]
    {"read": read, "edit-export": edit_export}[cmd](*args)
