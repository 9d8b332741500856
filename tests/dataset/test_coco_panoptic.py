"""COCO panoptic reader: exact masks, crowd / void as ignore, one-defect errors, nothing written."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from segval.dataset import DatasetPackage
from segval.dataset.formats import write_imported
from segval.dataset.formats.coco_panoptic import is_coco_panoptic, read_coco_panoptic
from segval.errors import DatasetError

from .helpers import box, write_json, write_rgb

H, W = 6, 8
# the panopticapi category form (panoptic_coco_categories.json): supercategory, isthing, id, name, color
CATS = [
    {"supercategory": "object", "isthing": 1, "id": 1, "name": "cube", "color": [220, 20, 60]},
    {"supercategory": "furniture", "isthing": 0, "id": 3, "name": "table", "color": [119, 11, 32]},
]


def _png(ids: np.ndarray):
    return np.stack([ids % 256, (ids // 256) % 256, ids // 65536], axis=-1).astype(np.uint8)


def _layout(tmp_path, *, ids=None, infos=None, png_size=None, extra_image=None, file_name="a.jpg"):
    """panopticapi layout: annotations/panoptic_val2017.json + annotations/panoptic_val2017/*.png + val2017/."""
    root = tmp_path / "coco"
    if ids is None:
        ids = np.zeros((H, W), np.int64)  # void
        ids[0:2, :] = 7  # table (stuff)
        ids[2:5, 1:4] = 300  # a cube (needs G: id > 255)
        ids[2:5, 5:7] = 5  # a crowd cube
    if infos is None:
        infos = [{"id": 7, "category_id": 3, "iscrowd": 0, "area": 16, "bbox": [0, 0, 8, 2]},
                 {"id": 300, "category_id": 1, "iscrowd": 0, "area": 9, "bbox": [1, 2, 3, 3]},
                 {"id": 5, "category_id": 1, "iscrowd": 1, "area": 6, "bbox": [5, 2, 2, 3]}]
    write_rgb(root / "val2017" / file_name, H, W)
    png = _png(ids)
    if png_size is not None:
        png = np.zeros((*png_size, 3), np.uint8)
    (root / "annotations" / "panoptic_val2017").mkdir(parents=True, exist_ok=True)
    Image.fromarray(png).save(root / "annotations" / "panoptic_val2017" / "a.png")
    images = [{"id": 139, "file_name": file_name, "width": W, "height": H}]
    if extra_image:
        images.append(extra_image)
    doc = {"info": {}, "licenses": [{"id": 1, "name": "CC-BY-4.0", "url": ""}], "images": images,
           "annotations": [{"image_id": 139, "file_name": "a.png", "segments_info": infos}], "categories": CATS}
    return write_json(root / "annotations" / "panoptic_val2017.json", doc)


def test_reads_things_stuff_crowd_void(tmp_path):
    js = _layout(tmp_path)
    res = read_coco_panoptic(js, split="val")
    assert res.taxonomy.ids == [1, 3] and res.taxonomy.background_id is None
    (im,) = res.splits["val"]
    assert (im.width, im.height, im.file_name) == (W, H, "a.jpg")
    got = sorted((i.category_id, i.mask.decode().tolist()) for i in im.instances)
    assert got == sorted([(3, box(H, W, 0, 2, 0, 8).tolist()), (1, box(H, W, 2, 5, 1, 4).tolist())])
    ignore = im.ignore.decode()
    expect_ignore = np.ones((H, W), bool)
    expect_ignore[0:2, :] = False
    expect_ignore[2:5, 1:4] = False
    assert (ignore == expect_ignore).all()  # void + the crowd segment
    assert any("crowd" in w for w in res.warnings)
    assert res.license == "CC-BY-4.0"


def test_written_package_has_255_where_crowd_and_void(tmp_path):
    res = read_coco_panoptic(_layout(tmp_path), split="val")
    summary = write_imported(res, tmp_path / "pkg", name="pan", version="1.0.0")
    assert summary["license"] == "CC-BY-4.0"
    split = DatasetPackage.open(tmp_path / "pkg").split("val")
    rec = split.images[0]
    lm = split.read_label_map(rec)
    expect = np.full((H, W), 255, np.uint8)
    expect[0:2, :] = 3
    expect[2:5, 1:4] = 1
    assert lm.tolist() == expect.tolist()
    ids = np.asarray(split.taxonomy.ids)
    assert ids[split.semantic_target(rec)[expect != 255]].tolist() == expect[expect != 255].tolist()
    assert (split.semantic_target(rec)[expect == 255] == 255).all()


def test_background_category_kept_with_explicit_annotation(tmp_path):
    """With a background class, ignore pixels still end up 255 (background_id null + explicit background)."""
    res = read_coco_panoptic(_layout(tmp_path), split="val", background="auto")  # synthetic background id 0
    assert res.taxonomy.background_id == 0
    summary = write_imported(res, tmp_path / "pkg", name="pan")
    assert summary["background_annotation"] and summary["license"] == "CC-BY-4.0"
    pkg = DatasetPackage.open(tmp_path / "pkg")
    assert pkg.taxonomy.background_id is None
    lm = pkg.split("val").read_label_map(pkg.split("val").images[0])
    assert (lm[5, :] == 255).all() and (lm[2:5, 5:7] == 255).all()


def test_recognises_panoptic_json(tmp_path):
    data = json.loads(_layout(tmp_path).read_text())
    assert is_coco_panoptic(data)
    assert not is_coco_panoptic({"images": [], "annotations": [{"id": 1, "segmentation": []}]})


# ---------------------------------------------------------------- one defect each: a clear error, nothing written
def _fails(tmp_path, js, match, **kw):
    with pytest.raises(DatasetError, match=match) as e:
        res = read_coco_panoptic(js, split="val", **kw)
        write_imported(res, tmp_path / "pkg", name="x")
    assert not (tmp_path / "pkg").exists()
    return str(e.value)


def test_png_of_other_size(tmp_path):
    msg = _fails(tmp_path, _layout(tmp_path, png_size=(5, 8)), "panoptic PNG is 8x5")
    assert "a.png" in msg


def test_png_id_not_in_segments_info(tmp_path):
    infos = [{"id": 7, "category_id": 3, "iscrowd": 0}, {"id": 5, "category_id": 1, "iscrowd": 1}]
    msg = _fails(tmp_path, _layout(tmp_path, infos=infos), r"segment ids \[300\] are in the PNG")
    assert "image id 139" in msg


def test_segments_info_id_absent_from_png(tmp_path):
    infos = [{"id": 7, "category_id": 3}, {"id": 300, "category_id": 1}, {"id": 5, "category_id": 1, "iscrowd": 1},
             {"id": 9, "category_id": 1}]
    _fails(tmp_path, _layout(tmp_path, infos=infos), r"segments \[9\] of segments_info have no pixel")


def test_unknown_category(tmp_path):
    infos = [{"id": 7, "category_id": 99}, {"id": 300, "category_id": 1}, {"id": 5, "category_id": 1}]
    _fails(tmp_path, _layout(tmp_path, infos=infos), "category_id 99, which is not in 'categories'")


def test_missing_image_file(tmp_path):
    js = _layout(tmp_path)
    (tmp_path / "coco" / "val2017" / "a.jpg").unlink()
    _fails(tmp_path, js, "image file 'a.jpg' not found")


def test_file_name_escaping(tmp_path):
    _fails(tmp_path, _layout(tmp_path, file_name="../escape.jpg"), "without '..'")


def test_truncated_json(tmp_path):
    js = _layout(tmp_path)
    js.write_text(js.read_text()[:-40])
    _fails(tmp_path, js, "invalid JSON at line 1")


def test_instances_file_is_told_apart(tmp_path):
    js = write_json(tmp_path / "inst.json", {"images": [], "annotations": [], "categories": []})
    _fails(tmp_path, js, "read it with format=coco")


def test_over_pixel_limit(tmp_path):
    _fails(tmp_path, _layout(tmp_path), "over the limit of 40", max_pixels=40)
