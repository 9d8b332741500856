"""`segval dataset guideline` end to end: into the run directory with a run and a queue, into the package (CHANGELOG,
content hash unchanged), and its bad inputs (a read-only release, a run of another taxonomy)."""

from __future__ import annotations

import json
import shutil
import stat
from pathlib import Path

import pytest

from segval.dataset.content_hash import package_content_hash

from tests.helpers import run_segval
from tests.qa.guideline_package import write_package


@pytest.fixture
def pkg(tmp_path: Path) -> Path:
    return write_package(tmp_path / "arms")


def _run_dir(tmp_path: Path, names=("background", "robot_arm", "gripper", "cable", "ghost")) -> Path:
    run = tmp_path / "analyze"
    run.mkdir()
    (run / "findings.json").write_text(json.dumps({
        "split": "val", "dataset": {"name": "arms", "version": "1.0.0", "class_names": list(names),
                                    "taxonomy_ids": [0, 1, 2, 3, 4]},
        "classes": [{"name": "cable", "status": "weak", "worst_images": [{"image_id": 8, "reason": "40 px missed"}],
                     "causes": [{"cause": "confusion", "evidence": {"partner": "background", "pixels": 40,
                                                                    "share_of_gt": 0.8, "symmetric": False}}]}]}))
    (run / "per_image.csv").write_text("image_id,pixels,mIoU,pixel_acc,label_quality,top_confused_gt,"
                                       "top_confused_pred,top_confused_pixels,disagree_robot_arm\n"
                                       "8,1920,0.5,0.9,0.4,robot_arm,background,30,30\n")
    return run


def _queue(tmp_path: Path) -> Path:
    q = {"schema_version": 1, "dataset": {"name": "arms", "version": "1.0.0"}, "split": "train", "budget": 2,
         "items": [{"rank": 1, "item_id": "i1", "image_id": 3, "file_name": "train2.png", "class": "gripper",
                    "category_id": 2, "annotation_ids": [8], "region": [16, 2, 6, 6],
                    "reason": "labelled gripper in one frame, robot_arm in its neighbours"}],
         "label_confusions": [{"pair": ["gripper", "robot_arm"], "annotations": 4,
                               "directions": {"gripper->robot_arm": 4, "robot_arm->gripper": 0}, "images": [3, 4]}]}
    (tmp_path / "queue.json").write_text(json.dumps(q))
    return tmp_path / "queue.json"


def test_guideline_with_a_run_and_a_queue(pkg: Path, tmp_path: Path) -> None:
    out = tmp_path / "g"
    res = run_segval("dataset", "guideline", f"data.root={pkg}", f"run_dir={_run_dir(tmp_path)}",
                     f"queue={_queue(tmp_path)}", "guideline.examples=4", f"hydra.run.dir={out}", cwd=tmp_path)
    assert res.returncode == 0, res.output[-3000:]
    assert "5 classes, 12 positive examples, 3 hard examples, 2 pair(s) to clarify" in res.stdout
    assert "classes with no example yet: ghost" in res.stdout and "pair to clarify: gripper vs robot_arm" in res.stdout
    assert f"guideline: {out / 'guideline.html'}" in res.stdout
    md = (out / "guideline.md").read_text()
    assert "labelled gripper in one frame, robot\\_arm in its neighbours" in md
    assert "4 annotations have the other class in neighbouring frames" in md
    assert "weak class in the run: 40 px missed" in md and "the model labelled 30 px of robot\\_arm" in md
    doc = json.loads((out / "guideline.json").read_text())
    assert doc["dataset"]["content_hash"] == package_content_hash(pkg)
    assert doc["inputs"]["queue"] == str(tmp_path / "queue.json")
    assert not (pkg / "guideline").exists()  # nothing written into the package without into_package


def test_guideline_into_the_package_and_a_read_only_release(pkg: Path, tmp_path: Path) -> None:
    before = package_content_hash(pkg)
    res = run_segval("dataset", "guideline", f"data.root={pkg}", "into_package=true",
                     f"hydra.run.dir={tmp_path / 'g'}", cwd=tmp_path)
    assert res.returncode == 0, res.output[-3000:]
    assert (pkg / "guideline" / "guideline.html").is_file() and (pkg / "guideline" / "images").is_dir()
    log = (pkg / "CHANGELOG.md").read_text()
    assert log.startswith("# Changelog\n\n## 1.0.0 - annotation guideline (") and before in log
    assert package_content_hash(pkg) == before  # the guideline is documentation, not data
    assert "no hard examples (no run / queue)" in res.stdout

    release = shutil.copytree(pkg, tmp_path / "releases" / "1.0.0")
    shutil.rmtree(release / "guideline")
    for p in [release, *release.rglob("*")]:
        p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        bad = run_segval("dataset", "guideline", f"data.root={release}", "into_package=true",
                         f"hydra.run.dir={tmp_path / 'g2'}", cwd=tmp_path)
        assert bad.returncode == 2 and "read-only" in bad.stderr and "published release" in bad.stderr, bad.output
        assert not (release / "guideline").exists()
    finally:
        for p in [release, *release.rglob("*")]:
            p.chmod(p.stat().st_mode | stat.S_IWUSR)


def test_run_of_another_taxonomy_is_refused(pkg: Path, tmp_path: Path) -> None:
    run = _run_dir(tmp_path, names=("background", "mug", "gripper", "cable", "ghost"))
    res = run_segval("dataset", "guideline", f"data.root={pkg}", f"run_dir={run}",
                     f"hydra.run.dir={tmp_path / 'g'}", cwd=tmp_path)
    assert res.returncode == 2 and "the run was made on another taxonomy" in res.stderr, res.output[-2000:]
    assert str(run / "findings.json") in res.stderr and not (tmp_path / "g" / "guideline.md").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    res = run_segval("dataset", "guideline", f"data.root={pkg}", f"run_dir={empty}",
                     f"hydra.run.dir={tmp_path / 'g3'}", cwd=tmp_path)
    assert res.returncode == 2 and "holds no findings.json" in res.stderr
