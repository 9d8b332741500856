"""Writer -> reader round trip, reading a package, plain COCO exports, summary."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import yaml
from PIL import Image
from pycocotools import mask as mask_utils

from segval.dataset import (
    Category,
    DatasetPackage,
    InstanceMask,
    PackageExistsError,
    PackageWriter,
    Taxonomy,
    format_summary,
    summarize,
    validate_package,
)
from segval.errors import ConfigError, DatasetError

H, W = 12, 16


def _taxonomy() -> Taxonomy:
    return Taxonomy(
        [
            Category(0, "background", (0, 0, 0), False, "stuff"),
            Category(3, "mug", (200, 30, 30), True, "rigid"),
            Category(8, "cable", (30, 200, 30), True, "thin"),
            Category(9, "table", (90, 90, 90), False, "stuff"),
        ],
        background_id=0,
    )


def _scene():
    """Image, instances and the hand-built label map (category ids) they must give."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    table = np.zeros((H, W), bool)
    table[6:, :] = True  # area 96
    mug = np.zeros((H, W), bool)
    mug[4:9, 3:7] = True  # area 20, overlaps the table
    cable = np.zeros((H, W), bool)
    cable[7, 2:12] = True  # area 10, lies on mug and table
    crowd = np.zeros((H, W), bool)
    crowd[0:2, 12:16] = True  # area 8
    instances = [
        InstanceMask(9, table),
        InstanceMask(8, cable),
        InstanceMask(3, mug),
        InstanceMask(3, crowd, iscrowd=1),
    ]
    expected = np.zeros((H, W), np.uint8)
    expected[6:, :] = 9
    expected[4:9, 3:7] = 3
    expected[7, 2:12] = 8
    expected[0:2, 12:16] = 3
    return image, instances, expected


def _write(root, **kw):
    image, instances, _ = _scene()
    with PackageWriter(root, name="demo", version="1.2.3", taxonomy=_taxonomy(), splits=["train", "val"], **kw) as w:
        first = w.add_image("train", image, "vid_0/frame_0", instances=instances, extra={"video_id": 0, "frame_index": 0})
        second = w.add_image("train", image[:, ::-1].copy(), "vid_0/frame_1.png", instances=[],
                             extra={"video_id": np.int64(0), "frame_index": 1})
        third = w.add_image("val", image, "x.png", instances=instances[:1])
    assert (first, second, third) == (1, 2, 3)
    return root


def test_round_trip(tmp_path):
    root = _write(tmp_path / "pkg")
    image, instances, expected_ids = _scene()
    pkg = DatasetPackage.open(root)
    assert (pkg.name, pkg.version, pkg.license, pkg.splits) == ("demo", "1.2.3", "CC-BY-4.0", ["train", "val"])
    assert pkg.taxonomy == _taxonomy()
    train = pkg.split("train")
    assert train.has_label_maps
    rec = train.images[0]
    assert (rec.id, rec.file_name, rec.width, rec.height, rec.video_id, rec.frame_index) == (
        1, "vid_0/frame_0.png", W, H, 0, 0)
    np.testing.assert_array_equal(train.read_image(rec), image)

    got = train.instances(rec)
    assert [(g.annotation_id, g.category_id, g.iscrowd) for g in got] == [(1, 9, 0), (2, 8, 0), (3, 3, 0), (4, 3, 1)]
    for g, want in zip(got, instances):
        assert g.mask.dtype == bool
        np.testing.assert_array_equal(g.mask, want.mask)

    expected_idx = _taxonomy().lut()[expected_ids]
    np.testing.assert_array_equal(train.semantic_target(rec, source="coco"), expected_idx)
    np.testing.assert_array_equal(train.semantic_target(rec, source="label_map"), expected_idx)
    np.testing.assert_array_equal(np.asarray(Image.open(root / "label_maps/train/vid_0/frame_0.png")), expected_ids)
    # the image without instances is all background
    assert (train.semantic_target(train.images[1]) == 0).all()
    # ids are unique across the package
    assert pkg.split("val").images[0].id == 3
    assert [a["id"] for a in pkg.split("val").annotations_for(3)] == [5]
    validate_package(pkg, progress=False)


def test_written_coco_fields(tmp_path):
    root = _write(tmp_path / "pkg")
    coco = json.loads((root / "annotations/train.json").read_text())
    ann = coco["annotations"][2]  # the mug
    assert isinstance(ann["segmentation"]["counts"], str)
    assert ann["segmentation"]["size"] == [H, W]
    assert ann["area"] == 20 and ann["bbox"] == [3.0, 4.0, 4.0, 5.0] and ann["iscrowd"] == 0
    m = mask_utils.decode(ann["segmentation"])
    assert m.sum() == 20
    assert coco["images"][1] == {"id": 2, "file_name": "vid_0/frame_1.png", "width": W, "height": H,
                                 "video_id": 0, "frame_index": 1}
    meta = yaml.safe_load((root / "dataset.yaml").read_text())
    assert list(meta) == ["name", "version", "license", "description", "splits", "background_id", "taxonomy"]
    assert meta["taxonomy"][2] == {"id": 8, "name": "cable", "color": [30, 200, 30], "isthing": True, "group": "thin"}


def test_writer_refuses_to_overwrite(tmp_path):
    root = _write(tmp_path / "pkg")
    with pytest.raises(PackageExistsError, match="overwrite=True") as e:
        _write(root)
    assert isinstance(e.value, FileExistsError) and isinstance(e.value, DatasetError)
    assert str(root) in str(e.value)
    _write(root, overwrite=True)  # allowed
    assert DatasetPackage.open(root).split("train").images[0].id == 1


def test_writer_leaves_nothing_on_error(tmp_path):
    root = tmp_path / "pkg"
    image, instances, _ = _scene()
    with pytest.raises(RuntimeError, match="boom"):
        with PackageWriter(root, name="d", version="1.0.0", taxonomy=_taxonomy(), splits=["train"]) as w:
            w.add_image("train", image, "a", instances=instances)
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_add_image_validates_inputs(tmp_path):
    image, instances, _ = _scene()
    with PackageWriter(tmp_path / "pkg", name="d", version="1.0.0", taxonomy=_taxonomy(), splits=["train"]) as w:
        with pytest.raises(ValueError, match=r"bad\.png: instance 0 mask shape \(3, 3\)"):
            w.add_image("train", image, "bad.png", instances=[InstanceMask(3, np.ones((3, 3), bool))])
        with pytest.raises(ValueError, match=r"bad\.png: instance 0 has category id 5"):
            w.add_image("train", image, "bad.png", instances=[InstanceMask(5, instances[0].mask)])
        with pytest.raises(ValueError, match=r"bad\.png: image must be uint8"):
            w.add_image("train", image.astype(np.float32), "bad.png", instances=[])
        with pytest.raises(ValueError, match="empty mask"):
            w.add_image("train", image, "bad.png", instances=[InstanceMask(3, np.zeros((H, W), bool))])
        with pytest.raises(ValueError, match="split 'test'"):
            w.add_image("test", image, "bad.png", instances=[])
        with pytest.raises(ValueError, match=r"\.\./x\.png"):
            w.add_image("train", image, "../x.png", instances=[])
        with pytest.raises(ValueError, match="must not set 'id'"):
            w.add_image("train", image, "bad.png", instances=[], extra={"id": 4})
        assert w.add_image("train", image, "ok.png", instances=[]) == 1
        with pytest.raises(ValueError, match="already used"):
            w.add_image("train", image, "ok.png", instances=[])
        with pytest.raises(ValueError, match="same label map"):
            w.add_image("train", image, "ok.jpg", instances=[])
    with pytest.raises(ValueError, match="semver"):
        PackageWriter(tmp_path / "other", name="d", version="1.0", taxonomy=_taxonomy(), splits=["train"])


def test_jpeg_images_and_no_label_maps(tmp_path):
    image, instances, _ = _scene()
    with PackageWriter(tmp_path / "pkg", name="d", version="1.0.0", taxonomy=_taxonomy(), splits=["train"],
                       image_ext=".jpg", label_maps=False) as w:
        w.add_image("train", image, "a", instances=instances)
    split = DatasetPackage.open(tmp_path / "pkg").split("train")
    assert split.images[0].file_name == "a.jpg" and not split.has_label_maps
    assert split.read_image(split.images[0]).shape == (H, W, 3)
    with pytest.raises(DatasetError, match="no label maps"):
        split.semantic_target(split.images[0], source="label_map")


def test_unknown_split_and_source(make_coco_package):
    pkg = DatasetPackage.open(make_coco_package())
    with pytest.raises(ConfigError, match=r"split 'val' .*splits: \['train'\]"):
        pkg.split("val")
    with pytest.raises(ConfigError, match="source"):
        pkg.split("train").semantic_target(pkg.split("train").images[0], source="png")


def test_fixture_package_targets(make_coco_package):
    split = DatasetPackage.open(make_coco_package()).split("train")
    rec = split.images[0]
    cube, cable = make_coco_package.masks()
    expected = np.zeros((6, 8), np.uint8)
    expected[cube] = 1  # train index of id 1
    expected[cable] = 2  # train index of id 4 (smaller: painted last)
    np.testing.assert_array_equal(split.semantic_target(rec), expected)
    np.testing.assert_array_equal(split.semantic_target(rec, source="label_map"), expected)
    img = split.read_image(rec)
    assert img.dtype == np.uint8 and img.shape == (6, 8, 3) and img.flags.writeable


def test_read_image_converts_to_rgb(make_coco_package):
    gray = np.arange(48, dtype=np.uint8).reshape(6, 8)
    root = make_coco_package(image_files={"a.png": gray})
    split = DatasetPackage.open(root).split("train")
    np.testing.assert_array_equal(split.read_image(split.images[0]), np.repeat(gray[..., None], 3, axis=2))


def test_content_hash_changes_with_labels(make_coco_package):
    root = make_coco_package()
    h1 = DatasetPackage.open(root).content_hash()
    assert h1 == DatasetPackage.open(root).content_hash()
    p = root / "annotations/train.json"
    coco = json.loads(p.read_text())
    coco["annotations"][0]["category_id"] = 4
    p.write_text(json.dumps(coco))
    assert DatasetPackage.open(root).content_hash() != h1


# ------------------------------------------------------------------ plain COCO export (labelme-like)
def _labelme_export(tmp_path, categories):
    (tmp_path / "JPEGImages").mkdir()
    Image.fromarray(np.full((6, 8, 3), 128, np.uint8)).save(tmp_path / "JPEGImages" / "img_1.jpg")
    coco = {
        "info": {"description": None},
        "type": "instances",
        "images": [{"id": 0, "file_name": "JPEGImages/img_1.jpg", "width": 8, "height": 6, "license": 0}],
        "annotations": [
            {"id": 0, "image_id": 0, "category_id": 2, "segmentation": [[1, 1, 4, 1, 4, 3, 1, 3]],
             "area": 6.0, "bbox": [1, 1, 3, 2], "iscrowd": 0},
        ],
        "categories": categories,
    }
    (tmp_path / "annotations.json").write_text(json.dumps(coco))
    return tmp_path / "annotations.json"


def test_from_coco_labelme_background(tmp_path):
    ann = _labelme_export(tmp_path, [{"supercategory": None, "id": 0, "name": "_background_"},
                                     {"supercategory": None, "id": 1, "name": "cat"},
                                     {"supercategory": None, "id": 2, "name": "dog"}])
    pkg = DatasetPackage.from_coco(ann, tmp_path)
    assert pkg.splits == ["train"] and pkg.taxonomy.background_id == 0 and pkg.taxonomy.num_classes == 3
    split = pkg.split("train")
    rec = split.images[0]
    assert split.read_image(rec).shape == (6, 8, 3)
    expected = np.zeros((6, 8), np.uint8)
    expected[1:3, 1:4] = 2
    np.testing.assert_array_equal(split.semantic_target(rec), expected)
    validate_package(pkg, progress=False)


def test_from_coco_synthetic_background_and_none(tmp_path):
    ann = _labelme_export(tmp_path, [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}])
    split = DatasetPackage.from_coco(ann, tmp_path, split="val").split("val")
    target = split.semantic_target(split.images[0])
    assert split.taxonomy.names == ["background", "cat", "dog"]
    assert target[0, 0] == 0 and target[1, 1] == 2
    split = DatasetPackage.from_coco(ann, tmp_path, background="none").split("train")
    target = split.semantic_target(split.images[0])
    assert target[0, 0] == 255 and target[1, 1] == 1  # dog is train index 1 of [cat, dog]


def test_from_coco_id0_taken(tmp_path):
    ann = _labelme_export(tmp_path, [{"id": 0, "name": "table"}, {"id": 2, "name": "dog"}])
    with pytest.raises(DatasetError, match="annotations.json: .*background="):
        DatasetPackage.from_coco(ann, tmp_path)
    pkg = DatasetPackage.from_coco(ann, tmp_path, background="table")
    assert pkg.taxonomy.background_id == 0


def test_from_coco_missing_files(tmp_path):
    with pytest.raises(DatasetError, match="COCO annotation file not found"):
        DatasetPackage.from_coco(tmp_path / "nope.json", tmp_path)


def _rle(mask):
    r = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": list(mask.shape), "counts": r["counts"].decode()}


def _dialect_export(tmp_path, anns, **cat):
    """A plain COCO export of one 8x6 image with category `cube` (id 1) and the given annotations."""
    Image.fromarray(np.zeros((6, 8, 3), np.uint8)).save(tmp_path / "a.png")
    coco = {"images": [{"id": 1, "file_name": "a.png", "width": 8, "height": 6}],
            "categories": [{"id": 1, "name": "cube", **cat}], "annotations": anns}
    (tmp_path / "ann.json").write_text(json.dumps(coco))
    return tmp_path / "ann.json"


CUBE = np.zeros((6, 8), bool)
CUBE[1:4, 1:4] = True


@pytest.mark.parametrize("mode", ["ignore_box", "drop"])
def test_from_coco_bbox_only_boxes_are_ignore_in_the_semantic_target(tmp_path, mode):
    ann = _dialect_export(tmp_path, [
        {"id": 1, "image_id": 1, "category_id": 1, "segmentation": _rle(CUBE), "area": 9, "bbox": [1, 1, 3, 3]},
        {"id": 2, "image_id": 1, "category_id": 1, "segmentation": [], "bbox": [2, 0, 6, 3], "area": 18},
        {"id": 3, "image_id": 1, "category_id": 1, "bbox": [0, 5, 1.4, 1], "area": 1},  # no segmentation key
    ])
    pkg = DatasetPackage.from_coco(ann, tmp_path, bbox_only=mode)
    split = pkg.split("train")
    rec = split.images[0]
    expected = np.where(CUBE, 1, 0).astype(np.uint8)  # train indices: background 0, cube 1
    if mode == "ignore_box":
        box = np.zeros((6, 8), bool)
        box[0:3, 2:8] = True  # x 2..7, y 0..2
        box[5, 0] = True  # x 0..1.4 covers the centre of pixel 0 only
        expected[box & ~CUBE] = 255  # the annotated cube keeps its label inside the box
        assert split.ignore_mask(rec).tolist() == box.tolist()
    else:
        assert split.ignore_mask(rec) is None
    np.testing.assert_array_equal(split.semantic_target(rec), expected)
    assert split.num_annotations == 1 and [i.annotation_id for i in split.instances(rec)] == [1]
    (line,) = [w for w in pkg.warnings if "box but no mask" in w]
    assert line.endswith("2 (first ids: 2, 3)") and (("ignore boxes" in line) == (mode == "ignore_box"))


def test_from_coco_bbox_only_error(tmp_path):
    ann = _dialect_export(tmp_path, [
        {"id": 1, "image_id": 1, "category_id": 1, "segmentation": _rle(CUBE), "area": 9, "bbox": [1, 1, 3, 3]},
        {"id": 7, "image_id": 1, "category_id": 1, "segmentation": [], "bbox": [2, 0, 6, 3]}])
    with pytest.raises(DatasetError, match=r"ann.json: .*refused \(bbox_only=error\).*: 1 \(first ids: 7\)"):
        DatasetPackage.from_coco(ann, tmp_path, bbox_only="error")


@pytest.mark.parametrize("defect, warning", [
    ({"area": -9}, "'area' missing, negative or not the mask's pixel count, recomputed from the mask: 1 (first ids: 1)"),
    ({"bbox": [1, 1, -3, 3]}, "'bbox' missing, negative or not around the mask, recomputed from the mask: 1 "
                              "(first ids: 1)"),
    ({"segmentation": [[1, 1, 4000, 1, 4000, 4, 1, 4]]}, "polygons reaching outside their image clipped to it: 1 "
                                                        "(first ids: 1)"),
])
def test_from_coco_one_defect_files_warn(tmp_path, defect, warning):
    ann = _dialect_export(tmp_path, [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": _rle(CUBE),
                                      "area": 9, "bbox": [1, 1, 3, 3], "iscrowd": 0, **defect}])
    pkg = DatasetPackage.from_coco(ann, tmp_path)
    assert warning in pkg.warnings
    target = pkg.split("train").semantic_target(pkg.split("train").images[0])
    expected = CUBE
    if "segmentation" in defect:  # the polygon clipped at x = 8, rasterised by pycocotools
        expected = mask_utils.decode(mask_utils.frPyObjects([[1, 1, 8, 1, 8, 4, 1, 4]], 6, 8)[0]).astype(bool)
    assert (target == 1).tolist() == expected.tolist()


def test_from_coco_annotator_dialect(tmp_path):
    """COCO-Annotator: hex colours, string booleans, 64-bit ids, extra fields."""
    big = 2**40 + 3
    ann = _dialect_export(tmp_path, [{"id": big, "image_id": 1, "category_id": 1, "segmentation": _rle(CUBE),
                                      "area": 9, "bbox": [1, 1, 3, 3], "iscrowd": "false", "isbbox": False,
                                      "color": "#ff0000", "metadata": {}}], color="#c81e1e", isthing="true")
    pkg = DatasetPackage.from_coco(ann, tmp_path)
    assert pkg.taxonomy.category(1).color == (200, 30, 30)
    assert pkg.split("train").instances(pkg.split("train").images[0])[0].annotation_id == big
    text = "\n".join(pkg.warnings)
    assert "'iscrowd' given as a string / boolean / null, read as 0 / 1: 1" in text and "'#rrggbb'" in text


@pytest.mark.parametrize("content, match", [
    ([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.9}], "COCO \\*results\\* file"),
    ({"images": [{"id": 1, "file_name": "a.png", "width": 8, "height": 6}], "categories": [{"id": 1, "name": "x"}],
      "annotations": [{"image_id": 1, "file_name": "a.png", "segments_info": []}]},
     "COCO \\*panoptic\\* file.*segval dataset import format=coco_panoptic"),
    ({"images": [{"id": 1, "file_name": "a.png", "width": 8, "height": 6}], "annotations": [
        {"id": 1, "image_id": 1, "caption": "a cube"}]}, "COCO \\*captions\\* file"),
    ({"image": {"image_id": 1, "file_name": "a.png"}, "annotations": [{"segmentation": {}}]}, "SA-1B per-image file"),
])
def test_from_coco_names_other_kinds_of_file(tmp_path, content, match):
    (tmp_path / "x.json").write_text(json.dumps(content))
    with pytest.raises(DatasetError, match=match):
        DatasetPackage.from_coco(tmp_path / "x.json", tmp_path)


def test_from_coco_given_a_cvat_xml_says_so(tmp_path):
    (tmp_path / "annotations.xml").write_text("<?xml version='1.0'?>\n<annotations><version>1.1</version>"
                                              "</annotations>")
    with pytest.raises(DatasetError, match="not a COCO JSON file: .*annotations.xml is a CVAT XML export; read it "
                                           "with `segval dataset import format=cvat"):
        DatasetPackage.from_coco(tmp_path / "annotations.xml", tmp_path)


# ------------------------------------------------------------------ summary
def test_summary(tmp_path):
    root = _write(tmp_path / "pkg")
    s = summarize(DatasetPackage.open(root))
    tr = s["splits"]["train"]
    assert (tr["images"], tr["annotations"], tr["videos"], tr["pixels"]) == (2, 4, 1, 2 * H * W)
    assert tr["instances"] == {"background": 0, "mug": 2, "cable": 1, "table": 1}
    _, _, expected = _scene()
    mug_px = int((expected == 3).sum())
    assert tr["pixel_share"]["mug"] == pytest.approx(mug_px / (2 * H * W))
    assert sum(tr["pixel_share"].values()) + tr["ignore_share"] == pytest.approx(1.0)
    assert s["splits"]["val"]["instances"]["table"] == 1
    text = format_summary(s)
    assert "mug" in text and "train px%" in text and "val inst" in text


def test_split_pickles_for_dataloader_workers(make_coco_package):
    import pickle

    split = DatasetPackage.open(make_coco_package()).split("train")
    split.semantic_target(split.images[0])  # fills the run-length cache
    clone = pickle.loads(pickle.dumps(split))
    rec = clone.images[0]
    np.testing.assert_array_equal(clone.semantic_target(rec), split.semantic_target(rec))
    np.testing.assert_array_equal(clone.read_image(rec), split.read_image(rec))


def _remap(root):
    """Move the files of _write's package to another layout and describe it with a `splits` mapping."""
    (root / "data").mkdir()
    shutil.move(root / "images" / "train", root / "data" / "photos")
    shutil.move(root / "annotations" / "train.json", root / "data" / "train_coco.json")
    shutil.move(root / "label_maps" / "train", root / "data" / "targets")
    meta = yaml.safe_load((root / "dataset.yaml").read_text())
    meta["splits"] = {"train": {"images": "data/photos", "annotations": "data/train_coco.json",
                                "label_maps": "data/targets"},
                      "val": None}  # the standard layout
    (root / "dataset.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    return meta


def test_splits_mapping_layout(tmp_path):
    _write(tmp_path / "a")
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    _remap(tmp_path / "b")
    a, b = DatasetPackage.open(tmp_path / "a"), DatasetPackage.open(tmp_path / "b")
    assert b.splits == ["train", "val"]
    tb = b.split("train")
    assert tb.images_dir == tmp_path / "b" / "data" / "photos" and tb.has_label_maps
    for s in ("train", "val"):
        for ra, rb in zip(a.split(s).images, b.split(s).images, strict=True):
            assert (a.split(s).read_image(ra) == b.split(s).read_image(rb)).all()
            for src in ("coco", "label_map"):
                assert (a.split(s).semantic_target(ra, src) == b.split(s).semantic_target(rb, src)).all()
    validate_package(b)


@pytest.mark.parametrize("entry, match", [
    ({"images": "../outside"}, r"splits\.train\.images = '../outside' must be a relative path inside"),
    ({"annotations": "/etc/train.json"}, r"splits\.train\.annotations = '/etc/train.json' must be a relative"),
    ({"pictures": "x"}, r"splits\.train has unknown keys \['pictures'\]"),
    ("images/train", r"splits\.train must be a mapping"),
    ({"annotations": "annotations/nope.json"}, r"not found; every split listed in dataset.yaml needs "
                                               r"annotations/nope.json"),
])
def test_splits_mapping_is_validated(tmp_path, entry, match):
    root = _write(tmp_path / "pkg")
    meta = yaml.safe_load((root / "dataset.yaml").read_text())
    meta["splits"] = {"train": entry, "val": None}
    (root / "dataset.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    with pytest.raises(DatasetError, match=match):
        DatasetPackage.open(root)


def test_splits_mapping_link_leaving_the_root_is_refused(tmp_path):
    root = _write(tmp_path / "pkg")
    (tmp_path / "elsewhere").mkdir()
    (root / "linked").symlink_to(tmp_path / "elsewhere")
    meta = yaml.safe_load((root / "dataset.yaml").read_text())
    meta["splits"] = {"train": {"images": "linked"}, "val": None}
    (root / "dataset.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    with pytest.raises(DatasetError, match=r"splits\.train\.images = 'linked' resolves to .*outside the package"):
        DatasetPackage.open(root)


def test_new_version_of_a_mapped_package_writes_where_the_mapping_says(tmp_path):
    from segval.dataset.versioning import write_version_copy

    root = _write(tmp_path / "pkg")
    _remap(root)
    coco = json.loads((root / "data" / "train_coco.json").read_text())
    coco["annotations"] = coco["annotations"][:1]
    write_version_copy(root, tmp_path / "new", version="1.3.0", annotations={"train": coco})
    new = DatasetPackage.open(tmp_path / "new")
    assert new.version == "1.3.0" and new.split("train").num_annotations == 1
    assert not (tmp_path / "new" / "annotations" / "train.json").exists()


def test_open_given_an_export_says_what_it_is(tmp_path):
    js = _dialect_export(tmp_path, [])
    with pytest.raises(DatasetError, match=r"is a file, not a package folder: it is a COCO file; run with data=coco"):
        DatasetPackage.open(js)
    (tmp_path / "annotations.xml").write_text("<annotations><version>1.1</version></annotations>")
    with pytest.raises(DatasetError, match=r"is a CVAT XML export; read it with `segval dataset import format=cvat"):
        DatasetPackage.open(tmp_path / "annotations.xml")
    voc = tmp_path / "VOC"
    (voc / "SegmentationClass").mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"this is no segval package: .*VOC is a PASCAL VOC-style folder; read it "
                                           r"with `segval dataset import format=voc source="):
        DatasetPackage.open(voc)
