"""The guideline's content (segval.qa.guideline): scanning, example selection, rules, hard examples, pairs and the
taxonomy checks, on a hand-made package with known boxes and videos."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from segval.dataset.package import DatasetPackage
from segval.errors import ConfigError, DatasetError
from segval.qa.guideline import (
    GuidelineConfig,
    InstanceRef,
    build_guideline,
    check_into_package,
    confusion_pairs,
    scan_instances,
    select_diverse,
)

from tests.qa.guideline_package import H, W, write_package


@pytest.fixture(scope="module")
def pkg(tmp_path_factory: pytest.TempPathFactory) -> DatasetPackage:
    return DatasetPackage.open(write_package(tmp_path_factory.mktemp("g") / "arms"))


def ref(i: int, video: int | None, area: int, *, occ: float = 0.0, cx: float = 0.5, side: int = 30,
        image: int | None = None) -> InstanceRef:
    return InstanceRef("train", i if image is None else image, f"{i}.png", video, i, 1, (0, 0, side, side), area,
                       occ, cx, 0.5)


# ---------------------------------------------------------------------------------------- selection
def test_selection_is_deterministic_and_spreads_over_videos() -> None:
    # 12 instances in 4 videos (3 each), sizes and positions varied
    refs = [ref(i, i % 4, 900 + 97 * i, occ=(i % 3) / 3, cx=(i % 5) / 5) for i in range(12)]
    picks = select_diverse(refs, 4)
    assert len({r.video_id for r in picks}) == 4  # four videos: never two from one while another is unused
    for seed in range(5):  # the input order does not matter
        shuffled = refs[:]
        random.Random(seed).shuffle(shuffled)
        assert select_diverse(shuffled, 4) == picks
    five = select_diverse(refs, 5)
    assert five[:4] == picks and len({r.image_id for r in five}) == 5  # a 5th video is not there: another image


def test_selection_order_is_farthest_first_from_the_median_size() -> None:
    refs = [ref(0, 0, 100), ref(1, 1, 100), ref(2, 2, 100), ref(3, 3, 1000), ref(4, 4, 10000)]
    # first: median size (100; the first of equals), then the largest (farthest in log size), then 1000
    assert [r.image_id for r in select_diverse(refs, 3)] == [0, 4, 3]


def test_selection_within_one_video_and_one_image() -> None:
    same_video = [ref(i, 7, 400 + 10 * i) for i in range(4)]
    assert len(select_diverse(same_video, 3)) == 3  # only one video: still three examples, three images
    same_image = [ref(i, None, 400 + 300 * i, image=5) for i in range(3)]
    # log areas 5.99, 6.55, 6.91: the median (700) first, then 400 (0.61 away in normalised log size), then 1000
    assert [r.annotation_id for r in select_diverse(same_image, 5)] == [1, 0, 2]
    assert select_diverse([], 4) == [] and select_diverse(same_video, 0) == []


def test_selection_prefers_instances_above_the_minimum_size() -> None:
    small = [ref(i, i, 50, side=8) for i in range(4)]
    big = [ref(10 + i, 10 + i, 900, side=30) for i in range(3)]
    assert {r.image_id for r in select_diverse(small + big, 3)} == {10, 11, 12}
    assert len(select_diverse(small + big, 5)) == 5  # not enough big ones: the small ones fill in
    # ... but never at the cost of a second crop from one video: two big ones share video 20
    mixed = [ref(20, 20, 900), ref(21, 20, 950), ref(22, 22, 50, side=8)]
    assert {r.video_id for r in select_diverse(mixed, 2)} == {20, 22}


# ---------------------------------------------------------------------------------------- scan
def test_scan_boxes_occlusion_and_pixels(pkg: DatasetPackage) -> None:
    scan = scan_instances(pkg)
    assert scan.images == 8 and len(scan.instances) == 24  # 3 instances per image, background and ghost have none
    arm, gripper, cable = scan.instances[:3]
    assert arm.bbox == (2, 2, 8, 8) and arm.area == 64 and arm.video_id == 0
    assert arm.occlusion == pytest.approx(6 / 28)  # its right column (6 of 28 outline px) touches the gripper
    assert gripper.occlusion == pytest.approx(6 / 20)
    assert cable.occlusion == pytest.approx(2 / 48)  # a 48x1 row: its two ends touch the image border
    assert arm.cx == pytest.approx(6 / W) and arm.cy == pytest.approx(6 / H)
    # pixel counts = the semantic label maps' (independent: SplitData.semantic_target + the lut back to ids)
    expected = np.zeros(256, np.int64)
    for s in pkg.splits:
        sd = pkg.split(s)
        for rec in sd.images:
            expected += np.bincount(np.asarray(pkg.taxonomy.ids)[sd.semantic_target(rec)].ravel(), minlength=256)
    assert np.array_equal(scan.pixels, expected)


# ---------------------------------------------------------------------------------------- the document
def test_guideline_without_run(pkg: DatasetPackage) -> None:
    content = build_guideline(pkg, config=GuidelineConfig(examples=4))
    doc = content.doc
    by = {c["name"]: c for c in doc["classes"]}
    assert [c["id"] for c in doc["classes"]] == [0, 1, 2, 3, 4]
    total = 8 * H * W
    assert by["cable"]["pixel_share"] == pytest.approx(8 * 48 / total)
    assert sum(c["pixel_share"] for c in doc["classes"]) == pytest.approx(1.0)
    arm = by["robot_arm"]
    assert arm["description"] == "the links and joints of the arm" and arm["instances"] == 8
    assert len(arm["examples"]) == 4
    units = [(e["split"], e["video_id"] if e["video_id"] is not None else ("image", e["image_id"]))
             for e in arm["examples"]]
    assert len(set(units)) == 4  # five videos (3 + val's + the image without one) for four crops: all different
    assert by["ghost"]["no_examples"] and by["ghost"]["examples"] == []
    assert not by["background"]["no_examples"] and by["background"]["rules"][0]["kind"] == "background"
    assert [r["kind"] for r in by["cable"]["rules"]] == ["visible_pixels"]
    assert any(r["kind"] == "split" and "part of robot_arm" in r["text"] for r in by["gripper"]["rules"])
    assert any(r["kind"] == "split" and "gripper" in r["text"] for r in arm["rules"])
    assert by["ghost"]["rules"] == []
    # no run, no queue: no hard examples, and the document says why
    assert doc["hard_examples"] is False and all(c["hard"] is None for c in doc["classes"])
    assert any("no hard examples" in n for n in doc["notes"]) and doc["pairs"] == []
    # minimum size 20x20: arms of 8, 11, 14, 17 px and every 6x6 gripper are below; the 48 px cable (thin) is not
    assert doc["min_size"]["below"] == {"robot_arm": 4, "gripper": 8}
    assert doc["min_size"]["examples"][0]["area"] == 36  # the smallest instance: a gripper
    assert doc["dataset"]["content_hash"] and doc["dataset"]["version"] == "1.0.0"
    # every crop the document names exists, with the instance outlined
    keys = [e["key"] for c in doc["classes"] for e in c["examples"]] + [e["key"] for e in doc["min_size"]["examples"]]
    assert set(keys) <= set(content.crops)
    first = arm["examples"][0]
    crop = content.crops[first["key"]]
    assert crop.outlines and crop.outlines[0][0].sum() == first["area"]


def _queue() -> dict:
    return {"split": "train", "dataset": {"name": "arms", "version": "1.0.0"},
            "items": [{"rank": 1, "item_id": "a", "image_id": 3, "class": "gripper", "category_id": 2,
                       "annotation_ids": [8], "region": [19, 2, 6, 6], "reason": "labelled gripper in 1 frame"},
                      {"rank": 2, "item_id": "b", "image_id": 99, "class": "gripper", "category_id": 2,
                       "annotation_ids": [], "region": None, "reason": "not in this version"}],
            "label_confusions": [{"pair": ["gripper", "robot_arm"], "annotations": 5,
                                  "directions": {"gripper->robot_arm": 3, "robot_arm->gripper": 2}, "images": [3, 4]}]}


def _findings(names=("background", "robot_arm", "gripper", "cable", "ghost")) -> dict:
    return {"split": "val", "dataset": {"class_names": list(names), "taxonomy_ids": [0, 1, 2, 3, 4], "version": "1.0.0"},
            "classes": [{"name": "cable", "status": "weak", "worst_images": [{"image_id": 8, "reason": "120 px missed"}],
                         "causes": [{"cause": "confusion", "evidence": {"partner": "background", "pixels": 120,
                                                                        "share_of_gt": 0.4, "symmetric": False}}]}]}


def test_hard_examples_and_pairs_from_a_run_and_a_queue(pkg: DatasetPackage) -> None:
    per_image = [{"image_id": 8, "disagree_robot_arm": 30, "label_quality": 0.5}]
    doc = build_guideline(pkg, findings=_findings(), per_image=per_image, queue=_queue(), run_split="val").doc
    by = {c["name"]: c for c in doc["classes"]}
    hard = by["gripper"]["hard"]
    assert [h["image_id"] for h in hard] == [3] and hard[0]["source"] == "queue"
    assert "labelled gripper in 1 frame" in hard[0]["reason"] and hard[0]["file_name"] == "train2.png"
    assert any("not in this package" in n for n in doc["notes"])  # image 99
    assert [(h["source"], h["image_id"]) for h in by["cable"]["hard"]] == [("findings", 8)]
    assert [(h["source"], h["image_id"]) for h in by["robot_arm"]["hard"]] == [("per_image", 8)]
    assert by["ghost"]["hard"] == [] and doc["hard_examples"] is True
    pairs = {tuple(p["pair"]): p for p in doc["pairs"]}
    assert list(pairs) == [("gripper", "robot_arm"), ("background", "cable")]  # most annotations first
    p = pairs[("gripper", "robot_arm")]
    assert p["annotations"] == 5 and p["images"] == [3, 4]
    # the crops of each class come from the images the annotators disagreed on (3, 4) first
    assert [k.split("_")[2] for k in p["crops"]["gripper"]] == ["3", "4"]
    assert pairs[("background", "cable")]["model"][0]["pixels"] == 120


def test_confusion_pairs_merge_both_sources() -> None:
    q = {"label_confusions": [{"pair": ["a", "b"], "annotations": 2, "directions": {"a->b": 2, "b->a": 0},
                               "images": [1]}]}
    f = {"classes": [{"name": "b", "causes": [{"cause": "confusion", "evidence": {"partner": "a", "pixels": 9}}]},
                     {"name": "c", "causes": [{"cause": "few_examples", "evidence": {}}]}]}
    out = confusion_pairs(f, q)
    assert len(out) == 1 and out[0]["pair"] == ["a", "b"] and out[0]["annotations"] == 2
    assert out[0]["model"] == [{"class": "b", "partner": "a", "pixels": 9, "share": None, "symmetric": False}]


def test_inputs_of_another_taxonomy_are_refused(pkg: DatasetPackage) -> None:
    with pytest.raises(DatasetError, match="another taxonomy") as err:
        build_guideline(pkg, findings=_findings(("background", "mug", "gripper", "cable", "ghost")),
                        sources={"findings": "run/findings.json"})
    assert "run/findings.json" in str(err.value)
    bad_queue = _queue()
    bad_queue["items"][0]["class"] = "robot_arm"  # id 2 is gripper here
    with pytest.raises(DatasetError, match="queue was built on another taxonomy"):
        build_guideline(pkg, queue=bad_queue)
    with pytest.raises(DatasetError, match="another taxonomy"):
        build_guideline(pkg, agreement={"per_class": {"mug": 0.5}})
    with pytest.raises(ConfigError, match="min_size"):
        GuidelineConfig(min_size=(20,))


def test_into_package_refuses_a_read_only_release(pkg: DatasetPackage, tmp_path: Path) -> None:
    import shutil
    import stat

    root = shutil.copytree(pkg.root, tmp_path / "rel")
    check_into_package(DatasetPackage.open(root))  # writable: fine
    (root / "dataset.yaml").chmod(stat.S_IRUSR | stat.S_IRGRP)
    try:
        with pytest.raises(ConfigError, match="read-only"):
            check_into_package(DatasetPackage.open(root))
    finally:
        (root / "dataset.yaml").chmod(0o644)
