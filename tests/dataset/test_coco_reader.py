"""COCO as tools write it: dialects normalised end to end, bbox-only boxes as ignore (255), folders, defects."""

from __future__ import annotations

import numpy as np
import pytest

from segval.dataset import DatasetPackage
from segval.dataset.formats import write_imported
from segval.dataset.formats.coco import read_coco, read_coco_folder
from segval.errors import DatasetError

from .helpers import box, rle_of, write_json, write_rgb

H, W = 6, 8
CUBE = box(H, W, 1, 4, 1, 4)


def _coco(**over):
    doc = {
        "info": {"description": "shelf"}, "licenses": [{"id": 1, "name": "CC0-1.0", "url": ""}],
        "images": [{"id": "7", "file_name": "imgs/a.png", "width": 8, "height": 6, "date_captured": ""}],
        "categories": [{"id": 1, "name": "cube", "color": "#c81e1e", "isthing": "true", "supercategory": ""}],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 1, "segmentation": rle_of(CUBE), "area": 0, "bbox": [],
             "iscrowd": "false"},
            {"id": 2, "image_id": 7, "category_id": 1, "segmentation": [], "bbox": [2, 0, 6, 3], "area": 18,
             "iscrowd": 0},  # a box without a mask: ignore where no instance lies
        ],
    }
    doc.update(over)
    return doc


def test_dialects_end_to_end(tmp_path):
    write_rgb(tmp_path / "imgs" / "a.png", H, W)
    res = read_coco(write_json(tmp_path / "ann.json", _coco()), tmp_path)
    assert res.license == "CC0-1.0" and res.name == "shelf"
    assert res.taxonomy.names == ["background", "cube"] and res.taxonomy.category(1).color == (200, 30, 30)
    (im,) = res.splits["train"]
    assert im.file_name == "imgs/a.png" and (im.instances[0].mask.decode() == CUBE).all()
    text = " ".join(res.warnings)
    assert "become ignore boxes" in text and "'iscrowd' given as a string" in text and "'bbox' missing" in text
    write_imported(res, tmp_path / "pkg", name="shelf")
    split = DatasetPackage.open(tmp_path / "pkg").split("train")
    lm = split.read_label_map(split.images[0])
    expect = np.where(CUBE, 1, np.where(box(H, W, 0, 3, 2, 8), 255, 0))
    assert lm.tolist() == expect.tolist()


def test_folder_roboflow(tmp_path):
    for s in ("train", "valid"):
        write_rgb(tmp_path / s / "imgs" / "a.png", H, W)
        write_json(tmp_path / s / "_annotations.coco.json", _coco())
    res = read_coco_folder(tmp_path)
    assert list(res.splits) == ["train", "valid"] and res.num_instances == 2


def test_results_file_refused(tmp_path):
    js = write_json(tmp_path / "res.json", [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.9}])
    with pytest.raises(DatasetError, match="this is a COCO \\*results\\* file"):
        read_coco(js, tmp_path)


@pytest.mark.parametrize("defect, match", [
    ("rle", "image id 7, annotation id 1: corrupt RLE counts"),
    ("escape", "'../b.png' must be a relative path"),
    ("size", "image id 7: image file is 8x7 but the COCO entry says 8x6"),
    ("category", "category id 5 is not in the taxonomy"),
])
def test_one_defect_each(tmp_path, defect, match):
    write_rgb(tmp_path / "imgs" / "a.png", H + (defect == "size"), W)
    doc = _coco()
    if defect == "rle":
        doc["annotations"][0]["segmentation"] = {"size": [6, 8], "counts": "0000"}
    elif defect == "escape":
        doc["images"].append({"id": 8, "file_name": "../b.png", "width": 8, "height": 6})
    elif defect == "category":
        doc["annotations"][0]["category_id"] = 5
        doc["annotations"][0]["segmentation"] = [[1, 1, 4, 1, 4, 4]]
    with pytest.raises(DatasetError, match=match):
        write_imported(read_coco(write_json(tmp_path / "ann.json", doc), tmp_path), tmp_path / "pkg", name="x")
    assert not (tmp_path / "pkg").exists()
