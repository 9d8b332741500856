"""`segval dataset clean` end to end: a new version beside the untouched source, ids kept, refusals."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from segval.dataset.package import DatasetPackage
from segval.dataset.validate import validate_package
from segval.dataset.writer import InstanceMask, PackageWriter
from segval.demo.shapes import SHAPES_TAXONOMY, write_shapes_package

from tests.helpers import Result, run_segval

pytestmark = pytest.mark.slow


def run_clean(*args: str, cwd: Path) -> Result:
    """`segval dataset clean <args>`, as a user runs it."""
    return run_segval("dataset", "clean", *args, cwd=cwd)


def tree_hash(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _ids(pkg: DatasetPackage) -> tuple[dict, dict]:
    images, anns = {}, {}
    for s in pkg.splits:
        sp = pkg.split(s)
        images[s] = [(r.id, r.file_name) for r in sp.images]
        anns[s] = {int(a["id"]): (int(a["image_id"]), int(a["category_id"]))
                   for r in sp.images for a in sp.annotations_for(r.id)}
    return images, anns


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    return write_shapes_package(tmp_path_factory.mktemp("src") / "pkg", images={"train": 10, "val": 4},
                                size=(64, 64), seed=3)


def test_clean_shapes_package(shapes: Path, tmp_path: Path):
    before = tree_hash(shapes)
    out, run = tmp_path / "v1.1", tmp_path / "run"
    res = run_clean(f"root={shapes}", f"output={out}", f"hydra.run.dir={run}", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "annotations changed:" in res.stdout and str(out) in res.stdout
    assert tree_hash(shapes) == before  # the source is byte-identical

    src, new = DatasetPackage.open(shapes), DatasetPackage.open(out)
    validate_package(new, progress=False)
    assert (src.version, new.version) == ("1.0.0", "1.1.0")
    assert new.taxonomy == src.taxonomy and new.splits == src.splits
    src_images, src_anns = _ids(src)
    new_images, new_anns = _ids(new)
    changes = json.loads((run / "changes.json").read_text())
    assert new_images == src_images
    for s in src.splits:
        deprecated = set(changes["splits"][s]["deprecated_ids"])
        assert set(new_anns[s]) == set(src_anns[s]) - deprecated
        assert all(new_anns[s][i] == src_anns[s][i] for i in new_anns[s])  # same image, same class
        # images copied byte for byte; label maps follow the new annotations
        sp = new.split(s)
        for rec in sp.images:
            assert (sp.image_path(rec).read_bytes()
                    == src.split(s).image_path(src.split(s).image(rec.id)).read_bytes())
            assert np.array_equal(sp.semantic_target(rec, "coco"), sp.semantic_target(rec, "label_map"))
    changed = [c for s in src.splits for c in changes["splits"][s]["changed"]]
    assert changes["annotations_changed"] == len(changed) > 0
    for c in changed:  # the changed masks really changed, the others did not
        s = next(s for s in src.splits if c["image_id"] in {r.id for r in src.split(s).images})
        old = {i.annotation_id: i.mask for i in src.split(s).instances(src.split(s).image(c["image_id"]))}
        cur = {i.annotation_id: i.mask for i in new.split(s).instances(new.split(s).image(c["image_id"]))}
        if not c.get("deprecated"):
            assert int(cur[c["id"]].sum()) == c["area_after"] and not np.array_equal(cur[c["id"]], old[c["id"]])
    log = (out / "CHANGELOG.md").read_text()
    assert "## 1.1.0" in log and f"annotations changed: {len(changed)} of" in log
    assert changes["source"]["version"] == "1.0.0" and changes["output"]["version"] == "1.1.0"


def test_refuses_existing_output_and_lower_version(shapes: Path, tmp_path: Path):
    out = tmp_path / "exists"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    res = run_clean(f"root={shapes}", f"output={out}", f"hydra.run.dir={tmp_path / 'r1'}", cwd=tmp_path)
    assert res.returncode != 0 and "already exists" in res.stderr and "Traceback" not in res.stderr
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    res = run_clean(f"root={shapes}", f"output={tmp_path / 'new'}", "version=1.0.0",
                    f"hydra.run.dir={tmp_path / 'r2'}", cwd=tmp_path)
    assert res.returncode != 0 and "higher than" in res.stderr
    assert not (tmp_path / "new").exists()
    res = run_clean(f"root={shapes}", f"output={shapes / 'inside'}", f"hydra.run.dir={tmp_path / 'r3'}", cwd=tmp_path)
    assert res.returncode != 0 and "outside the source" in res.stderr
    assert not (shapes / "inside").exists()


def test_boundary_refined_and_empty_instance_deprecated(tmp_path: Path):
    rng = np.random.default_rng(0)
    img = rng.integers(20, 40, size=(48, 48, 3), dtype=np.uint8)
    img[10:30, 10:30] = (200, 200, 60)  # a sharp-edged square
    truth = np.zeros((48, 48), bool)
    truth[10:30, 10:30] = True
    shifted = np.roll(truth, 2, axis=1)  # annotated 2 px off the edge
    speck = np.zeros((48, 48), bool)
    speck[40:42, 40:42] = True  # a 2x2 disc: the opening erases it
    src = tmp_path / "src"
    with PackageWriter(src, name="edge", version="2.3.1", taxonomy=SHAPES_TAXONOMY, splits=["train"]) as w:
        w.add_image("train", img, "a.png", instances=[InstanceMask(2, shifted), InstanceMask(1, speck)])
        w.add_image("train", img, "b.png", instances=[InstanceMask(2, truth)])
    before = tree_hash(src)
    out, run = tmp_path / "out", tmp_path / "run"
    res = run_clean(f"root={src}", f"output={out}", f"hydra.run.dir={run}", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert tree_hash(src) == before
    new = DatasetPackage.open(out)
    assert new.version == "2.4.0"
    sp = new.split("train")
    a, b = sp.images
    (inst,) = sp.instances(a)
    assert inst.annotation_id == 1 and np.array_equal(inst.mask, truth)  # moved back onto the edge, same id
    assert [i.annotation_id for i in sp.instances(b)] == [3]  # untouched image, id kept
    coco = json.loads((out / "annotations" / "train.json").read_text())
    assert [d["id"] for d in coco["deprecated_annotations"]] == [2]
    assert coco["deprecated_annotations"][0]["deprecated_in"] == "2.4.0"
    # recorded where `segval dataset release` / `diff` read deprecated ids
    from segval.release.versions import deprecated_ids

    assert deprecated_ids(new)["train"]["annotations"] == {2}
    changes = json.loads((run / "changes.json").read_text())
    assert changes["deprecated_ids"] == [2] and changes["annotations_changed"] == 2
    assert changes["pixels_changed_per_class"]["disc"] == {"pixels_added": 0, "pixels_removed": 4}
    assert changes["pixels_changed_per_class"]["square"] == {"pixels_added": 40, "pixels_removed": 40}
    assert "deprecated annotation ids (empty after cleaning): 2" in (out / "CHANGELOG.md").read_text()
    assert np.array_equal(sp.semantic_target(a, "label_map"), sp.semantic_target(a, "coco"))
    # the unchanged image keeps its label map byte for byte
    assert (out / "label_maps/train/b.png").read_bytes() == (src / "label_maps/train/b.png").read_bytes()
