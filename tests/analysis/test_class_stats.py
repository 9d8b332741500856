"""class_statistics: exact counts on a hand-built package, cross-checked on a shapes package with pycocotools."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from segval.analysis.class_stats import class_statistics
from segval.dataset import Category, DatasetPackage, InstanceMask, PackageWriter, Taxonomy
from segval.demo.shapes import write_shapes_package

H, W = 12, 16


def _taxonomy(background_id: int | None = 0) -> Taxonomy:
    return Taxonomy(
        [
            Category(0, "background", (0, 0, 0), False, "stuff"),
            Category(3, "mug", (200, 30, 30), True, "rigid"),
            Category(8, "cable", (30, 200, 30), True, "thin"),
            Category(9, "table", (90, 90, 90), False, "stuff"),
            Category(12, "spoon", (30, 30, 200), True, "rigid"),  # never annotated
        ],
        background_id=background_id,
    )


def _box(r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[r0:r1, c0:c1] = True
    return m


def _write_hand_package(root, background_id: int | None = 0):
    img = np.zeros((H, W, 3), np.uint8)
    with PackageWriter(root, name="hand", version="1.0.0", taxonomy=_taxonomy(background_id), splits=["train"]) as w:
        # image 1: mug (area 24) with a cable (area 16) lying across it: 6 mug pixels hidden
        w.add_image("train", img, "a.png", instances=[InstanceMask(3, _box(2, 6, 2, 8)), InstanceMask(8, _box(4, 5, 0, 16))])
        # image 2: mug (25), a crowd mug region (9; painted, not an instance), table (64)
        w.add_image("train", img, "b.png", instances=[InstanceMask(3, _box(0, 5, 0, 5)),
                                                      InstanceMask(3, _box(0, 3, 10, 13), iscrowd=1),
                                                      InstanceMask(9, _box(8, 12, 0, 16))])
        # image 3: two cables (10 and 4)
        w.add_image("train", img, "c.png", instances=[InstanceMask(8, _box(6, 7, 0, 10)), InstanceMask(8, _box(0, 2, 14, 16))])
    return root


def test_exact_counts_on_hand_built_package(tmp_path):
    split = DatasetPackage.open(_write_hand_package(tmp_path / "pkg")).split("train")
    stats = class_statistics(split)
    assert list(stats) == ["background", "mug", "cable", "table", "spoon"]
    assert stats["mug"] == {"images": 2, "instances": 2, "pixels": 18 + 25 + 9, "median_instance_area": 24.5}
    assert stats["cable"] == {"images": 2, "instances": 3, "pixels": 16 + 14, "median_instance_area": 10.0}
    assert stats["table"] == {"images": 1, "instances": 1, "pixels": 64, "median_instance_area": 64.0}
    assert stats["spoon"] == {"images": 0, "instances": 0, "pixels": 0, "median_instance_area": None}
    assert stats["background"] == {"images": 3, "instances": 0, "pixels": 3 * H * W - 52 - 30 - 64,
                                   "median_instance_area": None}
    # the label maps give the same figures
    assert class_statistics(split, source="label_map") == stats


def test_ignored_pixels_belong_to_no_class(tmp_path):
    split = DatasetPackage.open(_write_hand_package(tmp_path / "pkg", background_id=None)).split("train")
    stats = class_statistics(split)
    assert stats["background"] == {"images": 0, "instances": 0, "pixels": 0, "median_instance_area": None}
    assert stats["mug"]["pixels"] == 52 and stats["cable"]["pixels"] == 30


def test_bad_arguments(tmp_path):
    split = DatasetPackage.open(_write_hand_package(tmp_path / "pkg")).split("train")
    other = Taxonomy([Category(0, "background", (0, 0, 0), False, "stuff")], background_id=0)
    with pytest.raises(ValueError, match="taxonomy"):
        class_statistics(split, other)
    with pytest.raises(ValueError, match="source"):
        class_statistics(split, source="png")


def test_shapes_package_matches_independent_pycocotools_count(tmp_path):
    root = write_shapes_package(tmp_path / "shapes", images={"train": 12}, size=(40, 48), seed=3)
    pkg = DatasetPackage.open(root)
    stats = class_statistics(pkg.split("train"), pkg.taxonomy, progress=False)

    coco = json.loads((root / "annotations" / "train.json").read_text())
    names = {c["id"]: c["name"] for c in coco["categories"]}
    pixels = {n: 0 for n in names.values()}
    images = {n: 0 for n in names.values()}
    areas: dict[str, list[int]] = {n: [] for n in names.values()}
    for im in coco["images"]:
        anns = [a for a in coco["annotations"] if a["image_id"] == im["id"]]
        masks = [mask_utils.decode(a["segmentation"]).astype(bool) for a in anns]
        target = np.zeros((im["height"], im["width"]), np.int64)  # background id 0
        for k in sorted(range(len(anns)), key=lambda k: (-int(masks[k].sum()), anns[k]["id"])):
            target[masks[k]] = anns[k]["category_id"]
        for cid, n in names.items():
            count = int((target == cid).sum())
            pixels[n] += count
            images[n] += count > 0
        for a, m in zip(anns, masks):
            if not a["iscrowd"]:
                areas[names[a["category_id"]]].append(int(m.sum()))
    for n in names.values():
        assert stats[n]["pixels"] == pixels[n], n
        assert stats[n]["images"] == images[n], n
        assert stats[n]["instances"] == len(areas[n]), n
        expected = float(np.median(areas[n])) if areas[n] else None
        assert stats[n]["median_instance_area"] == expected, n
    assert sum(s["pixels"] for s in stats.values()) == 12 * 40 * 48
