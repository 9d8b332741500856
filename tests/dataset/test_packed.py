"""Packed annotations: the same parsed content as json.load, the same errors, a split reading them back."""

from __future__ import annotations

import json

import numpy as np
import pytest

from segval.dataset.coco import index_coco
from segval.dataset.package import DatasetPackage
from segval.dataset.packed import AnnotationTable, PackedAnnotation, load_coco_packed
from segval.dataset.rle import encode_coco_rle
from segval.dataset.taxonomy import Taxonomy
from segval.errors import DatasetError


def _rle(y0: int, x0: int, size: int = 3) -> dict:
    m = np.zeros((8, 10), bool)
    m[y0:y0 + size, x0:x0 + size] = True
    return encode_coco_rle(m)[0]


def _coco() -> dict:
    return {
        "info": {"note": "a, b: c", "nested": {"id": 1, "image_id": 1, "category_id": 1, "segmentation": []}},
        "images": [{"id": 1, "file_name": "a.png", "width": 10, "height": 8},
                   {"id": 2, "file_name": "b.png", "width": 10, "height": 8}],
        "annotations": [
            {"id": 5, "image_id": 1, "category_id": 1, "segmentation": _rle(0, 0), "area": 9, "bbox": [0, 0, 3, 3],
             "iscrowd": 0, "note": "é, \u2603 \"q\"", "score": 0.1 + 0.2, "big": 2**70, "neg": -0.0},
            {"id": 6, "image_id": 2, "category_id": 2, "segmentation": [[1, 1, 5, 1, 5, 5]], "area": 8.0,
             "bbox": [1.0, 1.0, 4.0, 4.0], "iscrowd": 0, "attributes": {"occluded": False, "nan": float("nan")}},
            {"id": 7.0, "image_id": 1, "category_id": 2, "segmentation": _rle(4, 5)},  # float id: stays a dict
            {"id": 8, "image_id": 1, "category_id": 1, "segmentation": _rle(5, 0, 2), "iscrowd": 1},
        ],
        "categories": [{"id": 0, "name": "background"}, {"id": 1, "name": "box"}, {"id": 2, "name": "disc"}],
    }


def _same(a, b) -> bool:
    """Equal as JSON documents, NaN included, with the same key order and value types."""
    return json.dumps(a) == json.dumps(b) and type(a) is type(b)


@pytest.mark.parametrize("indent", [None, 2])
def test_packed_loads_what_json_loads(tmp_path, indent):
    p = tmp_path / "a.json"
    p.write_text(json.dumps(_coco(), indent=indent, separators=None if indent else (",", ":"), ensure_ascii=False),
                 encoding="utf-8")
    plain, packed = json.loads(p.read_text(encoding="utf-8")), load_coco_packed(p)
    assert list(packed) == list(plain) and all(_same(packed[k], plain[k]) for k in plain if k != "annotations")
    kinds = [type(a) for a in packed["annotations"]]
    assert kinds == [PackedAnnotation, PackedAnnotation, dict, PackedAnnotation]
    back = [json.loads(a.text) if type(a) is PackedAnnotation else a for a in packed["annotations"]]
    assert _same(back, plain["annotations"])
    assert back[0]["big"] == 2**70 and str(back[0]["neg"]) == "-0.0" and back[0]["note"] == "é, \u2603 \"q\""
    if indent:  # pretty-printed entries are kept compact
        assert "\n" not in packed["annotations"][0].text


def test_packed_duplicate_keys_and_other_documents(tmp_path):
    p = tmp_path / "d.json"
    p.write_text('{"annotations": [], "images": [1], "annotations": [{"id": 1, "image_id": 2, "category_id": 3, '
                 '"segmentation": []}] }\n')
    got = load_coco_packed(p)
    assert list(got) == ["annotations", "images"] and got["annotations"][0][:3] == (1, 2, 3)
    for text in ("[1, 2]", '{"annotations": {"a": 1}}', "{}", ' { "images" : [ ] } '):
        p.write_text(text)
        assert load_coco_packed(p) == json.loads(text)


@pytest.mark.parametrize("text, where", [('{"images": [], "annotations": [{"id": 1,}]}', "line 1, column 41"),
                                         ('{"images": [],\n "annotations": [1 2]}', "line 2, column 20"),
                                         ('{"images": []} x', "line 1, column 16"), ("", "line 1, column 1")])
def test_packed_invalid_json_same_error(tmp_path, text, where):
    p = tmp_path / "bad.json"
    p.write_text(text)
    with pytest.raises(DatasetError, match=where):
        load_coco_packed(p)


def test_index_and_table_of_packed_annotations(tmp_path):
    tax = Taxonomy.from_dict({"background_id": 0, "taxonomy": [{"id": 0, "name": "background"},
                                                               {"id": 1, "name": "box"}, {"id": 2, "name": "disc"}]})
    p = tmp_path / "a.json"
    p.write_text(json.dumps(_coco()))
    records, by_image = index_coco(load_coco_packed(p), tax, path=p)
    plain_records, plain_by_image = index_coco(json.loads(p.read_text()), tax, path=p)
    assert records == plain_records
    table = AnnotationTable(by_image)
    assert table.count == 4 and table.get(3) == []
    for rec in records:
        assert _same(table.get(rec.id), plain_by_image[rec.id])
    assert type(table._rows[2]) is str and type(table._rows[1]) is list  # image 1 holds the float-id annotation
    # the checks of packed entries: duplicate id, unknown image, unknown category, in file order
    doc = _coco()
    doc["annotations"] += [dict(doc["annotations"][0]), {**doc["annotations"][0], "id": 20, "image_id": 9},
                           {**doc["annotations"][0], "id": 21, "category_id": 9}]
    p.write_text(json.dumps(doc))
    with pytest.raises(DatasetError) as packed_err:
        index_coco(load_coco_packed(p), tax, path=p)
    with pytest.raises(DatasetError) as plain_err:
        index_coco(json.loads(p.read_text()), tax, path=p)
    assert str(packed_err.value) == str(plain_err.value) and "3 problem(s)" in str(packed_err.value)


def test_package_split_reads_packed_annotations(make_coco_package):
    root = make_coco_package()
    pkg = DatasetPackage.open(root)
    for s in pkg.splits:
        sd = pkg.split(s)
        plain = json.loads(sd.annotation_path.read_text())
        assert sd.num_annotations == len(plain["annotations"])
        for rec in sd.images:
            want = [a for a in plain["annotations"] if a["image_id"] == rec.id]
            assert _same(sd.annotations_for(rec.id), want)
            assert sd.annotations_for(rec.id) is not sd.annotations_for(rec.id)  # parsed anew: a caller's edit stays its own
            assert [a["id"] for a, _ in sd.masks(rec, cache=False)] == [a["id"] for a in want]
    sd = pkg.split(pkg.splits[0])
    sd.masks(sd.images[0], cache=False)
    assert sd._rle_cache == {}
    sd.masks(sd.images[0])
    assert len(sd._rle_cache) == len(sd.annotations_for(sd.images[0].id))


def test_json_text_ids_and_images_only(tmp_path):
    coco = _coco()
    f = tmp_path / "a.json"
    f.write_text(json.dumps(coco, indent=2))  # pretty-printed: packed compact
    packed = load_coco_packed(f)
    table = AnnotationTable({1: [a for a in packed["annotations"] if _image(a) == 1],
                             2: [a for a in packed["annotations"] if _image(a) == 2]})
    for image_id in (1, 2, 3):
        want = [a for a in json.loads(f.read_text())["annotations"] if a["image_id"] == image_id]
        text = table.json_text(image_id)
        assert _same(json.loads(text), want) and _same(table.get(image_id), want)
    assert table.json_text(3) == "[]"
    assert table.ids.dtype == np.int64 and table.ids.tolist() == [5, 7, 8, 6]
    head = load_coco_packed(f, annotations=False)
    assert head["annotations"] == [] and head["images"] == coco["images"] and head["categories"] == coco["categories"]


def _image(a) -> int:
    return a.image_id if isinstance(a, PackedAnnotation) else int(a["image_id"])


def _same(a, b) -> bool:
    """Equal JSON values, NaN equal to NaN."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
