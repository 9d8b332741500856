"""COCO dialect helpers: coercions, colours, ids, bbox-only boxes, area / bbox, clipping, file kinds."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw
from pycocotools import mask as mask_utils

from segval.dataset.coco_dialects import (
    bbox_ignore_mask,
    classify_coco,
    clip_polygon,
    coerce_bool,
    coerce_int,
    is_bbox_only,
    normalize_coco,
    parse_color,
    require_instances,
)
from segval.errors import ConfigError, DatasetError


@pytest.mark.parametrize("raw, want", [("false", False), ("0", False), ("true", True), ("True", True), (1, True),
                                       (0, False), (False, False), ("1", True), (1.0, True)])
def test_coerce_bool(raw, want):
    assert coerce_bool(raw) is want


@pytest.mark.parametrize("raw", [2, "maybe", None, [1]])
def test_coerce_bool_refuses(raw):
    with pytest.raises(ValueError, match="expected a boolean"):
        coerce_bool(raw)


def test_coerce_int_and_colours():
    assert coerce_int(" 42 ") == 42 and coerce_int(2**63 - 1) == 2**63 - 1 and coerce_int(7.0) == 7
    with pytest.raises(ValueError):
        coerce_int(True)
    with pytest.raises(ValueError):
        coerce_int(1.5)
    assert parse_color("#00FF7f") == (0, 255, 127) and parse_color("#abc") == (170, 187, 204)
    assert parse_color("1,2,3") == (1, 2, 3) and parse_color(["4", 5, 6]) == (4, 5, 6) and parse_color("") is None
    with pytest.raises(ValueError, match="outside 0..255"):
        parse_color([0, 0, 256])
    with pytest.raises(ValueError):
        parse_color("red")


def test_clip_polygon_keeps_the_inside_shape():
    poly = [-4.0, 1.0, 6.0, 1.0, 6.0, 5.0, -4.0, 5.0]  # a box reaching left of the image
    clipped = clip_polygon(poly, 8, 6)
    a = mask_utils.decode(mask_utils.frPyObjects([poly], 6, 8)[0])
    b = mask_utils.decode(mask_utils.frPyObjects([clipped], 6, 8)[0])
    assert (a == b).all() and min(clipped[0::2]) == 0.0
    assert clip_polygon([-3, -3, -1, -3, -1, -1], 8, 6) == []
    # a triangle cut by the right edge: same pixels as rasterising the full triangle
    tri = [2.0, 1.0, 12.0, 3.0, 2.0, 5.0]
    a = mask_utils.decode(mask_utils.frPyObjects([tri], 6, 8)[0])
    b = mask_utils.decode(mask_utils.frPyObjects([clip_polygon(tri, 8, 6)], 6, 8)[0])
    assert (a == b).all()


def test_bbox_only_and_ignore_mask():
    assert is_bbox_only({"bbox": [1, 1, 2, 2]}) and is_bbox_only({"bbox": [1, 1, 2, 2], "segmentation": [[]]})
    assert not is_bbox_only({"bbox": [1, 1, 2, 2], "segmentation": {"size": [2, 2], "counts": "04"}})
    m = bbox_ignore_mask([[1, 2, 3, 2], [6.5, 0, 10, 1]], 6, 8).decode()
    expect = np.zeros((6, 8), bool)
    expect[2:4, 1:4] = True
    expect[0, 6:8] = True  # x in [6.5, 16.5): pixel centres 6.5 and 7.5 (then the image ends)
    assert (m == expect).all()


def _coco():
    poly = [2, 1, 6, 1, 6, 4, 2, 4]
    return {
        "info": {"year": "2024"}, "licenses": [], "extra_top": 1,
        "images": [{"id": "1", "file_name": "a.png", "width": 8, "height": 6, "flickr_url": ""}],
        "categories": [{"id": 9007199254740993, "name": "cube", "color": "#ff0000", "isthing": "true"},
                       {"id": 0, "name": "table", "isthing": "0", "supercategory": ""}],
        "annotations": [
            {"id": 5, "image_id": 1, "category_id": 9007199254740993, "segmentation": [poly], "area": -1,
             "bbox": [0, 0, 0, 0], "iscrowd": "false", "attributes": {"occluded": False}},
            {"id": 6, "image_id": 1, "category_id": 0, "segmentation": [[-3, 4, 9, 4, 9, 9, -3, 9]], "area": 16.0,
             "bbox": [0, 4, 8, 2], "iscrowd": 0},
            {"id": 7, "image_id": 1, "category_id": 0, "segmentation": [], "bbox": [0, 0, 2, 2], "iscrowd": 0},
            {"id": 8, "image_id": "1", "category_id": 0, "bbox": [4, 4, 1, 1], "area": 1},
        ],
    }


def test_normalize_coco():
    out = normalize_coco(_coco(), path="x.json")
    c = out.coco
    assert out.category_map == {9007199254740993: 1, 0: 2}
    assert [(k["id"], k["isthing"], k.get("color")) for k in c["categories"]] == [(1, 1, [255, 0, 0]), (2, 0, None)]
    assert c["images"][0]["id"] == 1 and c["images"][0]["flickr_url"] == "" and c["extra_top"] == 1
    a5, a6 = c["annotations"]
    assert a5["iscrowd"] == 0 and a5["category_id"] == 1 and a5["area"] == 12.0 and a5["bbox"] == [2.0, 1.0, 4.0, 3.0]
    assert min(a6["segmentation"][0][0::2]) == 0.0 and a6["area"] == 16.0  # clipped, area was right
    assert out.bbox_only == {1: [[0.0, 0.0, 2.0, 2.0], [4.0, 4.0, 1.0, 1.0]]}
    text = "\n".join(out.warnings)
    for want in ("renumbered", "as a string", "'#rrggbb'", "'iscrowd' given as a string", "box but no mask ('segmentation' "
                 "missing or empty) become ignore boxes (255 in semantic targets where no other annotation lies; "
                 "bbox_only=drop|error chooses otherwise): 2 (first ids: 7, 8)", "clipped to it: 1 (first ids: 6)", "'area' missing, negative",
                 "'bbox' missing, negative"):
        assert want in text, want
    assert len(out.warnings) == len(set(out.warnings))  # one line per kind


def test_normalize_coco_bbox_only_modes():
    drop = normalize_coco(_coco(), bbox_only="drop")
    assert drop.bbox_only == {} and [a["id"] for a in drop.coco["annotations"]] == [5, 6]
    assert any("dropped (bbox_only=drop" in w and w.endswith(": 2 (first ids: 7, 8)") for w in drop.warnings)
    with pytest.raises(DatasetError) as e:
        normalize_coco(_coco(), path="x.json", bbox_only="error")
    msg = str(e.value)
    assert msg.startswith("x.json: ") and "refused (bbox_only=error)" in msg and msg.endswith("2 (first ids: 7, 8)")
    with pytest.raises(ConfigError, match="bbox_only must be one of"):
        normalize_coco(_coco(), bbox_only="keep")


def test_normalize_coco_one_warning_per_kind():
    coco = _coco()
    coco["annotations"] = [dict(coco["annotations"][0], id=100 + k) for k in range(40)]
    out = normalize_coco(coco)
    line = next(w for w in out.warnings if "'iscrowd'" in w)
    assert line.endswith("40 (first ids: 100, 101, 102, 103, 104, ...)")


def test_normalize_coco_lists_every_problem():
    coco = _coco()
    coco["annotations"][0]["iscrowd"] = "sometimes"
    coco["images"][0]["width"] = "wide"
    with pytest.raises(DatasetError) as e:
        normalize_coco(coco, path="x.json")
    assert "2 problem(s)" in str(e.value) and "iscrowd" in str(e.value) and "'wide'" in str(e.value)


def test_polygon_rasterises_like_pil_inside():
    """Cross-check of the polygon path: pycocotools vs PIL on an axis-aligned box (both exact there)."""
    poly = [2, 1, 6, 1, 6, 4, 2, 4]
    a = mask_utils.decode(mask_utils.frPyObjects([poly], 6, 8)[0]).astype(bool)
    img = Image.new("1", (8, 6))
    ImageDraw.Draw(img).polygon([(2, 1), (5, 1), (5, 3), (2, 3)], fill=1, outline=1)
    assert (a == np.asarray(img, bool)).all()


@pytest.mark.parametrize("obj, kind", [
    ([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.9}], "results"),
    ({"images": [{"id": 1}], "annotations": [{"id": 1, "image_id": 1, "caption": "a cat"}]}, "captions"),
    ({"images": [{"id": 1}], "annotations": [{"id": 1, "image_id": 1, "keypoints": [1, 2, 2], "num_keypoints": 1,
                                              "bbox": [0, 0, 1, 1], "segmentation": []}], "categories": []},
     "keypoints"),
    ({"images": [{"id": 1}], "info": {}}, "image_info"),
    ({"image": {"image_id": 1, "width": 4, "height": 4, "file_name": "sa_1.jpg"},
      "annotations": [{"id": 1, "segmentation": {"size": [4, 4], "counts": "04"}, "bbox": [0, 0, 1, 1],
                       "predicted_iou": 0.9, "stability_score": 0.9, "point_coords": [[1, 1]]}]}, "sa1b"),
    ({"images": [], "annotations": [{"image_id": 1, "file_name": "a.png", "segments_info": []}], "categories": []},
     "panoptic"),
    ({"images": [{"id": 1}], "annotations": [{"id": 1, "image_id": 1, "bbox": [0, 0, 1, 1]}], "categories": []},
     "detection"),
    ({"version": "5.0", "shapes": [], "imagePath": "a.jpg"}, "labelme"),
    ([{"id": 1, "data": {"image": "a.png"}, "annotations": []}], "labelstudio"),
    ([{"image": "a.png", "tag": [{"brushlabels": ["x"], "rle": [1]}]}], "labelstudio"),
    ({"images": [], "annotations": [], "categories": []}, "instances"),
])
def test_classify(obj, kind):
    assert classify_coco(obj).kind == kind


def test_require_instances_says_what_it_is():
    with pytest.raises(DatasetError, match="SA-1B per-image file .* segval needs a class per mask"):
        require_instances({"image": {"id": 1}, "annotations": []}, path="sa_1.json")
    with pytest.raises(DatasetError, match="results.*not ground truth"):
        require_instances([{"image_id": 1, "score": 0.5}], path="res.json")


def test_bbox_from_runs_matches_the_pixels():
    """The recomputed bbox comes from the column-major runs (no decoding); cross-check with np.nonzero."""
    from segval.dataset.coco_dialects import _bbox_of
    from segval.dataset.rle import from_mask

    rng = np.random.default_rng(1)
    for _ in range(500):
        h, w = (int(v) for v in rng.integers(1, 12, 2))
        m = rng.random((h, w)) < rng.random() * 0.5
        ys, xs = np.nonzero(m)
        want = [0.0] * 4 if not len(xs) else [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1),
                                              float(ys.max() - ys.min() + 1)]
        assert _bbox_of(from_mask(m)) == want
