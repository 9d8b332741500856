"""`segval data check` as a user runs it: the summary of a good package, one clear error for a broken one."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
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


def _rle(mask):
    from pycocotools import mask as mask_utils

    r = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": list(mask.shape), "counts": r["counts"].decode()}


def test_check_reads_coco_dialects_with_one_warning_per_kind(tmp_path: Path) -> None:
    """The issue's silent one-defect files (negative area, negative bbox width, a polygon far outside the image)
    now warn; string booleans / hex colours are coerced; a box without a mask is ignore (255)."""
    from PIL import Image

    Image.fromarray(np.zeros((6, 8, 3), np.uint8)).save(tmp_path / "a.png")
    cube = np.zeros((6, 8), bool)
    cube[1:4, 1:4] = True
    anns = [
        {"id": 1, "image_id": 1, "category_id": 1, "segmentation": _rle(cube), "area": -9, "bbox": [1, 1, 3, 3],
         "iscrowd": "false"},
        {"id": 2, "image_id": 1, "category_id": 1, "segmentation": _rle(cube), "area": 9, "bbox": [1, 1, -3, 3]},
        {"id": 3, "image_id": 1, "category_id": 1, "segmentation": [[6, 0, 9000, 0, 9000, 2, 6, 2]], "area": 4,
         "bbox": [6, 0, 2, 2]},
        {"id": 4, "image_id": 1, "category_id": 1, "segmentation": [], "bbox": [0, 4, 8, 2], "area": 16},
    ]
    coco = {"images": [{"id": 1, "file_name": "a.png", "width": 8, "height": 6}],
            "categories": [{"id": 1, "name": "cube", "color": "#ff0000"}], "annotations": anns}
    (tmp_path / "ann.json").write_text(json.dumps(coco))
    run_dir = tmp_path / "check"
    res = run_segval("data", "check", "data=coco", f"data.annotations={tmp_path / 'ann.json'}",
                     f"data.images={tmp_path}", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert res.returncode == 0, res.output
    for want in ("'area' missing, negative or not the mask's pixel count, recomputed from the mask: 1 (first ids: 1)",
                 "'bbox' missing, negative or not around the mask, recomputed from the mask: 1 (first ids: 2)",
                 "polygons reaching outside their image clipped to it: 1 (first ids: 3)",
                 "'iscrowd' given as a string / boolean / null, read as 0 / 1: 1 (first ids: 1)",
                 "category colours given as strings ('#rrggbb'), read as [r, g, b]: 1 (first ids: 1)",
                 "become ignore boxes (255 in semantic targets", "bbox_only=drop|error chooses otherwise): 1 "
                 "(first ids: 4)"):
        assert want in res.output, want
    assert "5 warning(s) logged above" in res.stdout or "6 warning(s) logged above" in res.stdout
    summary = json.loads((run_dir / "summary.json").read_text())
    assert len(summary["warnings"]) == 6
    s = summary["splits"]["train"]
    assert s["ignore_share"] == pytest.approx(16 / 48)  # rows 4..5: the box, no object there
    # bbox_only=error refuses the file, naming the annotation
    res = run_segval("data", "check", "data=coco", f"data.annotations={tmp_path / 'ann.json'}",
                     f"data.images={tmp_path}", "data.bbox_only=error", f"hydra.run.dir={run_dir}2", cwd=tmp_path)
    assert res.returncode == 2 and "refused (bbox_only=error)" in res.stderr and "(first ids: 4)" in res.stderr


@pytest.mark.parametrize("name, content, want", [
    ("results.json", [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 2, 2], "score": 0.7}],
     "this is a COCO *results* file"),
    ("annotations.xml", "<?xml version='1.0'?>\n<annotations><version>1.1</version></annotations>\n",
     "is a CVAT XML export; read it with `segval dataset import format=cvat"),
])
def test_check_names_what_another_file_is(tmp_path: Path, name: str, content, want: str) -> None:
    """(Panoptic, SA-1B, captions, ... are named the same way: tests/dataset/test_package.py.)"""
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    res = run_segval("data", "check", "data=coco", f"data.annotations={path}", f"data.images={tmp_path}",
                     f"hydra.run.dir={tmp_path / 'check'}", cwd=tmp_path)
    assert res.returncode == 2, res.output
    assert want in res.stderr and "Traceback" not in res.output
