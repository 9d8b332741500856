"""Exports and imports: Label Studio / CVAT round trips into a new version; bad input refused, nothing written."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from segval.dataset.package import DatasetPackage
from segval.demo.shapes import write_shapes_package
from segval.errors import ConfigError, DatasetError
from segval.relabel import cvat, labelstudio
from segval.dataset.brush_rle import decode_mask, encode_mask
from segval.relabel.import_back import apply_corrections


def tree_hash(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture()
def pkg_root(tmp_path):
    return write_shapes_package(tmp_path / "releases" / "1.0.0", images={"train": 4, "val": 1}, size=(48, 64))


def _queue(pkg, image_ids):
    sd = pkg.split("train")
    return {"split": "train", "items": [
        {"rank": k + 1, "item_id": f"{i}:x:0", "image_id": i, "category_id": 1, "annotation_ids": [],
         "reason": "test", "proposal": {"score": 0.9}} for k, i in enumerate(image_ids)]}, sd


def _ls_export(tasks, edit):
    """Annotators accept the current-label prediction of each task, edited by ``edit(image_id, results)``."""
    out = []
    for task in tasks:
        res = copy.deepcopy(task["predictions"][0]["result"])
        out.append({"id": len(out) + 1, "data": task["data"],
                    "annotations": [{"id": 1, "was_cancelled": True, "result": []},
                                    {"id": 2, "was_cancelled": False, "result": edit(task["data"]["image_id"], res)}]})
    return out


def test_label_studio_round_trip_into_a_new_version(pkg_root, tmp_path):
    pkg = DatasetPackage.open(pkg_root)
    sd = pkg.split("train")
    a, b = sd.images[0].id, sd.images[1].id
    q, _ = _queue(pkg, [a, b])
    prop = np.zeros((48, 64), bool)
    prop[3:9, 3:9] = True
    tasks = labelstudio.tasks_for_queue(q, sd, pkg.taxonomy, proposals={f"{a}:x:0": prop}, proposal_model="m")
    assert [t["data"]["image_id"] for t in tasks] == [a, b]
    assert tasks[0]["data"]["image"] == f"/data/local-files/?d=train/{sd.image(a).file_name}"
    assert tasks[0]["predictions"][1]["model_version"] == "m"
    assert decode_mask(tasks[0]["predictions"][1]["result"][0]["value"]["rle"], 48, 64).tolist() == prop.tolist()
    insts_a = sd.instances(sd.image(a))
    fixed, dropped = insts_a[0], insts_a[1]
    new_fixed = cv2.dilate(fixed.mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    extra = np.zeros((48, 64), bool)
    extra[40:46, 2:10] = True

    def edit(image_id, res):
        if image_id != a:
            return res  # b: accepted unchanged
        out = []
        for r in res:
            aid = r["meta"]["annotation_id"]
            if aid == dropped.annotation_id:
                continue
            if aid == fixed.annotation_id:
                r["value"]["rle"] = encode_mask(new_fixed)
            out.append(r)
        # a polygon (percent coordinates) of a new square
        out.append({"type": "polygonlabels", "original_width": 64, "original_height": 48,
                    "value": {"points": [[2 / 64 * 100, 40 / 48 * 100], [10 / 64 * 100, 40 / 48 * 100],
                                         [10 / 64 * 100, 46 / 48 * 100], [2 / 64 * 100, 46 / 48 * 100]],
                              "polygonlabels": ["square"]}})
        return out

    export = tmp_path / "export.json"
    export.write_text(json.dumps(_ls_export(tasks, edit)))
    before = tree_hash(pkg_root)
    corr = labelstudio.read_export(export, sd, pkg.taxonomy)
    assert sorted(corr) == [a, b] and len(corr[a]) == len(insts_a)
    res = apply_corrections(pkg_root, corr, notes="round trip")
    assert tree_hash(pkg_root) == before  # the previous version is byte-identical
    assert res["version"] == "1.1.0" and Path(res["path"]) == pkg_root.parent / "1.1.0"
    max_id = max(int(x["id"]) for s in pkg.splits for r in pkg.split(s).images for x in pkg.split(s).annotations_for(r.id))
    assert res["corrected"] == [fixed.annotation_id] and res["deprecated"] == [dropped.annotation_id]
    assert res["added"] == [max_id + 1] and res["unchanged_images"] == [b]
    new = DatasetPackage.open(res["path"])
    assert new.version == "1.1.0"
    nsd = new.split("train")
    got = {i.annotation_id: i for i in nsd.instances(nsd.image(a))}
    assert set(got) == {i.annotation_id for i in insts_a} - {dropped.annotation_id} | {max_id + 1}
    assert (got[fixed.annotation_id].mask == new_fixed).all()
    added = got[max_id + 1]
    assert added.category_id == 2 and added.mask[41:45, 3:9].all() and added.mask.sum() <= 9 * 7
    # image b and every other annotation untouched (ids preserved)
    for r in sd.images[1:]:
        assert nsd.annotations_for(r.id) == sd.annotations_for(r.id)
    meta = yaml.safe_load((Path(res["path"]) / "dataset.yaml").read_text())
    assert meta["deprecated"] == {"train": {"annotations": [dropped.annotation_id]}}
    coco = json.loads((Path(res["path"]) / "annotations" / "train.json").read_text())
    assert [d["id"] for d in coco["deprecated_annotations"]] == [dropped.annotation_id]
    log = (Path(res["path"]) / "CHANGELOG.md").read_text()
    assert f"corrected annotation ids: {fixed.annotation_id}" in log and f"added annotation ids: {max_id + 1}" in log
    assert f"deprecated annotation ids: {dropped.annotation_id}" in log and "pixels changed per class" in log
    # label map regenerated = rasterised annotations
    np.testing.assert_array_equal(nsd.semantic_target(nsd.image(a), "label_map"), nsd.semantic_target(nsd.image(a)))
    px = res["diff"]["pixels"]
    assert px["disc" if fixed.category_id == 1 else pkg.taxonomy.category(fixed.category_id).name]["gained"] > 0
    # read-only, and a second import to the same version is refused
    with pytest.raises(DatasetError, match="already exists"):
        apply_corrections(pkg_root, corr)
    assert tree_hash(pkg_root) == before


@pytest.mark.parametrize("case", ["label", "size", "truncated", "image", "rle"])
def test_label_studio_bad_exports_write_nothing(pkg_root, tmp_path, case):
    pkg = DatasetPackage.open(pkg_root)
    sd = pkg.split("train")
    q, _ = _queue(pkg, [sd.images[0].id])
    tasks = labelstudio.tasks_for_queue(q, sd, pkg.taxonomy)
    exp = _ls_export(tasks, lambda i, res: res)
    r0 = exp[0]["annotations"][1]["result"][0]
    text = None
    if case == "label":
        r0["value"]["brushlabels"] = ["unicorn"]
    elif case == "size":
        r0["original_width"] = 65
    elif case == "rle":
        r0["value"]["rle"] = encode_mask(np.zeros((10, 10), bool))
        r0.pop("original_width")
        r0.pop("original_height")
    elif case == "image":
        exp[0]["data"]["image_id"] = 999
    text = json.dumps(exp)
    if case == "truncated":
        text = text[: len(text) // 2]
    f = tmp_path / "bad.json"
    f.write_text(text)
    match = {"label": "unicorn", "size": "65x48", "truncated": "invalid JSON", "image": "999", "rle": "size"}[case]
    with pytest.raises(DatasetError, match=match):
        labelstudio.read_export(f, sd, pkg.taxonomy)
    assert not (pkg_root.parent / "1.1.0").exists()


def test_cvat_round_trip_matches_by_file_name(pkg_root, tmp_path):
    pkg = DatasetPackage.open(pkg_root)
    sd = pkg.split("train")
    a = sd.images[2].id
    q, _ = _queue(pkg, [a])
    coco = cvat.coco_for_queue(q, sd, pkg.taxonomy)
    cvat.write_cvat_package(coco, sd, tmp_path / "cvat")
    assert (tmp_path / "cvat" / "cvat_coco.zip").is_file()
    assert (tmp_path / "cvat" / "images" / sd.image(a).file_name).is_file()
    back = json.loads((tmp_path / "cvat" / "annotations" / "instances_default.json").read_text())
    assert {c["name"] for c in back["categories"]} == {"disc", "square", "bar"}
    # CVAT renumbers images and annotations and writes compressed or polygon segmentations
    back["images"][0]["id"] = 1
    insts = sd.instances(sd.image(a))
    k0 = int(np.argmax([i.mask.sum() for i in insts]))  # erosion keeps IoU >= 0.5 on the largest
    first = insts[k0]
    shrunk = cv2.erode(first.mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    for k, ann in enumerate(back["annotations"]):
        ann["image_id"], ann["id"] = 1, 100 + k
    from pycocotools import mask as mask_utils
    rle = mask_utils.encode(np.asfortranarray(shrunk.astype(np.uint8)))
    assert back["annotations"][k0]["id"] == 100 + k0
    back["annotations"][k0]["segmentation"] = {"size": [48, 64], "counts": rle["counts"].decode()}
    f = tmp_path / "cvat_export.json"
    f.write_text(json.dumps(back))
    corr = cvat.read_export(f, sd, pkg.taxonomy)
    res = apply_corrections(pkg_root, corr, output=tmp_path / "v2", read_only=False)
    assert res["corrected"] == [first.annotation_id] and res["added"] == [] and res["deprecated"] == []
    # wrong size and unknown category are refused
    back["annotations"][k0]["segmentation"]["size"] = [40, 64]
    f.write_text(json.dumps(back))
    with pytest.raises(DatasetError, match="size"):
        cvat.read_export(f, sd, pkg.taxonomy)
    back["categories"][0]["name"] = "unicorn"
    f.write_text(json.dumps(back))
    with pytest.raises(DatasetError, match="unicorn"):
        cvat.read_export(f, sd, pkg.taxonomy)


def test_exports_of_images_not_in_the_dataset_and_bad_versions(pkg_root, tmp_path):
    pkg = DatasetPackage.open(pkg_root)
    sd = pkg.split("train")
    q, _ = _queue(pkg, [12345])
    with pytest.raises(DatasetError, match="12345"):
        labelstudio.tasks_for_queue(q, sd, pkg.taxonomy)
    with pytest.raises(DatasetError, match="12345"):
        cvat.coco_for_queue(q, sd, pkg.taxonomy)
    with pytest.raises(ConfigError, match="newer"):
        apply_corrections(pkg_root, {}, version="1.0.0")
    (pkg_root.parent / "1.1.0").mkdir()
    with pytest.raises(DatasetError, match="already exists"):
        apply_corrections(pkg_root, {})
    xml = labelstudio.label_config(pkg.taxonomy)
    assert '<BrushLabels name="label" toName="image">' in xml and 'value="background"' not in xml
    assert xml.count('<Label value="disc"') == 2
