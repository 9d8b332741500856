"""SplitData.semantic_target from COCO, cross-checked against a straightforward reference:
each annotation decoded alone with pycocotools and painted in order (decreasing area, ties by
increasing annotation id), crowd painted like any other, ignore boxes where no annotation lies."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from segval.dataset.split import SplitData
from segval.dataset.taxonomy import Category, Taxonomy
from segval.errors import DatasetError

CATS = [Category(0, "background", (0, 0, 0), False, "stuff"), Category(3, "table", (1, 1, 1), False, "stuff"),
        Category(7, "mug", (2, 2, 2), True, "rigid"), Category(9, "cable", (3, 3, 3), True, "thin"),
        Category(12, "box", (4, 4, 4), True, "rigid")]
H, W = 14, 11


def compressed(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": rle["counts"].decode("ascii")}


def reference_target(split: SplitData, image_id: int) -> np.ndarray:
    """The semantic rule, written the plain way: one pycocotools decode per annotation."""
    rec = split.image(image_id)
    anns = split.annotations_for(image_id)
    masks = []
    for a in anns:
        seg = a["segmentation"]
        if isinstance(seg, list):  # polygons
            rle = mask_utils.merge(mask_utils.frPyObjects(seg, rec.height, rec.width))
        elif isinstance(seg["counts"], list):  # uncompressed
            rle = mask_utils.frPyObjects(seg, rec.height, rec.width)
        else:
            rle = {"size": seg["size"], "counts": seg["counts"].encode("ascii")}
        masks.append(mask_utils.decode(rle).astype(bool))
    order = sorted(range(len(anns)), key=lambda i: (-int(masks[i].sum()), int(anns[i]["id"])))
    lut = split.taxonomy.lut()
    bg = split.taxonomy.background_id
    target = np.full((rec.height, rec.width), lut[255 if bg is None else bg], dtype=np.uint8)
    for i in order:
        target[masks[i]] = lut[anns[i]["category_id"]]
    boxes = split.ignore_boxes.get(image_id, [])
    for x, y, w, h in boxes:
        ys = np.arange(rec.height)[:, None] + 0.5  # pixel centres
        xs = np.arange(rec.width)[None, :] + 0.5
        inside = (xs >= x) & (xs <= x + w) & (ys >= y) & (ys <= y + h)
        covered = np.logical_or.reduce(masks) if masks else np.zeros_like(inside)
        target[inside & ~covered] = 255
    return target


def make_split(tmp_path: Path, anns: list[dict], *, images: list[dict] | None = None, background_id: int | None = 0,
               ignore_boxes: dict | None = None) -> SplitData:
    images = images or [{"id": 1, "file_name": "a.png", "width": W, "height": H}]
    cats = CATS if background_id is not None else CATS[1:]
    coco = {"images": images, "annotations": anns, "categories": [{"id": c.id, "name": c.name} for c in cats]}
    return SplitData("train", coco, images_dir=tmp_path, taxonomy=Taxonomy(cats, background_id),
                     annotation_path=tmp_path / "train.json", ignore_boxes=ignore_boxes)


def ann(ann_id: int, cat: int, segmentation, iscrowd: int = 0, image_id: int = 1) -> dict:
    return {"id": ann_id, "image_id": image_id, "category_id": cat, "segmentation": segmentation, "iscrowd": iscrowd,
            "area": 0, "bbox": [0, 0, 1, 1]}


def hand_built() -> list[dict]:
    """Overlaps, a crowd region, equal areas (ties by id, listed out of id order), a mask starting at
    pixel 0, an empty mask, a whole-image mask, a polygon and an uncompressed RLE in one image."""
    table = np.zeros((H, W), bool)
    table[0:10, :] = True  # starts at pixel 0 (counts begin with 0)
    crowd = np.zeros((H, W), bool)
    crowd[6:13, 2:9] = True
    tie_a = np.zeros((H, W), bool)
    tie_a[2:5, 3:6] = True  # 9 px
    tie_b = np.zeros((H, W), bool)
    tie_b[3:6, 4:7] = True  # 9 px, overlaps tie_a
    inner = np.zeros((H, W), bool)
    inner[8, 4] = True  # inside the crowd region
    stripes = np.zeros((H, W), bool)
    stripes[::2, ::3] = True  # many runs
    uncompressed = mask_utils.frPyObjects({"size": [H, W], "counts": _counts_list(stripes)}, H, W)
    assert mask_utils.decode(uncompressed).astype(bool).sum() == stripes.sum()
    return [
        ann(40, 3, compressed(table)),
        ann(31, 7, compressed(tie_b)),
        ann(30, 9, compressed(tie_a)),  # same area as 31, lower id: painted first, 31 on top
        ann(25, 12, compressed(crowd), iscrowd=1),
        ann(50, 9, compressed(inner)),
        ann(51, 7, compressed(np.zeros((H, W), bool))),
        ann(60, 12, [[1.0, 11.0, 5.0, 11.0, 5.0, 13.5, 1.0, 13.5]]),  # polygon
        ann(61, 9, {"size": [H, W], "counts": _counts_list(stripes)}),  # uncompressed RLE
    ]


def _counts_list(mask: np.ndarray) -> list[int]:
    flat = mask.T.reshape(-1)
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    counts = np.diff(np.concatenate(([0], change, [flat.size]))).tolist()
    return ([0] + counts) if flat[0] else counts


def test_hand_built_overlaps_match_reference(tmp_path: Path) -> None:
    split = make_split(tmp_path, hand_built())
    got = split.semantic_target(split.image(1))
    np.testing.assert_array_equal(got, reference_target(split, 1))
    assert got.flags.c_contiguous and got.dtype == np.uint8 and got.shape == (H, W)
    lut = split.taxonomy.lut()
    assert got[3, 4] == lut[7]  # tie: annotation 31 (mug) painted after 30 (cable)
    assert got[8, 4] == lut[9]  # the 1-pixel cable stays visible on the crowd box
    assert got[12, 8] == lut[12]  # crowd painted with its category
    assert got[13, 10] == lut[0]  # background
    # the compressed annotations were parsed together (views of one array), the others alone
    bases = [split._rle_cache[a].counts.base for a in (40, 31, 30, 25, 50, 51)]
    assert bases[0] is not None and all(b is bases[0] for b in bases)
    assert split._rle_cache[61].counts.base is not bases[0]
    # warm run-length cache: the same target again
    np.testing.assert_array_equal(split.semantic_target(split.image(1)), got)


def test_ignore_boxes_and_no_background(tmp_path: Path) -> None:
    boxes = {1: [[0.0, 9.0, 11.0, 5.0], [7.6, 0.2, 2.0, 3.0]]}
    for background_id in (0, None):
        anns = [a for a in hand_built() if background_id is not None or a["category_id"] != 0]
        split = make_split(tmp_path, anns, background_id=background_id, ignore_boxes=boxes)
        got = split.semantic_target(split.image(1))
        np.testing.assert_array_equal(got, reference_target(split, 1))
        assert (got == 255).any()


def test_random_images_match_reference(tmp_path: Path) -> None:
    rng = np.random.default_rng(19)
    images, anns, next_id = [], [], 1
    for image_id in range(1, 13):
        h, w = (int(v) for v in rng.integers(1, 40, size=2))
        images.append({"id": image_id, "file_name": f"{image_id}.png", "width": w, "height": h})
        for _ in range(int(rng.integers(0, 9))):
            y0, x0 = int(rng.integers(0, h)), int(rng.integers(0, w))
            m = np.zeros((h, w), bool)
            m[y0 : y0 + int(rng.integers(1, h + 1)), x0 : x0 + int(rng.integers(1, w + 1))] = True
            m &= rng.random((h, w)) < rng.choice([0.5, 1.0])
            cat = int(rng.choice([c.id for c in CATS]))
            anns.append(ann(int(rng.permutation(1000)[0]) * 100 + next_id, cat, compressed(m),
                            iscrowd=int(rng.random() < 0.2), image_id=image_id))
            next_id += 1
    split = make_split(tmp_path, anns, images=images)
    for rec in split.images:
        np.testing.assert_array_equal(split.semantic_target(rec), reference_target(split, rec.id), err_msg=str(rec.id))


@pytest.mark.parametrize("bad", ["0", "1P", "3\x7f", ""])
def test_corrupt_counts_named_in_a_batch(tmp_path: Path, bad: str) -> None:
    """A corrupt string among good ones raises DatasetError naming that annotation, as alone."""
    anns = hand_built()
    anns.append(ann(77, 7, {"size": [H, W], "counts": bad}))
    split = make_split(tmp_path, anns)
    with pytest.raises(DatasetError) as err:
        split.semantic_target(split.image(1))
    assert err.value.annotation_id == 77 and "corrupt RLE counts" in str(err.value)


def test_instances_unchanged_by_batched_parse(tmp_path: Path) -> None:
    split = make_split(tmp_path, hand_built())
    for inst, a in zip(split.instances(split.image(1)), split.annotations_for(1)):
        seg = a["segmentation"]
        if isinstance(seg, dict) and isinstance(seg["counts"], str):
            expect = mask_utils.decode({"size": seg["size"], "counts": seg["counts"].encode()}).astype(bool)
            np.testing.assert_array_equal(inst.mask, expect)
    assert math.isclose(split._rle_cache_nbytes, sum(r.counts.nbytes for r in split._rle_cache.values()))


@pytest.mark.parametrize("size", [[float(H), W], [W, H], (H, W, 1)])
def test_bad_rle_size_named_in_a_batch(tmp_path: Path, size) -> None:
    """A compressed RLE whose size is not [H, W] as ints is left to the one-by-one decoder, which names it."""
    anns = hand_built()
    anns.append(ann(78, 7, {"size": size, "counts": hand_built()[1]["segmentation"]["counts"]}))
    split = make_split(tmp_path, anns)
    with pytest.raises(DatasetError) as err:
        split.semantic_target(split.image(1))
    assert err.value.annotation_id == 78 and "size" in str(err.value)
