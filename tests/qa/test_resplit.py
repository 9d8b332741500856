"""segval.qa.resplit: the new package's COCO entries equal the source's exactly; ids shared by pooled splits refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from segval.dataset.package import DatasetPackage
from segval.demo.shapes import write_shapes_package
from segval.errors import DatasetError
from segval.qa.resplit import plan_resplit, write_resplit

NAMES = ["train", "val"]


@pytest.fixture()
def source(tmp_path):
    """A generated package whose val file is pretty-printed and carries extra keys on images and annotations."""
    root = write_shapes_package(tmp_path / "pkg", images={"train": 16, "val": 8}, frames_per_video=4, size=(24, 24),
                                seed=2)
    f = root / "annotations" / "val.json"
    coco = json.loads(f.read_text())
    coco["images"][0]["weather"] = {"rain": True, "note": "a, b: c"}
    coco["annotations"][0]["attributes"] = {"occluded": False, "score": 0.1 + 0.2}
    f.write_text(json.dumps(coco, indent=2))
    return root


def _plan(pkg):
    return plan_resplit(pkg, pkg.splits, NAMES, np.array([0.75, 0.25]), tolerance=0.5, min_share=0.0,
                        fraction_tolerance=0.5, seed=0, trials=4)


def _entries(root, key):
    out = {}
    for f in sorted((root / "annotations").glob("*.json")):
        for e in json.loads(f.read_text())[key]:
            out[e["id"]] = e
    return out


def test_written_entries_equal_the_source_entries(source, tmp_path):
    pkg = DatasetPackage.open(source)
    _, pooled = _plan(pkg)
    out = tmp_path / "new"
    meta = {**yaml.safe_load((source / "dataset.yaml").read_text()), "version": "2", "splits": NAMES}
    sizes = write_resplit(pkg, out, NAMES, pooled, meta)
    assert sum(sizes.values()) == 24
    for key in ("images", "annotations"):
        assert _entries(out, key) == _entries(source, key)  # every key, extra fields included, exact values
    new = DatasetPackage.open(out)
    for s in new.splits:  # each image's annotations in the source's order
        sp = new.split(s)
        for rec in sp.images:
            src = next(pkg.split(x) for x in pkg.splits if rec.id in {r.id for r in pkg.split(x).images})
            assert sp.annotations_for(rec.id) == src.annotations_for(rec.id)
    cats = json.loads((out / "annotations" / "train.json").read_text())["categories"]
    assert cats == json.loads((source / "annotations" / "train.json").read_text())["categories"]


def test_an_annotation_id_in_two_pooled_splits_is_refused(source):
    f = source / "annotations" / "val.json"
    coco = json.loads(f.read_text())
    train_ids = [a["id"] for a in json.loads((source / "annotations" / "train.json").read_text())["annotations"]]
    coco["annotations"][1]["id"] = train_ids[3]
    f.write_text(json.dumps(coco))
    with pytest.raises(DatasetError, match=f"annotation id {train_ids[3]} is used in split 'train' and split 'val'"):
        _plan(DatasetPackage.open(source))
