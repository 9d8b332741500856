"""Review sampling (stratified, reproducible, size checks) and the SAM-assist audit on constructed data."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from segval.dataset.package import DatasetPackage
from segval.dataset.writer import InstanceMask, PackageWriter
from segval.demo.shapes import SHAPES_TAXONOMY
from segval.errors import ConfigError, DatasetError
from segval.qa.sam_audit import audit, read_proposals, recommended_sample
from segval.qa.sampling import allocate, review_sample

H = W = 12


def _box(y0, x0, y1, x1):
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return m


def _pkg(root: Path, layout, annotators=None) -> DatasetPackage:
    """layout: per image a list of (category, mask); annotators: per image one name (all its annotations)."""
    with PackageWriter(root, name="t", version="1.0.0", taxonomy=SHAPES_TAXONOMY, splits=["train"]) as w:
        for k, items in enumerate(layout):
            w.add_image("train", np.zeros((H, W, 3), np.uint8), f"i{k:02d}",
                        instances=[InstanceMask(c, m) for c, m in items])
    if annotators is not None:
        path = root / "annotations" / "train.json"
        coco = json.loads(path.read_text())
        for ann in coco["annotations"]:
            ann["attributes"] = {"annotator": annotators[ann["image_id"] - 1]}
        path.write_text(json.dumps(coco))
    return DatasetPackage.open(root)


# ---------------------------------------------------------------------- sampling
def test_allocation_is_proportional_by_largest_remainder() -> None:
    assert allocate([10, 5, 5], 4) == [2, 1, 1]
    assert allocate([3, 3, 3], 2) == [1, 1, 0]
    assert allocate([7, 2, 1], 3) == [2, 1, 0]  # 2.1, 0.6, 0.3
    assert sum(allocate([13, 8, 5, 1], 9)) == 9


@pytest.fixture(scope="module")
def team(tmp_path_factory) -> DatasetPackage:
    big, small = _box(0, 0, 8, 8), _box(9, 9, 11, 11)
    layout, who = [], []
    for k in range(40):  # disc-main images by alice (16), square-main by bob (12) and alice (8), bar by bob (4)
        if k < 16:
            layout.append([(1, big), (2, small)]); who.append("alice")
        elif k < 28:
            layout.append([(2, big)]); who.append("bob")
        elif k < 36:
            layout.append([(2, big), (3, small)]); who.append("alice")
        else:
            layout.append([(3, big)]); who.append("bob")
    return _pkg(tmp_path_factory.mktemp("team") / "p", layout, who)


def test_sample_is_stratified_and_reproducible(team: DatasetPackage) -> None:
    s = review_sample(team, "train", seed=1)
    assert s["size"] == 6 and len(s["items"]) == 6 and s["population"] == 40  # round(0.15 x 40)
    strata = {(r["stratum"]["class"], r["stratum"]["annotator"]): (r["population"], r["sampled"]) for r in s["strata"]}
    # exact shares 2.4, 1.8, 1.2, 0.6 -> floors 2, 1, 1, 0 + the two largest remainders (0.8 bob/square, 0.6 bob/bar)
    assert strata == {("disc", "alice"): (16, 2), ("square", "bob"): (12, 2), ("square", "alice"): (8, 1),
                      ("bar", "bob"): (4, 1)}
    got = Counter((it["stratum"]["class"], it["stratum"]["annotator"]) for it in s["items"])
    assert got == {k: v[1] for k, v in strata.items()}
    # each item really is of its stratum (recomputed independently from the annotations)
    names = {c.id: c.name for c in team.taxonomy}
    sd = team.split("train")
    for it in s["items"]:
        anns = sd.annotations_for(it["image_id"])
        top = max(anns, key=lambda a: (a["area"], -a["category_id"]))
        assert it["stratum"] == {"class": names[top["category_id"]], "annotator": anns[0]["attributes"]["annotator"]}
    assert review_sample(team, "train", seed=1) == s
    assert [it["image_id"] for it in review_sample(team, "train", seed=2)["items"]] != [it["image_id"] for it in s["items"]]
    assert review_sample(team, "train", size=40)["size"] == 40
    assert review_sample(team, "train", fraction=0.5, by=["annotator"])["strata"] == [
        {"stratum": {"annotator": "alice"}, "population": 24, "sampled": 12},
        {"stratum": {"annotator": "bob"}, "population": 16, "sampled": 8}]


@pytest.mark.parametrize("kw, msg", [({"size": 41}, "larger than split 'train' \\(40 images\\)"),
                                     ({"fraction": 1.5}, "larger than split"), ({"fraction": 0}, "\\(0, 1\\]"),
                                     ({"by": ["colour"]}, "subset")])
def test_bad_sample_requests(team: DatasetPackage, kw, msg) -> None:
    with pytest.raises(ConfigError, match=msg):
        review_sample(team, "train", **kw)


# ---------------------------------------------------------------------- SAM audit
def _rle(mask: np.ndarray) -> dict:
    r = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [H, W], "counts": r["counts"].decode()}


def test_recommended_sample_rule() -> None:
    # Cochran with finite-population correction, by hand: p = 0.25, N = 40 -> n0 = 288.12, n = 288.12 / (1 + 287.12/40)
    n0 = 1.96 ** 2 * 0.25 * 0.75 / 0.05 ** 2
    assert recommended_sample(40, 0.25, True) == math.ceil(n0 / (1 + (n0 - 1) / 40)) == 36
    assert recommended_sample(40, 0.25, False) == 6  # the 15 % base
    assert recommended_sample(1000, 0.01, True) == 150  # q = 0.05: n = 69 < the base: the base wins
    assert recommended_sample(3, 1.0, True) == 3  # p = 1 takes the worst case q = 0.5: all of them
    assert recommended_sample(400, 0.9, True) == recommended_sample(400, 0.5, True) == 197  # 384.16 / (1 + 383.16/400)
    assert recommended_sample(400, 0.1, True) < recommended_sample(400, 0.3, True) < 197


def test_audit_iou_against_manual_corrections(tmp_path: Path) -> None:
    # the imported version: image 1 holds disc id 1 (4x4) and square id 2 (5x5); image 2 a disc id 3
    pkg = _pkg(tmp_path / "v", [[(1, _box(0, 0, 4, 4)), (2, _box(5, 5, 10, 10))], [(1, _box(2, 2, 6, 6))]])
    proposals = [
        {"item_id": "a", "image_id": 1, "category_id": 1, "segmentation": _rle(_box(0, 0, 4, 5)), "score": 0.9,
         "source_annotation_id": 1, "model": "sam2"},                       # 16 / 20 = 0.8
        {"item_id": "b", "image_id": 1, "category_id": 2, "segmentation": _rle(_box(5, 5, 10, 10)), "score": 0.8,
         "source_annotation_id": None, "model": "sam2"},                    # best square: 1.0
        {"item_id": "c", "image_id": 1, "category_id": 3, "segmentation": _rle(_box(0, 8, 2, 12)), "score": 0.5,
         "source_annotation_id": None, "model": "sam2"},                    # no bar: rejected, 0
        {"item_id": "d", "image_id": 2, "category_id": 1, "segmentation": _rle(_box(2, 2, 6, 4)), "score": 0.7,
         "source_annotation_id": 99, "model": "sam2"},                      # id gone: best disc 8 / 16
    ]
    (tmp_path / "proposals.json").write_text(json.dumps(proposals))
    doc = audit(read_proposals(tmp_path / "proposals.json"), pkg, "train")
    got = {r["item_id"]: (r["IoU"], r["how"], r["matched_annotation_id"]) for r in doc["proposals"]}
    assert got == {"a": (0.8, "source_annotation", 1), "b": (1.0, "best_iou", 2), "c": (0.0, "none", None),
                   "d": (0.5, "best_iou", 3)}
    classes = {c["name"]: c for c in doc["classes"]}
    assert classes["disc"]["mean_IoU"] == pytest.approx(0.65) and classes["disc"]["flagged"]
    assert classes["disc"]["share_below"] == 1.0 and classes["disc"]["recommended_sample"] == 2  # all of its 2
    assert not classes["square"]["flagged"] and classes["bar"]["flagged"]
    assert doc["summary"]["flagged_classes"] == ["disc", "bar"] and doc["summary"]["rejected"] == 1
    # a proposal on an image the version does not hold is an error naming it
    bad = proposals + [dict(proposals[0], item_id="z", image_id=7)]
    with pytest.raises(DatasetError, match="item 'z'.*image id 7 is not in split 'train'"):
        audit(bad, pkg, "train")
    (tmp_path / "bad.json").write_text(json.dumps([{"image_id": 1}]))
    with pytest.raises(DatasetError, match="segmentation"):
        read_proposals(tmp_path / "bad.json")
