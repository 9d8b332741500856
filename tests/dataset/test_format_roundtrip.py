"""import -> export -> import is lossless for the formats segval also writes (panoptic, COCO, label maps)."""

from __future__ import annotations

import numpy as np
import pytest

from segval.dataset import Category, DatasetPackage, InstanceMask, PackageWriter, Taxonomy
from segval.dataset.coco import load_json
from segval.dataset.coco_dialects import normalize_coco
from segval.dataset.export import export_package, import_coco_export
from segval.dataset.formats import merge_imported, write_imported
from segval.dataset.formats.coco_panoptic import read_coco_panoptic
from segval.dataset.formats.folders import find_coco_splits
from segval.dataset.formats.palette import ColorTable, read_voc

from .helpers import box

H, W = 12, 16
TAX = Taxonomy([Category(0, "background", (0, 0, 0), False, "stuff"), Category(1, "cube", (200, 30, 30), True, "rigid"),
                Category(2, "cable", (30, 200, 30), True, "thin"), Category(3, "table", (90, 60, 20), False, "stuff")],
               background_id=0)


def _package(root):
    rng = np.random.default_rng(0)
    with PackageWriter(root, name="rt", version="1.0.0", taxonomy=TAX, splits=["train", "val"]) as w:
        for k in range(4):
            rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
            insts = [InstanceMask(3, box(H, W, 8, 12, 0, 16)),  # table
                     InstanceMask(1, box(H, W, 2 + k % 3, 8, 2, 7)),  # cube on nothing
                     InstanceMask(1, box(H, W, 3, 9, 9, 14)),  # a second cube, on the table
                     InstanceMask(2, box(H, W, 5, 6, 0, 16))]  # cable across both cubes (smaller: on top)
            w.add_image("train" if k < 3 else "val", rgb, f"v0/f{k}.png", instances=insts,
                        extra={"video_id": 0, "frame_index": k})
    return DatasetPackage.open(root)


def _targets(pkg):
    return {(s, r.file_name): pkg.split(s).read_label_map(r) for s in pkg.splits for r in pkg.split(s).images}


def _read_panoptic(export_root):
    return merge_imported(read_coco_panoptic(export_root / "annotations" / f"panoptic_{s}.json",
                                             export_root / "panoptic" / s, export_root / "images" / s, split=s,
                                             background="background") for s in ("train", "val"))


def test_panoptic_round_trip(tmp_path):
    p1 = _package(tmp_path / "p1")
    export_package(p1, tmp_path / "e1", "panoptic")
    res = _read_panoptic(tmp_path / "e1")
    assert res.taxonomy == TAX and res.warnings == []
    write_imported(res, tmp_path / "p2", name="rt", version="1.0.0", license="CC-BY-4.0")
    p2 = DatasetPackage.open(tmp_path / "p2")
    t1, t2 = _targets(p1), _targets(p2)
    assert t1.keys() == t2.keys() and all((t1[k] == t2[k]).all() for k in t1)
    for s in p1.splits:  # pixels too
        for r1, r2 in zip(p1.split(s).images, p2.split(s).images):
            assert (p1.split(s).read_image(r1) == p2.split(s).read_image(r2)).all()
    # instances are the visible parts now (panoptic segments do not overlap): a fixpoint from here on
    export_package(p2, tmp_path / "e2", "panoptic")
    write_imported(_read_panoptic(tmp_path / "e2"), tmp_path / "p3", name="rt", version="1.0.0", license="CC-BY-4.0")
    for s in ("train", "val"):
        a2 = (tmp_path / "p2" / "annotations" / f"{s}.json").read_bytes()
        assert a2 == (tmp_path / "p3" / "annotations" / f"{s}.json").read_bytes()
        for png in (tmp_path / "e1" / "panoptic" / s).rglob("*.png"):
            rel = png.relative_to(tmp_path / "e1")
            assert png.read_bytes() == (tmp_path / "e2" / rel).read_bytes()


def test_coco_round_trip_is_a_dialect_no_op(tmp_path):
    p1 = _package(tmp_path / "p1")
    export_package(p1, tmp_path / "e1", "coco")
    splits, notes = find_coco_splits(tmp_path / "e1")
    assert [(s.split, s.images.name) for s in splits] == [("train", "train"), ("val", "val")] and notes == []
    for s in splits:
        raw = load_json(s.annotations)
        norm = normalize_coco(raw, path=s.annotations)
        assert norm.warnings == [] and norm.bbox_only == {} and norm.category_map == {}
        assert norm.coco["annotations"] == raw["annotations"]
    import_coco_export(tmp_path / "e1", tmp_path / "p2", name=None, version=None)
    for s in ("train", "val"):
        assert (tmp_path / "p1" / "annotations" / f"{s}.json").read_bytes() == \
            (tmp_path / "p2" / "annotations" / f"{s}.json").read_bytes()


@pytest.mark.parametrize("split", ["train", "val"])
def test_label_maps_round_trip_through_the_palette_reader(tmp_path, split):
    p1 = _package(tmp_path / "p1")
    export_package(p1, tmp_path / "e1", "label_maps")
    table = ColorTable([c.name for c in TAX], [c.color for c in TAX], source="taxonomy.yaml")
    res = read_voc(tmp_path / "e1" / "label_maps" / split, tmp_path / "e1" / "images" / split, colors=table,
                   split=split)
    assert res.taxonomy.names == TAX.names and res.taxonomy.background_id == 0
    write_imported(res, tmp_path / "p2", name="rt", license="CC-BY-4.0")
    p2 = DatasetPackage.open(tmp_path / "p2")
    t1, t2 = _targets(p1), _targets(p2)
    assert all((t1[k] == t2[k]).all() for k in t2) and len(t2) == len(p1.split(split).images)
