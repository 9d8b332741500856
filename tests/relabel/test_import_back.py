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


# ---------------------------------------------------------------- exports of tasks that lost segval's ids
def _accepted_tasks(pkg, image_ids):
    """Label Studio tasks of the images with their current labels accepted as the annotation."""
    sd = pkg.split("train")
    q, _ = _queue(pkg, image_ids)
    tasks = labelstudio.tasks_for_queue(q, sd, pkg.taxonomy)
    return sd, _ls_export(tasks, lambda i, res: res)


def _corrections_equal(a, b):
    assert sorted(a) == sorted(b)
    for k in a:
        assert [(i.category_id, i.mask.tolist()) for i in a[k]] == [(i.category_id, i.mask.tolist()) for i in b[k]]


def test_label_studio_export_without_image_id_is_matched_by_file_name(pkg_root, tmp_path):
    """Tasks re-imported into Label Studio lose data.image_id: local files keep their path (with or without the
    split folder); a `labels` result repeating a brush region counts once; boxes are skipped and reported."""
    from segval.dataset.formats.result import Findings

    pkg = DatasetPackage.open(pkg_root)
    sd, exp = _accepted_tasks(pkg, [r.id for r in pkg.split("train").images[:2]])
    reference = labelstudio.read_export(_write_json(tmp_path / "ref.json", exp), sd, pkg.taxonomy)
    first = exp[0]["annotations"][1]["result"][0]
    for k, task in enumerate(exp):
        fn = task["data"]["file_name"]
        task["data"] = {"image": f"/data/local-files/?d={fn}" if k == 0 else f"/data/local-files/?d=train/{fn}"}
    exp[0]["annotations"][1]["result"] += [
        {"id": first["id"], "type": "labels", "original_width": 64, "original_height": 48,
         "value": {"format": "rle", "rle": first["value"]["rle"], "labels": first["value"]["brushlabels"]}},
        {"id": "box1", "type": "rectanglelabels", "original_width": 64, "original_height": 48,
         "value": {"x": 1, "y": 1, "width": 5, "height": 5, "rectanglelabels": ["disc"]}}]
    f = Findings()
    got = labelstudio.read_export(_write_json(tmp_path / "ls.json", exp), sd, pkg.taxonomy, findings=f)
    _corrections_equal(got, reference)
    assert {k: v.count for k, v in f.skipped.items()} == {"rectanglelabels": 1}


def test_label_studio_json_min_export(pkg_root, tmp_path):
    pkg = DatasetPackage.open(pkg_root)
    sd, exp = _accepted_tasks(pkg, [pkg.split("train").images[1].id])
    reference = labelstudio.read_export(_write_json(tmp_path / "ref.json", exp), sd, pkg.taxonomy)
    results = exp[0]["annotations"][1]["result"]
    fn = exp[0]["data"]["file_name"]
    minimal = [{"image": f"/data/local-files/?d=train/{fn}", "id": 5, "annotator": 1,
                "label": [dict(r["value"], original_width=64, original_height=48) for r in results]}]
    got = labelstudio.read_export(_write_json(tmp_path / "min.json", minimal), sd, pkg.taxonomy)
    _corrections_equal(got, reference)


def test_label_studio_file_name_matching_no_or_several_images(pkg_root, tmp_path):
    pkg = DatasetPackage.open(pkg_root)
    sd, exp = _accepted_tasks(pkg, [pkg.split("train").images[0].id])
    exp[0]["data"] = {"image": "/data/upload/3/0a1b2c3d-nowhere.png"}
    with pytest.raises(DatasetError, match=r"task 1: .*'nowhere.png'.* matches no image of split 'train'"):
        labelstudio.read_export(_write_json(tmp_path / "x.json", exp), sd, pkg.taxonomy)
    # an upload keeps only the base name, which every video folder of this package has
    exp[0]["data"] = {"image": "/data/upload/3/0a1b2c3d-000000.png"}
    with pytest.raises(DatasetError, match=r"task 1: image '000000.png' matches several images of split 'train' "
                                           r"\(train_000/000000.png, "):
        labelstudio.read_export(_write_json(tmp_path / "x.json", exp), sd, pkg.taxonomy)


def _write_json(path, obj):
    path.write_text(json.dumps(obj))
    return path


def _cvat_mask(mask, label, z=0):
    """A CVAT 1.1 <mask>: run lengths (0s first) row-major over the mask's bounding box."""
    ys, xs = np.nonzero(mask)
    top, left = int(ys.min()), int(xs.min())
    h, w = int(ys.max()) - top + 1, int(xs.max()) - left + 1
    flat = mask[top:top + h, left:left + w].reshape(-1)
    change = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
    runs = np.diff(np.concatenate([[0], change, [flat.size]])).tolist()
    if flat[0]:
        runs = [0] + runs
    return (f'<mask label="{label}" source="manual" occluded="0" rle="{", ".join(map(str, runs))}" left="{left}" '
            f'top="{top}" width="{w}" height="{h}" z_order="{z}"></mask>')


def _cvat_images_xml(pkg, sd, image_ids, edit=None):
    names = {c.id: c.name for c in pkg.taxonomy.categories}
    labels = "".join(f"<label><name>{n}</name><type>any</type></label>" for i, n in names.items()
                     if i != pkg.taxonomy.background_id)
    body = []
    for k, image_id in enumerate(image_ids):
        rec = sd.image(image_id)
        shapes = [(names[i.category_id], i.mask) for i in sd.instances(rec) if i.category_id != pkg.taxonomy.background_id]
        if edit:
            shapes = edit(image_id, shapes)
        els = "".join(_cvat_mask(m, n) for n, m in shapes)
        body.append(f'<image id="{k}" name="{rec.file_name}" width="{rec.width}" height="{rec.height}">{els}'
                    '<box label="disc" xtl="0" ytl="0" xbr="4" ybr="4" occluded="0" z_order="0"></box></image>')
    return ('<?xml version="1.0" encoding="utf-8"?>\n<annotations><version>1.1</version><meta><task><id>7</id>'
            f"<labels>{labels}</labels></task></meta>{''.join(body)}</annotations>")


def test_cvat_for_images_xml_round_trip(pkg_root, tmp_path):
    """`relabel import format=cvat` reads "CVAT for images 1.1" XML (and its zip): an eroded mask is a correction."""
    import zipfile

    from segval.dataset.formats.result import Findings

    pkg = DatasetPackage.open(pkg_root)
    sd = pkg.split("train")
    a, b = sd.images[2].id, sd.images[3].id
    insts = [i for i in sd.instances(sd.image(a)) if i.category_id != pkg.taxonomy.background_id]
    k0 = int(np.argmax([i.mask.sum() for i in insts]))
    shrunk = cv2.erode(insts[k0].mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)

    def edit(image_id, shapes):
        return [(n, shrunk if image_id == a and k == k0 else m) for k, (n, m) in enumerate(shapes)]

    xml = tmp_path / "annotations.xml"
    xml.write_text(_cvat_images_xml(pkg, sd, [a, b], edit))
    f = Findings()
    corr = cvat.read_export(xml, sd, pkg.taxonomy, findings=f)
    assert sorted(corr) == sorted([a, b]) and f.skipped["box"].count == 2
    assert [i.mask.tolist() for i in corr[a]] == [shrunk.tolist() if k == k0 else i.mask.tolist()
                                                 for k, i in enumerate(insts)]
    with zipfile.ZipFile(tmp_path / "task.zip", "w") as z:
        z.write(xml, "annotations.xml")
    _corrections_equal(cvat.read_export(tmp_path / "task.zip", sd, pkg.taxonomy), corr)
    res = apply_corrections(pkg_root, corr, output=tmp_path / "v2", read_only=False)
    assert res["corrected"] == [insts[k0].annotation_id] and res["added"] == [] and res["deprecated"] == []
    # an unknown label and a wrong size are refused, naming the image
    xml.write_text(_cvat_images_xml(pkg, sd, [a], lambda i, s: [("unicorn", m) for _, m in s]))
    with pytest.raises(DatasetError, match=r"annotations.xml, image id \d+: image '.*' \(CVAT id 0\): labels \['unicorn'\] are not"):
        cvat.read_export(xml, sd, pkg.taxonomy)
    xml.write_text(_cvat_images_xml(pkg, sd, [a]).replace('width="64"', 'width="60"', 1))
    with pytest.raises(DatasetError, match=r"is 60x48 in the export but 64x48 in the dataset"):
        cvat.read_export(xml, sd, pkg.taxonomy)
