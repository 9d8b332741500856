"""`segval qa pilot` end to end: plan (task files + pilot.json), score the returned sets, and the gate reading it."""

from __future__ import annotations

import json
from pathlib import Path

from segval.dataset.package import DatasetPackage

from tests.helpers import run_segval
from tests.qa.guideline_package import write_package
from tests.relabel.pilot_sets import coco_set, ls_set


def test_plan_score_and_bad_sets(tmp_path: Path) -> None:
    root = write_package(tmp_path / "arms")
    plan_dir = tmp_path / "plan"
    res = run_segval("qa", "pilot", f"data.root={root}", "images=4", "annotators=[ann,bob,cy]",
                     f"hydra.run.dir={plan_dir}", cwd=tmp_path)
    assert res.returncode == 0, res.output[-3000:]
    assert "pilot planned: 3 annotators x 4 images of arms 1.0.0 / train (4 videos)" in res.stdout
    plan = json.loads((plan_dir / "pilot.json").read_text())
    assert plan["status"] == "planned" and (plan_dir / "tasks" / "cy" / "cvat" / "cvat_coco.zip").is_file()
    assert "segval qa pilot pilot=" in (plan_dir / "pilot.md").read_text()

    pkg = DatasetPackage.open(root)
    ids = [im["image_id"] for im in plan["images"]]
    sets = [coco_set(pkg, ids, tmp_path / "ann.json"), ls_set(pkg, ids, tmp_path / "bob.json"),
            coco_set(pkg, ids, tmp_path / "cy.json", half_gripper=True)]
    score_dir = tmp_path / "score"
    res = run_segval("qa", "pilot", f"pilot={plan_dir}", f"sets=[{','.join(map(str, sets))}]",
                     f"hydra.run.dir={score_dir}", cwd=tmp_path)
    assert res.returncode == 0, res.output[-3000:]
    assert "pilot FAILED: 1 class(es) under 80% inter-annotator IoU" in res.stdout
    assert "clarify 'Class 2: gripper' (most confused with background)" in res.stdout
    doc = json.loads((score_dir / "pilot.json").read_text())
    assert doc["flagged_classes"] == ["gripper"] and doc["scored"]["pilot"] == str(plan_dir / "pilot.json")
    assert json.loads((score_dir / "agreement.json").read_text())["per_class"]["gripper"] < 0.8

    short = coco_set(pkg, ids[:3], tmp_path / "short.json")
    res = run_segval("qa", "pilot", f"pilot={plan_dir}", f"sets=[{sets[0]},{short}]",
                     f"hydra.run.dir={tmp_path / 'bad'}", cwd=tmp_path)
    missing = pkg.split("train").image(ids[3]).file_name
    assert res.returncode == 2 and f"lacks 1 pilot image(s): {ids[3]} ({missing})" in res.stderr, res.output[-2000:]
    res = run_segval("qa", "pilot", f"sets=[{sets[0]},{sets[1]}]", f"hydra.run.dir={tmp_path / 'bad2'}", cwd=tmp_path)
    assert res.returncode == 2 and "sets= needs pilot=" in res.stderr
