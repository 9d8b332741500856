"""`segval data check` as a user runs it: the summary of a good package, one clear error for a broken one."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from segval.demo.shapes import write_shapes_package

from tests.helpers import run_segval

pytestmark = pytest.mark.slow

CLASSES = ["background", "disc", "square", "bar"]


def check(root: Path, run_dir: Path):  # noqa: ANN201
    return run_segval("data", "check", "data=package", f"data.root={root}", f"hydra.run.dir={run_dir}",
                      cwd=run_dir.parent)


def test_check_prints_the_summary_and_writes_summary_json(shapes_root: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "check"
    res = check(shapes_root, run_dir)
    assert res.returncode == 0, res.output
    out = res.stdout
    assert "train: 8 images" in out and "val: 4 images" in out
    for name in CLASSES:
        assert name in out
    assert "train px%" in out and "val px%" in out and "OK, no problems found" in out
    summary = json.loads((run_dir / "summary.json").read_text())
    assert [c["name"] for c in summary["classes"]] == CLASSES
    assert summary["name"] == "shapes" and summary["version"] == "1.0.0"
    for split, n in (("train", 8), ("val", 4)):
        s = summary["splits"][split]
        assert s["images"] == n and s["annotations"] > 0 and s["videos"] == n // 2
        assert s["pixels"] == n * 64 * 64
        assert sum(s["pixel_share"].values()) + s["ignore_share"] == pytest.approx(1.0)
        assert s["pixel_share"]["background"] > 0.5
    assert str(run_dir / "summary.json") in out


def test_check_names_a_corrupt_annotation(tmp_path: Path) -> None:
    root = write_shapes_package(tmp_path / "broken", images={"train": 2, "val": 2})
    ann_path = root / "annotations" / "val.json"
    coco = json.loads(ann_path.read_text())
    bad = coco["annotations"][1]
    counts = bad["segmentation"]["counts"]
    bad["segmentation"]["counts"] = counts[: len(counts) // 2]  # cut off: runs no longer add up to H * W
    ann_path.write_text(json.dumps(coco))
    run_dir = tmp_path / "check"
    res = check(root, run_dir)
    assert res.returncode == 2, res.output
    assert "Traceback" not in res.output, res.output
    assert f"annotation id {bad['id']}" in res.output and "val.json" in res.output
    assert "OK, no problems found" not in res.output
    assert not (run_dir / "summary.json").exists()


def test_check_plain_coco_export(tmp_path: Path) -> None:
    src = write_shapes_package(tmp_path / "src", images={"train": 3})
    export = tmp_path / "export"
    shutil.copytree(src / "images" / "train", export)
    shutil.copy(src / "annotations" / "train.json", export / "annotations.json")
    run_dir = tmp_path / "check"
    res = run_segval("data", "check", "data=coco", f"data.annotations={export / 'annotations.json'}",
                     f"data.images={export}", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert res.returncode == 0, res.output
    assert "3 images" in res.stdout and "OK, no problems found" in res.stdout
