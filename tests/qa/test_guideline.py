"""The guideline's content (segval.qa.guideline): classes, rules, hard examples, pairs, the taxonomy checks and the
into-package check, on a hand-made package with known boxes and videos."""

from __future__ import annotations

from pathlib import Path

import pytest

from segval.dataset.package import DatasetPackage
from segval.errors import ConfigError, DatasetError
from segval.qa.guideline import GuidelineConfig, build_guideline, check_into_package, confusion_pairs

from tests.qa.guideline_package import H, W, write_package


@pytest.fixture(scope="module")
def pkg(tmp_path_factory: pytest.TempPathFactory) -> DatasetPackage:
    return DatasetPackage.open(write_package(tmp_path_factory.mktemp("g") / "arms"))


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
