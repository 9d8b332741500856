"""The team commands as a user runs them: per-annotator QA, review sample, SAM audit; bad input writes nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import yaml
from pycocotools import mask as mask_utils

from tests.helpers import run_segval

from tests.qa.test_annotators import H, W, write_team_package


def _rle(mask: np.ndarray) -> dict:
    r = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": list(mask.shape), "counts": r["counts"].decode()}


def test_qa_reports_annotators_and_stops_on_a_missing_one(tmp_path: Path) -> None:
    a = write_team_package(tmp_path / "a")
    b = tmp_path / "b"
    shutil.copytree(a, b)
    coco = json.loads((b / "annotations" / "train.json").read_text())
    coco["annotations"] = [x for x in coco["annotations"] if x["id"] != 6]  # bob's speck deprecated in b
    (b / "annotations" / "train.json").write_text(json.dumps(coco))
    meta = yaml.safe_load((b / "dataset.yaml").read_text())
    meta.update(version="1.1.0", deprecated={"annotations": [6]})
    (b / "dataset.yaml").write_text(yaml.safe_dump(meta))
    run = run_segval("qa", "data=package", f"data.root={b}", f"annotators.previous={a}", "qa.background_max=1.0",
                     f"hydra.run.dir={tmp_path / 'r'}", cwd=tmp_path)
    assert run.returncode == 0, run.output  # small masks are warnings; fail_on=error
    rep = json.loads((tmp_path / "r" / "qa.json").read_text())
    rows = {r["annotator"]: r for r in rep["annotators"]["rows"]}
    assert rows["bob"]["corrected"] == 1 and rows["bob"]["correction_rate"] == 1 / 3
    assert rows["alice"]["corrected"] == 0 and rows["alice"]["flag_rate"] == 0.25
    assert (tmp_path / "r" / "annotators.csv").read_text().splitlines()[0].startswith("annotator,annotations,")
    assert "## Annotators" in (tmp_path / "r" / "qa.md").read_text() and "| bob |" in run.stdout

    c = write_team_package(tmp_path / "c", drop_annotator_of=2)
    run = run_segval("qa", "data=package", f"data.root={c}", f"hydra.run.dir={tmp_path / 'r2'}", cwd=tmp_path)
    assert run.returncode == 2 and "name no annotator (first ids: [2])" in run.stderr, run.output
    assert not (tmp_path / "r2" / "qa.json").exists() and not (tmp_path / "r2" / "qa.md").exists()


def test_review_sample_and_sam_audit(tmp_path: Path) -> None:
    pkg = write_team_package(tmp_path / "p")
    run = run_segval("qa", "sample", "data=package", f"data.root={pkg}", "fraction=0.5", "seed=3",
                     f"hydra.run.dir={tmp_path / 's1'}", cwd=tmp_path)
    assert run.returncode == 0, run.output
    s1 = json.loads((tmp_path / "s1" / "sample.json").read_text())
    assert s1["size"] == 2 and s1["population"] == 4 and len((tmp_path / "s1" / "sample.csv").read_text().splitlines()) == 3
    assert "review sample: 2 of 4 images" in run.stdout

    run = run_segval("qa", "sample", "data=package", f"data.root={pkg}", "size=5", f"hydra.run.dir={tmp_path / 's2'}",
                     cwd=tmp_path)
    assert run.returncode == 2 and "larger than split 'train' (4 images)" in run.stderr, run.output
    assert not (tmp_path / "s2" / "sample.json").exists()

    # SAM audit: proposals beside a queue.json naming the split; image 1 holds squares ids 1 (0:20) and 2 (30:50)
    relabel = tmp_path / "relabel"
    relabel.mkdir()
    (relabel / "queue.json").write_text(json.dumps({"schema_version": 1, "split": "train", "items": []}))
    m = np.zeros((H, W), bool)
    m[0:20, 0:25] = True  # vs the 20x20 square: 400 / 500
    (relabel / "proposals.json").write_text(json.dumps([
        {"item_id": "1:1", "image_id": 1, "category_id": 2, "segmentation": _rle(m), "score": 0.9,
         "source_annotation_id": 1, "model": "sam2-tiny"}]))
    run = run_segval("qa", "sam-audit", f"data.root={pkg}", f"proposals={relabel / 'proposals.json'}",
                     f"hydra.run.dir={tmp_path / 'a'}", cwd=tmp_path)
    assert run.returncode == 0, run.output
    doc = json.loads((tmp_path / "a" / "sam_audit.json").read_text())
    assert doc["split"] == "train" and doc["proposals"][0]["IoU"] == 0.8
    assert doc["classes"][0]["flagged"] and "square (review 1 of 1)" in run.stdout
