"""`segval agreement` end to end: two COCO files over the same images -> agreement.json the diagnosis reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from segval.demo.shapes import write_shapes_package

from tests.helpers import Result, run_segval

pytestmark = pytest.mark.slow


def run_agreement(*args: str, cwd: Path) -> Result:
    """`segval agreement <args>`, as a user runs it."""
    return run_segval("agreement", *args, cwd=cwd)


@pytest.fixture(scope="module")
def annotation_sets(tmp_path_factory) -> tuple[Path, Path, Path]:
    root = write_shapes_package(tmp_path_factory.mktemp("agree") / "pkg", images={"val": 6}, frames_per_video=2,
                                size=(48, 48))
    a = root / "annotations" / "val.json"
    coco = json.loads(a.read_text())
    # annotator b left out every bar (category 3) of the first four images
    first = {im["id"] for im in coco["images"][:4]}
    coco["annotations"] = [x for x in coco["annotations"] if not (x["category_id"] == 3 and x["image_id"] in first)]
    b = root / "b.json"
    b.write_text(json.dumps(coco))
    return a, b, root / "images" / "val"


def test_agreement_writes_json_and_md(annotation_sets, tmp_path):
    a, b, images = annotation_sets
    r = run_agreement(f"sets=[{a},{b}]", f"images={images}", f"hydra.run.dir={tmp_path}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    result = json.loads((tmp_path / "agreement.json").read_text())
    assert (tmp_path / "agreement.md").is_file() and "agreement.json" in r.stdout
    assert result["per_class"]["disc"] == 1.0 and result["per_class"]["square"] == 1.0
    assert result["per_class"]["bar"] < 0.70 and "bar" in result["flagged_classes"]
    assert result["targets"] == {"rigid": 0.85, "deformable": 0.75, "thin": 0.70, "stuff": 0.85}
    assert [c["group"] for c in result["classes"]] == ["stuff", "rigid", "rigid", "thin"]
    assert result["num_images"] == 6 and len(result["flagged_images"]) >= 1


def test_agreement_sets_over_different_images_fail_clearly(annotation_sets, tmp_path):
    a, _, images = annotation_sets
    coco = json.loads(a.read_text())
    dropped = coco["images"].pop()["id"]
    coco["annotations"] = [x for x in coco["annotations"] if x["image_id"] != dropped]
    c = tmp_path / "c.json"
    c.write_text(json.dumps(coco))
    r = run_agreement(f"sets=[{a},{c}]", f"images={images}", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert r.returncode == 2 and f"lacks image ids [{dropped}]" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "run" / "agreement.json").exists()
    r = run_agreement(f"sets=[{a}]", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert r.returncode == 2 and "at least two" in r.stderr


def test_agreement_group_override_changes_the_target(annotation_sets, tmp_path):
    a, b, images = annotation_sets
    r = run_agreement(f"sets=[{a},{b}]", f"images={images}", "group_of={bar: deformable}", "targets.deformable=0.5",
                      f"hydra.run.dir={tmp_path}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    result = json.loads((tmp_path / "agreement.json").read_text())
    bar = next(c for c in result["classes"] if c["name"] == "bar")
    assert bar["group"] == "deformable" and bar["target"] == 0.5 and result["targets"]["deformable"] == 0.5
