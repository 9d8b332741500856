"""COCO folder layouts (COCO, Roboflow, mmdet, segval export) and identify(): what an export is."""

from __future__ import annotations

import pytest

from segval.dataset.formats.detect import identify
from segval.dataset.formats.folders import find_coco_splits
from segval.errors import DatasetError

from .helpers import write_json

COCO = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "cube"}]}


def test_coco_2017_layout(tmp_path):
    for name in ("instances_train2017", "instances_val2017", "captions_train2017", "person_keypoints_val2017",
                 "panoptic_val2017"):
        write_json(tmp_path / "annotations" / f"{name}.json", COCO)
    (tmp_path / "train2017").mkdir()
    (tmp_path / "val2017").mkdir()
    splits, notes = find_coco_splits(tmp_path)
    assert [(s.split, s.annotations.name, s.images.name) for s in splits] == [
        ("train", "instances_train2017.json", "train2017"), ("val", "instances_val2017.json", "val2017")]
    text = " ".join(notes)
    assert "captions_train2017.json left out: COCO captions" in text and "person keypoints" in text
    assert "format=coco_panoptic" in text and "the year dropped" in text


def test_roboflow_layout(tmp_path):
    for s in ("train", "valid", "test"):
        write_json(tmp_path / s / "_annotations.coco.json", COCO)
    splits, _ = find_coco_splits(tmp_path)
    assert [(s.split, s.images.name) for s in splits] == [("test", "test"), ("train", "train"), ("valid", "valid")]


def test_mmdet_layout(tmp_path):
    write_json(tmp_path / "annotations" / "train.json", COCO)
    write_json(tmp_path / "annotations" / "val.json", COCO)
    (tmp_path / "images" / "train").mkdir(parents=True)
    (tmp_path / "images" / "val").mkdir()
    splits, notes = find_coco_splits(tmp_path)
    assert [(s.split, s.images.relative_to(tmp_path).as_posix()) for s in splits] == [
        ("train", "images/train"), ("val", "images/val")]
    assert notes == []


def test_single_json_and_nothing(tmp_path):
    write_json(tmp_path / "annotations.json", COCO)
    (splits, _) = find_coco_splits(tmp_path)
    assert splits[0].split == "train" and splits[0].images == tmp_path
    write_json(tmp_path / "other.json", COCO)
    with pytest.raises(DatasetError, match="no COCO layout recognised .*2 JSON files at the top"):
        find_coco_splits(tmp_path)


def test_duplicate_split_names(tmp_path):
    write_json(tmp_path / "annotations" / "instances_train2017.json", COCO)
    write_json(tmp_path / "annotations" / "instances_train2014.json", COCO)
    with pytest.raises(DatasetError, match=r"split names \['train'\] come from several annotation files"):
        find_coco_splits(tmp_path)


def test_identify(tmp_path):
    pan = write_json(tmp_path / "panoptic_val.json", {"images": [], "annotations": [
        {"image_id": 1, "file_name": "1.png", "segments_info": []}], "categories": []})
    got = identify(pan)
    assert got.format == "coco_panoptic" and "format=coco_panoptic" in got.message
    assert identify(write_json(tmp_path / "i.json", COCO)).format == "coco"
    res = identify(write_json(tmp_path / "r.json", [{"image_id": 1, "score": 0.3, "bbox": [0, 0, 1, 1]}]))
    assert res.format is None and "results" in res.message
    (tmp_path / "a.xml").write_text('<?xml version="1.0"?><annotations><version>1.1</version></annotations>')
    assert identify(tmp_path / "a.xml").format == "cvat"
    (tmp_path / "cv" / "SegmentationClass").mkdir(parents=True)
    (tmp_path / "cv" / "labelmap.txt").write_text("background:0,0,0::\n")
    assert identify(tmp_path / "cv").format == "cvat_masks"
    (tmp_path / "voc" / "SegmentationClass").mkdir(parents=True)
    (tmp_path / "voc" / "Annotations").mkdir()
    assert identify(tmp_path / "voc").format == "voc"
    write_json(tmp_path / "lm" / "a.json", {"shapes": [], "imagePath": "a.jpg"})
    assert identify(tmp_path / "lm").format == "labelme"
    assert identify(write_json(tmp_path / "ls.json", [{"id": 1, "data": {"image": "x"}, "annotations": []}])).format \
        == "labelstudio"


def test_the_wrong_format_names_the_right_one(tmp_path):
    from segval.dataset.formats.read import read_export

    coco = tmp_path / "export" / "annotations.json"
    write_json(coco, {**COCO, "images": [{"id": 1, "file_name": "a.png", "width": 4, "height": 4}]})
    with pytest.raises(DatasetError) as err:  # the default format=labelme on a COCO file
        read_export("labelme", coco)
    assert "format=labelme reads a folder" in str(err.value)
    assert "format=labelme was used, but" in str(err.value) and "COCO instance-segmentation file" in str(err.value)
    write_json(tmp_path / "lm" / "a.json", {"shapes": [], "imagePath": "a.png"})
    with pytest.raises(DatasetError) as err:  # a labelme folder read as COCO: its own message names labelme once
        read_export("coco", tmp_path / "lm")
    assert str(err.value).count("format=labelme") == 1
