"""One test per bad input: the error type, and that the message names the file / id."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from segval.dataset import DatasetPackage, validate_package
from segval.errors import DatasetError

FIXTURE_H, FIXTURE_W = 6, 8  # size of the make_coco_package image


@pytest.fixture
def fixture_rle(make_coco_package):
    return make_coco_package.rle


@pytest.fixture
def fixture_masks(make_coco_package):
    return make_coco_package.masks


def _train(root, **kw):
    pkg = DatasetPackage.open(root, **kw)
    split = pkg.split("train")
    return split, split.images[0]


# ---------------------------------------------------------------- eager checks (at open)
def test_missing_dataset_yaml(make_coco_package):
    root = make_coco_package()
    (root / "dataset.yaml").unlink()
    with pytest.raises(DatasetError, match="dataset.yaml not found") as e:
        DatasetPackage.open(root)
    assert str(root / "dataset.yaml") in str(e.value)
    assert e.value.path == str(root / "dataset.yaml")


def test_missing_dataset_yaml_hint_for_plain_folder(tmp_path):
    with pytest.raises(DatasetError, match="holding dataset.yaml"):
        DatasetPackage.open(tmp_path)


def test_missing_split_file(make_coco_package):
    root = make_coco_package(meta={"splits": ["train", "val"]})
    with pytest.raises(DatasetError) as e:
        DatasetPackage.open(root)
    msg = str(e.value)
    assert str(root / "annotations" / "val.json") in msg
    assert "remove 'val'" in msg


def test_invalid_json_line_and_column(make_coco_package):
    root = make_coco_package(annotation_text='{\n  "images": [\n    {"id": 1,, "file_name": "a.png"}\n  ]\n}\n')
    with pytest.raises(DatasetError) as e:
        DatasetPackage.open(root)
    msg = str(e.value)
    assert "train.json" in msg
    assert "line 3, column 14" in msg  # the second comma


def test_unknown_image(make_coco_package, fixture_rle, fixture_masks):
    cube, _ = fixture_masks()
    root = make_coco_package(annotations=[{"id": 7, "image_id": 99, "category_id": 1, "segmentation": fixture_rle(cube)}])
    with pytest.raises(DatasetError) as e:
        DatasetPackage.open(root)
    msg = str(e.value)
    assert "train.json" in msg and "annotation id 7" in msg and "image id 99" in msg
    assert e.value.annotation_id == 7


def test_unknown_category(make_coco_package, fixture_rle, fixture_masks):
    cube, _ = fixture_masks()
    root = make_coco_package(annotations=[{"id": 7, "image_id": 1, "category_id": 3, "segmentation": fixture_rle(cube)}])
    with pytest.raises(DatasetError) as e:
        DatasetPackage.open(root)
    msg = str(e.value)
    assert "train.json" in msg and "annotation id 7" in msg and "category id 3" in msg


def test_duplicate_image_id(make_coco_package):
    images = [
        {"id": 1, "file_name": "a.png", "width": FIXTURE_W, "height": FIXTURE_H},
        {"id": 1, "file_name": "b.png", "width": FIXTURE_W, "height": FIXTURE_H},
    ]
    root = make_coco_package(images=images)
    with pytest.raises(DatasetError, match="duplicate image id") as e:
        DatasetPackage.open(root)
    assert "train.json" in str(e.value) and "image id 1" in str(e.value)


def test_duplicate_annotation_id(make_coco_package, fixture_rle, fixture_masks):
    cube, cable = fixture_masks()
    anns = [
        {"id": 5, "image_id": 1, "category_id": 1, "segmentation": fixture_rle(cube)},
        {"id": 5, "image_id": 1, "category_id": 4, "segmentation": fixture_rle(cable)},
    ]
    root = make_coco_package(annotations=anns)
    with pytest.raises(DatasetError, match="duplicate annotation id") as e:
        DatasetPackage.open(root)
    assert "train.json" in str(e.value) and "annotation id 5" in str(e.value)


@pytest.mark.parametrize("file_name", ["../x.png", "sub/../../x.png", "/etc/passwd", "C:/x.png"])
def test_file_name_escaping(make_coco_package, file_name):
    root = make_coco_package(images=[{"id": 3, "file_name": file_name, "width": FIXTURE_W, "height": FIXTURE_H}],
                             annotations=[], label_maps=None)
    with pytest.raises(DatasetError) as e:
        DatasetPackage.open(root)
    msg = str(e.value)
    assert "image id 3" in msg and repr(file_name) in msg and "train.json" in msg


def test_file_name_escaping_through_symlink(make_coco_package, tmp_path):
    outside = tmp_path / "outside.png"
    Image.fromarray(np.zeros((FIXTURE_H, FIXTURE_W, 3), np.uint8)).save(outside)
    root = make_coco_package(images=[{"id": 3, "file_name": "link.png", "width": FIXTURE_W, "height": FIXTURE_H}],
                             annotations=[], label_maps=None, image_files={})
    (root / "images" / "train" / "link.png").symlink_to(outside)
    split, rec = _train(root)
    with pytest.raises(DatasetError, match="outside the image folder") as e:
        split.read_image(rec)
    assert "image id 3" in str(e.value)


# ---------------------------------------------------------------- lazy checks (when read; and validate)
def test_missing_image(make_coco_package):
    root = make_coco_package(image_files={})
    split, rec = _train(root)
    with pytest.raises(DatasetError, match="image file not found") as e:
        split.read_image(rec)
    assert str(root / "images" / "train" / "a.png") in str(e.value) and "image id 1" in str(e.value)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_image(make_coco_package, fmt):
    rng = np.random.default_rng(1)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, fmt)
    data = buf.getvalue()
    root = make_coco_package(images=[{"id": 1, "file_name": "a.img", "width": 64, "height": 64}], annotations=[],
                             label_maps=None, image_files={"a.img": data[: len(data) // 2]})
    split, rec = _train(root)
    with pytest.raises(DatasetError, match="truncated or corrupt") as e:
        split.read_image(rec)
    assert "a.img" in str(e.value) and "image id 1" in str(e.value)


def test_unreadable_image(make_coco_package):
    root = make_coco_package(image_files={"a.png": b"this is not an image"}, label_maps=None)
    split, rec = _train(root)
    with pytest.raises(DatasetError, match="cannot read the image") as e:
        split.read_image(rec)
    assert "a.png" in str(e.value)


def test_image_size_differs_from_coco(make_coco_package):
    root = make_coco_package(image_files={"a.png": np.zeros((FIXTURE_H + 1, FIXTURE_W, 3), np.uint8)})
    split, rec = _train(root)
    with pytest.raises(DatasetError) as e:
        split.read_image(rec)
    msg = str(e.value)
    assert "a.png" in msg and "image id 1" in msg
    assert f"{FIXTURE_W}x{FIXTURE_H + 1}" in msg and f"{FIXTURE_W}x{FIXTURE_H}" in msg


def test_pixel_limit_checked_before_decoding(make_coco_package, monkeypatch):
    root = make_coco_package()
    split, rec = _train(root, max_pixels=FIXTURE_W * FIXTURE_H - 1)

    def no_decode(*a, **k):  # the limit must fire from the header alone
        raise AssertionError("decoded an image over the pixel limit")

    monkeypatch.setattr(Image.Image, "load", no_decode)
    with pytest.raises(DatasetError, match="over the limit of 47") as e:
        split.read_image(rec)
    assert "a.png" in str(e.value) and "max_pixels" in str(e.value)


def test_pillow_bomb_error_is_explained(make_coco_package, monkeypatch):
    root = make_coco_package()
    split, rec = _train(root)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10)  # Pillow raises beyond 2x this
    with pytest.raises(DatasetError, match="Pillow's pixel limit") as e:
        split.read_image(rec)
    assert "a.png" in str(e.value)


def test_rle_size_differs_from_image(make_coco_package, fixture_rle):
    mask = np.zeros((FIXTURE_H, FIXTURE_W + 2), bool)
    mask[1:3, 1:3] = True
    root = make_coco_package(annotations=[{"id": 21, "image_id": 1, "category_id": 1, "segmentation": fixture_rle(mask)}],
                             label_maps=None)
    split, rec = _train(root)
    with pytest.raises(DatasetError) as e:
        split.semantic_target(rec)
    msg = str(e.value)
    assert "train.json" in msg and "annotation id 21" in msg and "image id 1" in msg
    assert f"RLE size [{FIXTURE_H}, {FIXTURE_W + 2}]" in msg and f"image size [{FIXTURE_H}, {FIXTURE_W}]" in msg


@pytest.mark.parametrize("counts", ["P13700000", "zzz", "", "abc!", [1, 2, 3], [-5, 53]])
def test_corrupt_rle_counts(make_coco_package, counts):
    seg = {"size": [FIXTURE_H, FIXTURE_W], "counts": counts}
    root = make_coco_package(annotations=[{"id": 22, "image_id": 1, "category_id": 1, "segmentation": seg}],
                             label_maps=None)
    split, rec = _train(root)
    with pytest.raises(DatasetError, match="corrupt RLE counts") as e:
        split.instances(rec)
    assert "train.json" in str(e.value) and "annotation id 22" in str(e.value)
    with pytest.raises(DatasetError, match="annotation id 22"):
        split.semantic_target(rec)


@pytest.mark.parametrize("poly", [[[1, 1, 5, 1]], [[1, 1, 5, 1, 3, 4], [2, 2]], [[1, 1, 5, 1, 3]]])
def test_polygon_with_fewer_than_3_points(make_coco_package, poly):
    root = make_coco_package(annotations=[{"id": 23, "image_id": 1, "category_id": 1, "segmentation": poly}],
                             label_maps=None)
    split, rec = _train(root)
    with pytest.raises(DatasetError, match="at least 3 points|odd number") as e:
        split.semantic_target(rec)
    assert "train.json" in str(e.value) and "annotation id 23" in str(e.value)


def test_label_map_bad_value(make_coco_package):
    lm = np.zeros((FIXTURE_H, FIXTURE_W), np.uint8)
    lm[0, 0] = 3  # not a category id
    lm[1, 1] = 200
    lm[2, 2] = 255  # ignore is fine
    root = make_coco_package(label_maps={"a.png": lm})
    split, rec = _train(root)
    with pytest.raises(DatasetError) as e:
        split.semantic_target(rec, source="label_map")
    msg = str(e.value)
    assert str(root / "label_maps" / "train" / "a.png") in msg and "[3, 200]" in msg and "image id 1" in msg


def test_label_map_size_differs_from_image(make_coco_package):
    root = make_coco_package(label_maps={"a.png": np.zeros((FIXTURE_H, FIXTURE_W - 1), np.uint8)})
    split, rec = _train(root)
    with pytest.raises(DatasetError) as e:
        split.semantic_target(rec, source="label_map")
    msg = str(e.value)
    assert "label_maps" in msg and "a.png" in msg and f"{FIXTURE_W - 1}x{FIXTURE_H}" in msg


def test_label_map_not_8bit(make_coco_package):
    root = make_coco_package(label_maps=None)
    d = root / "label_maps" / "train"
    d.mkdir(parents=True)
    Image.fromarray(np.zeros((FIXTURE_H, FIXTURE_W, 3), np.uint8)).save(d / "a.png")
    split, rec = _train(root)
    with pytest.raises(DatasetError, match="single-channel 8-bit"):
        split.semantic_target(rec, source="label_map")


# ---------------------------------------------------------------- validate collects everything
def test_validate_lists_every_problem(make_coco_package):
    images = [{"id": i, "file_name": f"{i}.png", "width": FIXTURE_W, "height": FIXTURE_H} for i in (1, 2, 3)]
    anns = [
        {"id": 31, "image_id": 1, "category_id": 1, "segmentation": {"size": [2, 2], "counts": [0, 4]}},
        {"id": 32, "image_id": 2, "category_id": 1, "segmentation": [[0, 0, 1, 1]]},
        {"id": 33, "image_id": 3, "category_id": 1, "segmentation": [[0, 0, 4, 0, 4, 4]]},  # fine
    ]
    files = {"1.png": np.zeros((FIXTURE_H, FIXTURE_W, 3), np.uint8)}  # 2.png and 3.png missing
    root = make_coco_package(images=images, annotations=anns, image_files=files, label_maps=None)
    pkg = DatasetPackage.open(root)
    with pytest.raises(DatasetError) as e:
        validate_package(pkg, progress=False)
    msg = str(e.value)
    assert "4 problem(s)" in msg
    for s in ("annotation id 31", "annotation id 32", "image id 2", "image id 3", "2.png", "3.png"):
        assert s in msg
    assert len(e.value.problems) == 4


def test_validate_caps_the_list(make_coco_package):
    images = [{"id": i, "file_name": f"{i}.png", "width": FIXTURE_W, "height": FIXTURE_H} for i in range(1, 61)]
    root = make_coco_package(images=images, annotations=[], image_files={}, label_maps=None)
    with pytest.raises(DatasetError) as e:
        validate_package(DatasetPackage.open(root), progress=False)
    msg = str(e.value)
    assert "60 problem(s)" in msg and "and 10 more" in msg
    assert msg.count("image file not found") == 50


def test_validate_passes_clean_package(make_coco_package, capsys):
    validate_package(DatasetPackage.open(make_coco_package()), progress=True)
    assert "1/1" in capsys.readouterr().err  # the progress bar


def test_invalid_json_via_from_coco(tmp_path):
    p = tmp_path / "coco.json"
    p.write_text(json.dumps({"images": []})[:-1])
    with pytest.raises(DatasetError, match=r"line 1, column \d+") as e:
        DatasetPackage.from_coco(p, tmp_path)
    assert "coco.json" in str(e.value)
