"""Per-annotator quality on constructed data: flag rates, agreement, correction rates, missing annotators."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from segval.dataset.package import DatasetPackage
from segval.release.versions import diff_packages
from segval.dataset.writer import InstanceMask, PackageWriter
from segval.demo.shapes import SHAPES_TAXONOMY
from segval.errors import DatasetError
from segval.qa.agreement import compute_agreement
from segval.qa.annotators import (UNKNOWN, agreement_by_annotator, annotator_index, annotator_of, correction_rates,
                                  format_annotators)
from segval.qa.runner import QAConfig, run_qa

H = W = 64


def _box(y0, x0, y1, x1):
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return m


BIG_A, BIG_B, SPECK = _box(0, 0, 20, 20), _box(30, 30, 50, 50), _box(56, 56, 60, 60)  # 400, 400, 16 px

# (image, [(category, mask, annotator)]); annotation ids are given in this order, from 1
LAYOUT = [
    ("img1", [(2, BIG_A, "alice"), (2, BIG_B, "bob")]),          # ids 1, 2
    ("img2", [(2, BIG_A, "alice"), (1, SPECK, "alice")]),        # ids 3, 4 (4: small_mask)
    ("img3", [(2, BIG_A, "alice"), (1, SPECK, "bob")]),          # ids 5, 6 (6: small_mask)
    ("img4", [(3, SPECK, "bob")]),                               # id 7 (small_mask)
]


def write_team_package(root: Path, *, drop_annotator_of: int | None = None) -> Path:
    with PackageWriter(root, name="team", version="1.0.0", taxonomy=SHAPES_TAXONOMY, splits=["train"]) as w:
        for name, items in LAYOUT:
            w.add_image("train", np.full((H, W, 3), 100, np.uint8), name,
                        instances=[InstanceMask(c, m) for c, m, _ in items])
    path = root / "annotations" / "train.json"
    coco = json.loads(path.read_text())
    who = [a for _, items in LAYOUT for _, _, a in items]
    assert [a["id"] for a in coco["annotations"]] == list(range(1, len(who) + 1))
    for ann, name in zip(coco["annotations"], who):
        if ann["id"] == drop_annotator_of:
            continue
        if name == "alice":
            ann["attributes"] = {"annotator": "alice", "occluded": False}  # CVAT style
        else:
            ann["annotator"] = "bob"  # a top-level key
    # both present: attributes wins
    coco["annotations"][0]["annotator"] = "bob"
    path.write_text(json.dumps(coco))
    return root


QA = QAConfig(background_max=1.0, check_image_files=False)


def test_annotator_field_rules() -> None:
    assert annotator_of({"attributes": {"annotator": " alice "}, "annotator": "bob"}) == "alice"
    assert annotator_of({"attributes": {"annotator": ""}, "annotator": "bob"}) == "bob"
    assert annotator_of({"attributes": {"occluded": True}}) is None
    assert annotator_of({"annotator": 7}) == "7"


def test_flag_rates_per_annotator(tmp_path: Path) -> None:
    pkg = DatasetPackage.open(write_team_package(tmp_path / "p"))
    rep = run_qa(pkg, QA, progress=False)
    flagged = sorted(f["annotation_id"] for item in rep["images"] for f in item["flags"] if f["check"] == "small_mask")
    assert flagged == [4, 6, 7]
    rates = rep["annotators"]["flag_rates"]
    assert list(rates) == ["alice", "bob"]
    # alice: ids 1, 3, 4, 5 (id 1 carries both keys: attributes wins), 4 flagged; images 1, 2, 3, of which 2 and 3 flagged
    assert rates["alice"] == {"annotations": 4, "flagged_annotations": 1, "flag_rate": 0.25, "images": 3,
                              "flagged_images": 2, "image_flag_rate": 2 / 3,
                              "checks": {"small_mask": 1, "fragmented": 0, "jagged": 0, "temporal_iou": 0,
                                         "overlap": 0, "format": 0}}
    assert rates["bob"]["annotations"] == 3 and rates["bob"]["flagged_annotations"] == 2
    assert rates["bob"]["flag_rate"] == 2 / 3 and rates["bob"]["image_flag_rate"] == 2 / 3
    assert rep["annotators"]["flag_rate_spread"] == pytest.approx((2 / 3) / 0.25)
    md = format_annotators(rep["annotators"])
    assert "| alice | 4 | 1 | 25.0% | 3 | 66.7% | n/a | n/a | n/a |" in md
    assert "| bob | 3 | 2 | 66.7% | 3 | 66.7% |" in md


def test_no_annotator_anywhere_means_no_block(tmp_path: Path) -> None:
    from segval.demo.shapes import write_shapes_package

    pkg = DatasetPackage.open(write_shapes_package(tmp_path / "s", images={"train": 2}, size=(16, 16)))
    assert run_qa(pkg, QA, progress=False)["annotators"] is None


def test_missing_annotator_on_some_annotations(tmp_path: Path) -> None:
    pkg = DatasetPackage.open(write_team_package(tmp_path / "p", drop_annotator_of=5))
    with pytest.raises(DatasetError, match=r"1 of 7 annotations name no annotator \(first ids: \[5\]\)") as err:
        run_qa(pkg, QA, progress=False)
    assert "train.json" in str(err.value) and "annotator_missing=unknown" in str(err.value)
    rep = run_qa(pkg, QAConfig(background_max=1.0, check_image_files=False, annotator_missing="unknown"),
                 progress=False)
    rates = rep["annotators"]["flag_rates"]
    assert rates[UNKNOWN]["annotations"] == 1 and rates["alice"]["annotations"] == 3
    assert annotator_index(pkg, missing="unknown")["train"][5] == UNKNOWN


def test_agreement_per_annotator() -> None:
    row = lambda k: np.array([[1] * k + [0] * (8 - k)], dtype=np.uint8)  # noqa: E731
    res = compute_agreement([{1: row(4)}, {1: row(3)}, {1: row(2)}], ["bg", "obj"], ["stuff", "rigid"],
                            set_names=["sets/alice.json", "sets/bob.json", "sets/carol.json"])
    by = agreement_by_annotator(res)
    ab, ac, bc = (3 / 4 + 4 / 5) / 2, (2 / 4 + 4 / 6) / 2, (2 / 3 + 5 / 6) / 2  # pair mIoU (obj, bg)
    assert by["alice"] == {"agreement": pytest.approx((ab + ac) / 2), "pairs": 2}
    assert by["bob"]["agreement"] == pytest.approx((ab + bc) / 2)
    assert by["carol"]["agreement"] == pytest.approx((ac + bc) / 2)


def test_correction_rates_after_a_relabel_round(tmp_path: Path) -> None:
    a_root = write_team_package(tmp_path / "a")
    import shutil

    b_root = tmp_path / "b"
    shutil.copytree(a_root, b_root)
    path = b_root / "annotations" / "train.json"
    coco = json.loads(path.read_text())
    from pycocotools import mask as mask_utils

    moved = mask_utils.encode(np.asfortranarray(_box(0, 0, 22, 22).astype(np.uint8)))
    for ann in coco["annotations"]:
        if ann["id"] == 3:  # alice's square, corrected
            ann["segmentation"] = {"size": [H, W], "counts": moved["counts"].decode()}
    coco["annotations"] = [a for a in coco["annotations"] if a["id"] != 7]  # bob's speck deprecated
    path.write_text(json.dumps(coco))
    meta = yaml.safe_load((b_root / "dataset.yaml").read_text())
    meta["version"], meta["deprecated"] = "1.1.0", {"annotations": [7]}
    (b_root / "dataset.yaml").write_text(yaml.safe_dump(meta))
    a, b = DatasetPackage.open(a_root), DatasetPackage.open(b_root)
    rates = correction_rates(a, diff_packages(a, b))
    assert rates["alice"] == {"annotations": 4, "changed": 1, "deprecated": 0, "removed": 0, "corrected": 1,
                              "correction_rate": 0.25}
    assert rates["bob"] == {"annotations": 3, "changed": 0, "deprecated": 1, "removed": 0, "corrected": 1,
                            "correction_rate": 1 / 3}
    rep = run_qa(b, QA, progress=False, corrections=rates)
    rows = {r["annotator"]: r for r in rep["annotators"]["rows"]}
    assert rows["alice"]["correction_rate"] == 0.25 and rows["bob"]["corrected"] == 1


def test_agreement_column_in_the_qa_table(tmp_path: Path) -> None:
    pkg = DatasetPackage.open(write_team_package(tmp_path / "p"))
    row = lambda k: np.array([[1] * k + [0] * (8 - k)], dtype=np.uint8)  # noqa: E731
    res = compute_agreement([{1: row(4)}, {1: row(3)}], ["bg", "obj"], ["stuff", "rigid"],
                            set_names=["alice.json", "bob.json"])
    rep = run_qa(pkg, QA, progress=False, agreement=res)
    rows = {r["annotator"]: r for r in rep["annotators"]["rows"]}
    assert rows["alice"]["agreement"] == rows["bob"]["agreement"] == pytest.approx((3 / 4 + 4 / 5) / 2)
    assert "| alice | 4 | 1 | 25.0% | 3 | 66.7% | 77.5% |" in format_annotators(rep["annotators"])
