"""Label Studio reader: full JSON and JSON-MIN, brush RLE and percent polygons, image matching, defects."""

from __future__ import annotations


import pytest
from pycocotools import mask as mask_utils

from segval.dataset import DatasetPackage
from segval.dataset.brush_rle import decode_mask, encode_mask
from segval.dataset.formats import write_imported
from segval.dataset.formats.labelstudio import image_candidates, read_labelstudio
from segval.errors import DatasetError

from .helpers import box, write_json, write_rgb

H, W = 10, 20
CUBE = box(H, W, 2, 6, 3, 9)
# polygon in percent of a 20 x 10 image: x 50..80 % -> 10..16 px, y 20..70 % -> 2..7 px
POLY = [[50.0, 20.0], [80.0, 20.0], [80.0, 70.0], [50.0, 70.0]]
POLY_MASK = box(H, W, 2, 7, 10, 16)


def _brush_result(rid, label, mask, *, with_size=True, typ="brushlabels"):
    r = {"id": rid, "type": typ, "from_name": "tag", "to_name": "image", "origin": "manual",
         "value": {"format": "rle", "rle": encode_mask(mask), typ: [label]} if typ == "brushlabels" else
         {"format": "rle", "rle": encode_mask(mask)}, "image_rotation": 0}
    if with_size:
        r.update({"original_width": W, "original_height": H})
    return r


def _poly_result(rid, label, points=POLY):
    return {"id": rid, "type": "polygonlabels", "from_name": "poly", "to_name": "image", "original_width": W,
            "original_height": H, "image_rotation": 0,
            "value": {"points": points, "polygonlabels": [label], "closed": True}}


def _task(tid, image, results, **kw):
    """A task as Label Studio's JSON export writes it (cf. label-studio-sdk tests/custom/converter data)."""
    t = {"id": tid, "annotations": [{"id": 100 + tid, "completed_by": 1, "result": results, "was_cancelled": False,
                                     "ground_truth": False, "created_at": "2024-01-30T02:40:43.893565Z",
                                     "lead_time": 8.6, "task": tid, "project": 29}],
         "file_upload": image.split("/")[-1], "drafts": [], "predictions": [], "data": {"image": image}, "meta": {},
         "project": 29}
    t.update(kw)
    return t


def test_image_candidates():
    assert image_candidates("/data/upload/29/0a1b2c3d-img 1.png") == ["0a1b2c3d-img 1.png", "img 1.png"]
    assert image_candidates("/data/local-files/?d=shelf/a.png") == ["shelf/a.png", "a.png"]
    assert image_candidates("s3://bucket/data/img.jpg?X-Amz=1") == ["img.jpg"]
    assert image_candidates("https://host/x/deadbeef-y.png") == ["deadbeef-y.png", "y.png"]
    assert image_candidates("frames/b.png") == ["frames/b.png", "b.png"]


def test_full_json(tmp_path):
    write_rgb(tmp_path / "imgs" / "a.png", H, W)
    write_rgb(tmp_path / "imgs" / "shelf" / "b.png", H, W, seed=1)
    labels_repeat = {"id": "r1", "type": "labels", "from_name": "lab", "to_name": "image", "original_width": W,
                     "original_height": H, "value": {"format": "rle", "rle": encode_mask(CUBE), "labels": ["cube"]}}
    tasks = [
        _task(1, "/data/upload/29/0a1b2c3d-a.png", [
            _brush_result("r1", "cube", CUBE), labels_repeat,  # same id: one region
            _poly_result("p1", "cable"),
            {"id": "k1", "type": "keypointlabels", "original_width": W, "original_height": H,
             "value": {"x": 5, "y": 5, "width": 1, "keypointlabels": ["cube"]}},
            {"id": "b1", "type": "rectanglelabels", "original_width": W, "original_height": H,
             "value": {"x": 1, "y": 1, "width": 5, "height": 5, "rectanglelabels": ["cube"]}},
            {"type": "relation", "from_id": "r1", "to_id": "p1", "direction": "right"}]),
        _task(2, "/data/local-files/?d=shelf/b.png", [_poly_result("p2", "cube")]),
        _task(3, "/data/upload/29/ffffffff-c.png", [], annotations=[], predictions=[{"result": []}]),
    ]
    res = read_labelstudio(write_json(tmp_path / "export.json", tasks), tmp_path / "imgs")
    assert res.taxonomy.names == ["background", "cube", "cable"] and res.taxonomy.background_id == 0
    a, b = res.splits["train"]
    assert (a.file_name, b.file_name) == ("a.png", "shelf/b.png")
    assert [(i.category_id, i.origin) for i in a.instances] == [(1, "task 1 result 'r1'"), (2, "task 1 result 'p1'")]
    assert (a.instances[0].mask.decode() == CUBE).all()
    assert (a.instances[1].mask.decode() == POLY_MASK).all()
    # cross-check: the percent polygon in pixels, rasterised by pycocotools, is the same mask
    px = [v for x, y in POLY for v in (x * W / 100, y * H / 100)]
    assert (mask_utils.decode(mask_utils.frPyObjects([px], H, W)[0]).astype(bool) == POLY_MASK).all()
    skipped = {k: v.count for k, v in res.skipped.items()}
    assert skipped == {"keypointlabels": 1, "rectanglelabels": 1, "relation": 1,
                       "tasks with predictions only (not read)": 1}
    write_imported(res, tmp_path / "pkg", name="ls")
    split = DatasetPackage.open(tmp_path / "pkg").split("train")
    lm = split.read_label_map(split.images[0])
    assert (lm[CUBE] == 1).all() and (lm[POLY_MASK] == 2).all() and (lm[~(CUBE | POLY_MASK)] == 0).all()


def test_known_brush_vector_decodes():
    """mask [[0, 1]] as the reference encoder writes it (tests/unit/test_relabel_brush_rle.py)."""
    bits = ("0" * 28 + "1000" + "00111" + "0010" + "0011" + "0111" + "1111"
            + "1" + "00" + "011" + "00000000" + "1" + "00" + "011" + "11111111" + "0000000")
    rle = [int(bits[i:i + 8], 2) for i in range(0, len(bits), 8)]
    assert decode_mask(rle, 1, 2).tolist() == [[False, True]]


def test_json_min_and_size_from_image(tmp_path):
    write_rgb(tmp_path / "a.png", H, W)
    brush_value = {"format": "rle", "rle": encode_mask(CUBE), "brushlabels": ["cube"]}  # no original_* keys
    poly_value = {"points": POLY, "polygonlabels": ["cable"], "closed": True, "original_width": W,
                  "original_height": H}
    items = [{"image": "/data/upload/29/0a1b2c3d-a.png", "id": 87, "tag": [brush_value], "poly": [poly_value],
              "annotator": 1, "annotation_id": 22, "created_at": "2024-01-30T02:40:43Z", "lead_time": 8.6}]
    res = read_labelstudio(write_json(tmp_path / "min.json", items))
    (im,) = res.splits["train"]
    assert [i.category_id for i in im.instances] == [1, 2]
    assert (im.instances[0].mask.decode() == CUBE).all() and (im.instances[1].mask.decode() == POLY_MASK).all()


def test_label_config_gives_names_and_colours(tmp_path):
    write_rgb(tmp_path / "a.png", H, W)
    (tmp_path / "config.xml").write_text('<View><Image name="image" value="$image"/><BrushLabels name="tag" '
                                         'toName="image"><Label value="cable" background="#00ff00"/><Label '
                                         'value="cube" background="red"/></BrushLabels></View>')
    js = write_json(tmp_path / "e.json", [_task(1, "a.png", [_brush_result("r", "cube", CUBE)])])
    res = read_labelstudio(js, labels=tmp_path / "config.xml")
    assert res.taxonomy.names == ["background", "cable", "cube"] and res.taxonomy.category(1).color == (0, 255, 0)
    with pytest.raises(DatasetError, match="label 'cube' is not in the given labels"):
        read_labelstudio(js, labels=["cable"])


# ---------------------------------------------------------------- one defect each
def _fails(tmp_path, tasks, match, **kw):
    js = write_json(tmp_path / "e.json", tasks)
    with pytest.raises(DatasetError, match=match) as e:
        write_imported(read_labelstudio(js, tmp_path / "imgs", **kw), tmp_path / "pkg", name="x")
    assert not (tmp_path / "pkg").exists()
    return str(e.value)


def test_missing_image_without_sizes(tmp_path):
    (tmp_path / "imgs").mkdir()
    msg = _fails(tmp_path, [_task(4, "/data/upload/1/0a1b2c3d-z.png", [_brush_result("r", "cube", CUBE,
                                                                                     with_size=False)])],
                 "task 4: image '/data/upload/1/0a1b2c3d-z.png' not found")
    assert "'0a1b2c3d-z.png', 'z.png'" in msg and "no original_width / original_height" in msg


def test_wrong_size(tmp_path):
    write_rgb(tmp_path / "imgs" / "a.png", H + 1, W)
    _fails(tmp_path, [_task(1, "a.png", [_brush_result("r", "cube", CUBE)])], "results say the image is 20x10 but")


def test_truncated_brush(tmp_path):
    write_rgb(tmp_path / "imgs" / "a.png", H, W)
    r = _brush_result("r", "cube", CUBE)
    r["value"]["rle"] = r["value"]["rle"][:-3]
    _fails(tmp_path, [_task(1, "a.png", [r])], "task 1 result 'r' .label 'cube'.: the rle is truncated")


def test_two_labels_on_one_region(tmp_path):
    write_rgb(tmp_path / "imgs" / "a.png", H, W)
    r = _poly_result("p", "cube")
    r["value"]["polygonlabels"] = ["cube", "cable"]
    _fails(tmp_path, [_task(1, "a.png", [r])], "needs exactly one label")


def test_path_escaping(tmp_path):
    write_rgb(tmp_path / "a.png", H, W)
    (tmp_path / "imgs").mkdir()
    _fails(tmp_path, [_task(1, "/data/local-files/?d=../a.png", [_poly_result("p", "cube")])], "leaves the image folder")


def test_ambiguous_base_name(tmp_path):
    write_rgb(tmp_path / "imgs" / "x" / "a.png", H, W)
    write_rgb(tmp_path / "imgs" / "y" / "a.png", H, W)
    _fails(tmp_path, [_task(1, "s3://b/a.png", [_poly_result("p", "cube")])], "matches several files")


def test_truncated_json(tmp_path):
    js = write_json(tmp_path / "e.json", [_task(1, "a.png", [_poly_result("p", "cube")])])
    js.write_text(js.read_text()[:-30])
    (tmp_path / "imgs").mkdir()
    with pytest.raises(DatasetError, match="invalid JSON"):
        read_labelstudio(js, tmp_path / "imgs")


def test_same_image_twice(tmp_path):
    write_rgb(tmp_path / "imgs" / "a.png", H, W)
    _fails(tmp_path, [_task(1, "a.png", [_poly_result("p", "cube")]), _task(2, "a.png", [])],
           "tasks 1 and 2 both use the image 'a.png'")


def test_missing_image_with_sizes(tmp_path):
    (tmp_path / "imgs").mkdir()
    msg = _fails(tmp_path, [_task(5, "/data/local-files/?d=shelf/q.png", [_poly_result("p", "cube")])],
                 r"task 5: image '/data/local-files/\?d=shelf/q.png' not found")
    assert "'shelf/q.png', 'q.png'" in msg and "original_width" not in msg
