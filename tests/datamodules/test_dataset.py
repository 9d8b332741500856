"""Instance / panoptic targets from the same DataModule, panoptic files, and the bad inputs of issue 5."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from segval.datamodules import SegmentationDataModule
from segval.dataset.export import export_package
from segval.dataset.package import DatasetPackage
from segval.dataset.panoptic import PanopticSplit
from segval.demo.shapes import write_shapes_package
from segval.errors import ConfigError, DatasetError

TRAIN_TRANSFORMS = [
    {"_target_": "albumentations.RandomScale", "scale_limit": [-0.25, 0.5], "p": 1.0},
    {"_target_": "albumentations.PadIfNeeded", "min_height": 80, "min_width": 80, "border_mode": 0, "fill": 0,
     "fill_mask": 255},
    {"_target_": "albumentations.RandomCrop", "height": 80, "width": 80},
    {"_target_": "albumentations.HorizontalFlip", "p": 0.5},
]


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_shapes_package(tmp_path_factory.mktemp("m2f") / "shapes", images={"train": 4, "val": 2})


def datamodule(root: Path, task: str, **kw) -> SegmentationDataModule:
    return SegmentationDataModule(root=root, task=task, batch_size=2, num_workers=0, validate=False, **kw)


@pytest.mark.parametrize("task", ["instance", "panoptic"])
def test_augmented_targets_agree_with_the_semantic_mask(shapes: Path, task: str) -> None:
    dm = datamodule(shapes, task, train_transforms=TRAIN_TRANSFORMS)
    dm.setup("fit")
    things = {1, 2, 3}
    for batch in dm.train_dataloader():
        assert batch["image"].shape[-2:] == (80, 80) and batch["size"].tolist() == [[80, 80], [80, 80]]
        for b, t in enumerate(batch["targets"]):
            sem = batch["mask"][b]
            assert t["masks"].shape == (len(t["labels"]), 80, 80) and t["masks"].dtype == torch.bool
            covered = t["masks"].sum(0)
            assert int(covered.max()) <= 1  # shapes instances do not overlap
            for m, lab in zip(t["masks"], t["labels"].tolist()):
                assert m.any() and bool((sem[m] == lab).all())  # moved with the image, same class
            labelled = sem != 255
            if task == "panoptic":  # things + stuff cover every labelled pixel, never the padding
                assert bool((covered.bool() == labelled).all())
            else:  # instances: exactly the thing pixels
                assert set(t["labels"].tolist()) <= things
                assert bool((covered.bool() == (labelled & (sem != 0))).all())


def test_semantic_batches_are_unchanged(shapes: Path) -> None:
    dm = datamodule(shapes, "semantic")
    dm.setup("validate")
    batch = next(iter(dm.val_dataloader()))
    assert set(batch) == {"image", "mask", "image_id"}


def test_crowd_instances_are_no_target_and_no_thing_class_is_refused(make_coco_package) -> None:
    cube, cable = make_coco_package.masks()
    root = make_coco_package(annotations=[
        {"id": 10, "image_id": 1, "category_id": 1, "segmentation": make_coco_package.rle(cube), "area": 20,
         "bbox": [1, 1, 5, 4], "iscrowd": 0},
        {"id": 11, "image_id": 1, "category_id": 4, "segmentation": make_coco_package.rle(cable), "area": 8,
         "bbox": [0, 3, 8, 1], "iscrowd": 1},  # the only cable is a crowd region
    ])
    dm = datamodule(root, "instance", val_split="train")
    item = dm.dataset("train")[0]
    assert item["instance_labels"].tolist() == [1]  # cube only: train index 1
    np.testing.assert_array_equal(item["instance_masks"][0].numpy(), cube)
    assert int((item["mask"] == 2).sum()) == 8  # the semantic target still paints the crowd cable
    stuff_only = [{**c, "isthing": False} for c in make_coco_package.taxonomy]
    root2 = make_coco_package(meta={"taxonomy": stuff_only})
    with pytest.raises(ConfigError, match="task=instance needs thing classes"):
        datamodule(root2, "instance", val_split="train").dataset("train")
    with pytest.raises(ConfigError, match="task must be one of"):
        datamodule(root2, "detection")


def with_panoptic_files(shapes: Path, tmp_path: Path) -> Path:
    """A copy of ``shapes`` holding the panoptic files ``segval dataset export format=panoptic`` writes."""
    out = tmp_path / "export"
    export_package(DatasetPackage.open(shapes), out, "panoptic")
    root = tmp_path / "pkg"
    shutil.copytree(shapes, root)
    shutil.copytree(out / "panoptic", root / "panoptic")
    for js in (out / "annotations").glob("panoptic_*.json"):
        shutil.copyfile(js, root / "annotations" / js.name)
    return root


def test_panoptic_files_give_the_target_built_from_coco(shapes: Path, tmp_path: Path) -> None:
    root = with_panoptic_files(shapes, tmp_path)
    split = DatasetPackage.open(root).split("val")
    files, coco = PanopticSplit.for_split(split, root), PanopticSplit.for_split(split, None)
    assert files.from_files and not coco.from_files
    for rec in split.images:
        (a, sa), (b, sb) = files.target(rec), coco.target(rec)
        np.testing.assert_array_equal(a, b)
        assert sa == sb and {s["category_id"] for s in sa} >= {0}


def test_bad_panoptic_files_are_named(shapes: Path, tmp_path: Path) -> None:
    root = with_panoptic_files(shapes, tmp_path)
    js = root / "annotations" / "panoptic_val.json"
    data = json.loads(js.read_text())
    ann = data["annotations"][0]
    split = DatasetPackage.open(root).split("val")
    rec = next(r for r in split.images if Path(r.file_name).with_suffix(".png").as_posix() == ann["file_name"])
    # a PNG segment id missing from the JSON
    dropped = ann["segments_info"].pop()
    js.write_text(json.dumps(data))
    with pytest.raises(DatasetError, match=rf"segment ids \[{dropped['id']}\] appear in the PNG") as err:
        PanopticSplit.for_split(split, root).target(rec)
    assert err.value.image_id == rec.id and "panoptic_val.json" in str(err.value)
    # two segments with one id: overlapping segments
    ann["segments_info"] += [dropped, {**dropped, "category_id": 1}]
    js.write_text(json.dumps(data))
    with pytest.raises(DatasetError, match="listed twice"):
        PanopticSplit.for_split(split, root).target(rec)
    # a JSON segment without pixels
    ann["segments_info"] = ann["segments_info"][:-1] + [{**dropped, "id": 250}]
    js.write_text(json.dumps(data))
    with pytest.raises(DatasetError, match=r"segments \[250\] of segments_info have no pixel"):
        PanopticSplit.for_split(split, root).target(rec)
    # PNG folder missing
    shutil.rmtree(root / "panoptic")
    with pytest.raises(DatasetError, match="no PNG folder"):
        PanopticSplit.for_split(split, root)


def test_panoptic_batches_leave_crowd_segments_out(make_coco_package, tmp_path: Path) -> None:
    root = make_coco_package()
    # a hand-written panoptic PNG: background (id 1), cube (id 2), a crowd cable (id 3)
    cube, cable = make_coco_package.masks()
    ids = np.ones(cube.shape, np.uint8)
    ids[cube] = 2
    ids[cable] = 3
    (root / "panoptic" / "train").mkdir(parents=True)
    Image.fromarray(np.stack([ids, 0 * ids, 0 * ids], -1)).save(root / "panoptic" / "train" / "a.png")
    segs = [{"id": 1, "category_id": 0, "iscrowd": 0}, {"id": 2, "category_id": 1, "iscrowd": 0},
            {"id": 3, "category_id": 4, "iscrowd": 1}]
    (root / "annotations" / "panoptic_train.json").write_text(json.dumps(
        {"annotations": [{"image_id": 1, "file_name": "a.png", "segments_info": segs}]}))
    item = datamodule(root, "panoptic", val_split="train").dataset("train")[0]
    assert item["instance_labels"].tolist() == [0, 1]
    np.testing.assert_array_equal(item["instance_masks"][1].numpy(), cube & ~cable)
