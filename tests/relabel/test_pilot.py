"""The guideline pilot (segval.relabel.pilot): the plan and its task files, and the score on hand-made returned
sets (COCO files as CVAT exports them, and a Label Studio export) with known agreement."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from segval.dataset.package import DatasetPackage
from segval.errors import ConfigError, DatasetError
from segval.relabel.pilot import annotator_names, format_pilot, plan_pilot, score_pilot, write_tasks

from tests.qa.guideline_package import write_package
from tests.relabel.pilot_sets import coco_set, ls_set, masks_of


@pytest.fixture(scope="module")
def pkg(tmp_path_factory: pytest.TempPathFactory) -> DatasetPackage:
    return DatasetPackage.open(write_package(tmp_path_factory.mktemp("p") / "arms"))


def test_plan_and_task_files(pkg: DatasetPackage, tmp_path: Path) -> None:
    plan = plan_pilot(pkg, "train", images=4, annotators=["ann", "bob", "cy"], seed=0)
    assert plan["status"] == "planned" and plan["annotators"] == ["ann", "bob", "cy"]
    ids = [im["image_id"] for im in plan["images"]]
    assert len(ids) == 4 and ids == sorted(ids)
    videos = [pkg.split("train").image(i).video_id for i in ids]
    assert len(set(videos)) == 4  # 4 videos (3 + an image of its own) for 4 images: one each
    assert plan_pilot(pkg, "train", images=4, annotators=3, seed=0)["images"] == plan["images"]  # deterministic
    files = write_tasks(plan, pkg, tmp_path / "tasks")
    assert set(files) == {"ann", "bob", "cy"}
    tasks = json.loads(Path(files["bob"]["labelstudio"]).read_text())
    assert [t["data"]["image_id"] for t in tasks] == ids
    assert all(t["predictions"] == [] and t["data"]["annotator"] == "bob" for t in tasks)  # labelled from scratch
    assert "robot_arm" in Path(files["bob"]["label_config"]).read_text()
    with zipfile.ZipFile(files["cy"]["cvat"]) as z:
        coco = json.loads(z.read("annotations/instances_default.json"))
    assert [im["id"] for im in coco["images"]] == ids and coco["annotations"] == []
    assert all((Path(files["cy"]["cvat_images"]) / im["file_name"]).is_file() for im in coco["images"])
    prefilled = write_tasks(plan, pkg, tmp_path / "pre", fmt="labelstudio", prefill=True)
    assert json.loads(Path(prefilled["ann"]["labelstudio"]).read_text())[0]["predictions"]
    assert "cvat" not in prefilled["ann"]
    with pytest.raises(ConfigError, match="at least two annotators"):
        annotator_names(1)
    with pytest.raises(ConfigError, match="larger than split"):
        plan_pilot(pkg, "train", images=50)


def test_score_flags_exactly_the_classes_under_the_threshold(pkg: DatasetPackage, tmp_path: Path) -> None:
    plan = plan_pilot(pkg, "train", images=4, annotators=3)
    ids = [im["image_id"] for im in plan["images"]]
    a = coco_set(pkg, ids, tmp_path / "a.json")
    b = ls_set(pkg, ids, tmp_path / "b.json")
    c = coco_set(pkg, ids, tmp_path / "c.json", half_gripper=True)
    doc = score_pilot(plan, pkg, [a, b, c])
    iou = {x["name"]: x["IoU"] for x in doc["classes"]}
    # pairs (a, b) agree fully, (a, c) and (b, c) on 18 of 36 gripper px per image: (1 + 0.5 + 0.5) / 3
    assert iou["gripper"] == pytest.approx(2 / 3)
    assert iou["robot_arm"] == 1.0 and iou["cable"] == 1.0 and iou["ghost"] is None
    sd = pkg.split("train")
    bg = [(sd.image(i).width * sd.image(i).height) - sum(int(m.sum()) for _, m in masks_of(pkg, i)) for i in ids]
    bg_iou = sum(bg) / (sum(bg) + 18 * len(ids))  # c adds 18 background px per image
    assert iou["background"] == pytest.approx((1 + 2 * bg_iou) / 3)
    assert doc["status"] == "failed" and doc["flagged_classes"] == ["gripper"] and doc["not_measured"] == ["ghost"]
    (sec,) = doc["sections_to_clarify"]
    assert sec["section"] == "Class 2: gripper" and sec["anchor"] == "class-2"
    assert sec["partner"] == "background" and sec["partner_pixels"] == 18 * 2 * len(ids)  # 2 pairs disagree
    assert sec["pair_section"] == "background vs gripper"
    assert [im["IoU"] for im in sec["images"]] == [pytest.approx(2 / 3)] * 3
    assert "**Class 2: gripper** (66.7 %)" in format_pilot(doc)
    # a lower threshold passes the same sets
    assert score_pilot(plan, pkg, [a, b, c], threshold=0.6)["status"] == "passed"


def test_sets_with_different_images_are_refused(pkg: DatasetPackage, tmp_path: Path) -> None:
    plan = plan_pilot(pkg, "train", images=4, annotators=2)
    ids = [im["image_id"] for im in plan["images"]]
    a = coco_set(pkg, ids, tmp_path / "a.json")
    short = coco_set(pkg, ids[:3], tmp_path / "short.json")
    missing = pkg.split("train").image(ids[3]).file_name
    with pytest.raises(DatasetError, match=rf"short.json lacks 1 pilot image\(s\): {ids[3]} \({missing}\)"):
        score_pilot(plan, pkg, [a, short])
    other = next(r.id for r in pkg.split("train").images if r.id not in ids)
    extra = ls_set(pkg, [*ids, other], tmp_path / "extra.json")
    with pytest.raises(DatasetError, match=rf"extra.json has image\(s\) \[{other}\] that are not in the pilot"):
        score_pilot(plan, pkg, [a, extra])
    with pytest.raises(ConfigError, match="two or more different returned sets"):
        score_pilot(plan, pkg, [a, a])
    with pytest.raises(ConfigError, match="not a pilot.json"):
        score_pilot({"images": []}, pkg, [a, short])
