"""SegmentationDataModule: batches, COCO vs label maps, transforms, collation, hold-out split, workers, errors."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

import segval
from segval.datamodules import SegmentationDataModule
from segval.datamodules.datamodule import holdout_split
from segval.datamodules.dataset import pad_collate
from segval.dataset.coco import ImageRecord
from segval.demo.shapes import write_shapes_package
from segval.errors import ConfigError

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
IGNORE = 255
SHAPES_INDICES = {0, 1, 2, 3}  # background, disc, square, bar: ids == train indices


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 train / 3 val images of 64x64, 3 videos of 2 frames in train."""
    return write_shapes_package(tmp_path_factory.mktemp("dm") / "shapes", images={"train": 6, "val": 3},
                                frames_per_video=2)


def make_dm(root: Path, **kw) -> SegmentationDataModule:  # noqa: ANN003
    kw.setdefault("validate", False)
    kw.setdefault("num_workers", 0)
    return SegmentationDataModule(root=root, **kw)


def demo_train_transforms(crop_size: list[int]) -> list[dict]:
    """The train transforms of conf/data/demo.yaml with ``crop_size`` resolved."""
    conf = OmegaConf.load(Path(segval.__file__).parent / "conf" / "data" / "demo.yaml")
    merged = OmegaConf.merge({"data": conf}, {"data": {"crop_size": crop_size, "root": "unused"}})
    return OmegaConf.to_container(merged.data.train_transforms, resolve=True)


# ---------------------------------------------------------------------------- batches
def test_batch_dtypes_shapes_and_normalisation(shapes: Path) -> None:
    dm = make_dm(shapes, batch_size=2, val_batch_size=2, val_transforms=None)
    dm.setup("fit")
    batch = next(iter(dm.val_dataloader()))
    assert batch["image"].dtype == torch.float32 and batch["image"].shape == (2, 3, 64, 64)
    assert batch["mask"].dtype == torch.int64 and batch["mask"].shape == (2, 64, 64)
    assert set(torch.unique(batch["mask"]).tolist()) <= SHAPES_INDICES | {IGNORE}
    # one pixel by hand: (x / 255 - mean) / std, x read straight from the PNG
    split = dm.load().split("val")
    rec = split.image(int(batch["image_id"][1]))
    raw = np.asarray(Image.open(shapes / "images" / "val" / rec.file_name).convert("RGB"))
    y, x = 17, 41
    for c in range(3):
        expected = (raw[y, x, c] / 255.0 - MEAN[c]) / STD[c]
        assert batch["image"][1, c, y, x].item() == pytest.approx(expected, abs=1e-5)


def test_coco_and_label_map_targets_are_identical(shapes: Path) -> None:
    dms = {fmt: make_dm(shapes, format=fmt, train_transforms=None, val_transforms=None)
           for fmt in ("coco", "label_map")}
    for dm in dms.values():
        dm.setup("fit")
    for split in ("train", "val"):
        coco, lmap = dms["coco"].dataset(split), dms["label_map"].dataset(split)
        assert len(coco) == len(lmap) > 0
        for i in range(len(coco)):
            a, b = coco[i], lmap[i]
            assert a["image_id"] == b["image_id"]
            torch.testing.assert_close(a["mask"], b["mask"], rtol=0, atol=0)
            torch.testing.assert_close(a["image"], b["image"], rtol=0, atol=0)


def test_label_map_format_without_label_maps_is_a_config_error(make_coco_package) -> None:  # noqa: ANN001
    root = make_coco_package(label_maps=None, meta={"splits": ["train"]})
    dm = make_dm(root, format="label_map", val_split="train")
    with pytest.raises(ConfigError, match="data.format"):
        dm.setup("fit")


def test_demo_train_transforms_crop_and_pad_masks_with_ignore(shapes: Path) -> None:
    crop = [100, 120]  # larger than 64x64 scaled by at most 1.5: every crop is padded
    dm = make_dm(shapes, crop_size=crop, train_transforms=demo_train_transforms(crop))
    dm.setup("fit")
    torch.manual_seed(0)
    for i in range(len(dm.data_train)):
        item = dm.data_train[i]
        assert item["image"].shape == (3, *crop) and item["mask"].shape == tuple(crop)
        mask = item["mask"]
        assert set(torch.unique(mask).tolist()) <= SHAPES_INDICES | {IGNORE}
        valid = int((mask != IGNORE).sum())
        # the scaled image (48..96 px a side) is all that is not padding; shapes has no ignore pixels
        assert 48 * 48 <= valid <= 96 * 96
        assert int((mask == IGNORE).sum()) == crop[0] * crop[1] - valid


def test_train_augmentations_are_reproducible_and_differ_between_workers(shapes: Path) -> None:
    crop = [48, 48]
    dm = make_dm(shapes, crop_size=crop, train_transforms=demo_train_transforms(crop), batch_size=1)
    dm.setup("fit")
    ds = dm.data_train
    ds.records = [ds.records[0]] * 4  # the same image four times: only the augmentation differs

    def masks() -> list[torch.Tensor]:
        torch.manual_seed(123)
        loader = torch.utils.data.DataLoader(ds, batch_size=1, num_workers=2, collate_fn=pad_collate)
        return [b["mask"][0] for b in loader]

    first, second = masks(), masks()
    for a, b in zip(first, second):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # items 0 and 1 come from workers 0 and 1: they must not share one random stream
    assert not torch.equal(first[0], first[1]) or not torch.equal(first[2], first[3])


# ---------------------------------------------------------------------------- collation
def test_pad_collate_mixed_sizes() -> None:
    a = {"image": torch.ones(3, 4, 5), "mask": torch.zeros(4, 5, dtype=torch.long), "image_id": 7}
    b = {"image": torch.full((3, 6, 3), 2.0), "mask": torch.ones(6, 3, dtype=torch.long), "image_id": 9}
    batch = pad_collate([a, b])
    assert batch["image"].shape == (2, 3, 6, 5) and batch["mask"].shape == (2, 6, 5)
    assert batch["mask"].dtype == torch.int64 and batch["image_id"].tolist() == [7, 9]
    assert torch.all(batch["image"][0, :, :4, :5] == 1) and torch.all(batch["image"][0, :, 4:, :] == 0)
    assert torch.all(batch["mask"][0, :4, :5] == 0) and torch.all(batch["mask"][0, 4:, :] == IGNORE)
    assert torch.all(batch["image"][1, :, :, :3] == 2) and torch.all(batch["image"][1, :, :, 3:] == 0)
    assert torch.all(batch["mask"][1, :, :3] == 1) and torch.all(batch["mask"][1, :, 3:] == IGNORE)


# ---------------------------------------------------------------------------- hold-out split
def _records(n_videos: int, frames: int) -> list[ImageRecord]:
    return [ImageRecord(id=100 + v * frames + f, file_name=f"{v}_{f}.png", width=8, height=8, video_id=v, frame_index=f)
            for v in range(n_videos) for f in range(frames)]


def _check_partition(out: dict[str, list[int]], n: int) -> None:
    assert sorted(out["train"] + out["val"]) == list(range(n))
    assert not set(out["train"]) & set(out["val"])


def test_holdout_keeps_videos_together_and_respects_the_fraction() -> None:
    recs = _records(10, 3)
    out = holdout_split(recs, 0.2)
    _check_partition(out, len(recs))
    val_videos = {recs[i].video_id for i in out["val"]}
    train_videos = {recs[i].video_id for i in out["train"]}
    assert len(val_videos) == 2 and not val_videos & train_videos
    assert len(out["val"]) == 2 * 3
    assert holdout_split(recs, 0.2) == out  # deterministic
    # the choice depends on the ids, not on the file order
    shuffled = recs[:]
    random.Random(0).shuffle(shuffled)
    out_shuffled = holdout_split(shuffled, 0.2)
    assert {shuffled[i].video_id for i in out_shuffled["val"]} == val_videos


def test_holdout_by_image_without_videos() -> None:
    recs = [ImageRecord(id=i, file_name=f"{i}.jpg", width=8, height=8) for i in range(10)]
    out = holdout_split(recs, 0.3)
    _check_partition(out, 10)
    assert len(out["val"]) == 3
    assert holdout_split(recs, 0.3) == out


def test_holdout_edge_cases() -> None:
    one = [ImageRecord(id=0, file_name="a.jpg", width=8, height=8)]
    assert holdout_split(one, 0.2) == {"train": [0], "val": [0]}  # validate on the training image
    two = [ImageRecord(id=i, file_name=f"{i}.jpg", width=8, height=8) for i in range(2)]
    out = holdout_split(two, 0.01)
    assert len(out["train"]) == 1 and len(out["val"]) == 1  # val holds at least one image
    three = _records(3, 2)
    out = holdout_split(three, 0.99)
    _check_partition(out, 6)
    assert len(out["train"]) == 2  # at least one video is left to train on


def test_plain_coco_holdout_through_the_datamodule(tmp_path: Path) -> None:
    root = write_shapes_package(tmp_path / "s", images={"train": 10})
    dm = SegmentationDataModule(annotations=root / "annotations" / "train.json", images=root / "images" / "train",
                                val_fraction=0.2, validate=False)
    dm.setup("fit")
    train_ids = {r.id for r in dm.data_train.records}
    val_ids = {r.id for r in dm.data_val.records}
    assert len(val_ids) == 2 and len(train_ids) == 8 and not train_ids & val_ids
    assert dm.class_names == ["background", "disc", "square", "bar"]
    with pytest.raises(ConfigError, match="'test'"):
        dm.dataset("test")


@pytest.mark.parametrize("bbox_only", ["ignore_box", "drop"])
def test_plain_coco_boxes_without_masks_are_ignore_in_the_batch(tmp_path: Path, bbox_only: str) -> None:
    """A bbox-only annotation of a plain COCO export: 255 in the batch mask where no annotation lies (ignore_box),
    or taught as what lies under it (drop)."""
    import json

    root = write_shapes_package(tmp_path / "s", images={"train": 5})
    coco = json.loads((root / "annotations" / "train.json").read_text())
    rec = coco["images"][0]
    coco["annotations"].append({"id": 10**6, "image_id": rec["id"], "category_id": 1, "segmentation": [],
                                "bbox": [0, 0, 6, 4], "area": 24, "iscrowd": 0})
    (tmp_path / "ann.json").write_text(json.dumps(coco))
    dm = SegmentationDataModule(annotations=tmp_path / "ann.json", images=root / "images" / "train", val_fraction=0.2,
                                validate=False, bbox_only=bbox_only)
    dm.setup("fit")
    sd = dm.load().split("train")
    boxed = np.zeros((rec["height"], rec["width"]), bool)
    boxed[0:4, 0:6] = True  # pixel centres inside [0, 6) x [0, 4)
    covered = np.zeros_like(boxed)
    for inst in sd.instances(sd.image(rec["id"])):
        covered |= inst.mask
    ds = dm.data_train if rec["id"] in {r.id for r in dm.data_train.records} else dm.data_val
    k = [r.id for r in ds.records].index(rec["id"])
    mask = ds[k]["mask"].numpy()
    if bbox_only == "drop":
        assert not (mask == IGNORE).any()
    else:
        assert (mask[boxed & ~covered] == IGNORE).all() and not (mask[~(boxed & ~covered)] == IGNORE).any()
    assert any("box but no mask" in w for w in dm.load().warnings)


# ---------------------------------------------------------------------------- workers
def test_workers_yield_the_same_images(shapes: Path) -> None:
    ids = {}
    for workers in (0, 2):
        dm = make_dm(shapes, num_workers=workers, batch_size=2, val_batch_size=2,
                     train_transforms=None, val_transforms=None)
        dm.setup("fit")
        val = [i for b in dm.val_dataloader() for i in b["image_id"].tolist()]
        train = [i for b in dm.train_dataloader() for i in b["image_id"].tolist()]
        ids[workers] = (val, sorted(train))
    assert ids[0] == ids[2]
    assert len(ids[0][1]) == 6 and len(ids[0][0]) == 3


# ---------------------------------------------------------------------------- configuration errors
@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({}, "data.root"),
        ({"annotations": "x.json"}, "data.images"),
        ({"images": "imgs"}, "data.annotations"),
        ({"root": "r", "format": "png"}, "data.format"),
        ({"root": "r", "val_fraction": 0.0}, "data.val_fraction"),
        ({"root": "r", "val_fraction": 1.0}, "data.val_fraction"),
        ({"root": "r", "batch_size": 0}, "data.batch_size"),
        ({"root": "r", "pin_memory": "sometimes"}, "data.pin_memory"),
        ({"root": "r", "prefetch_factor": 0}, "data.prefetch_factor"),
    ],
)
def test_config_errors_name_the_key(kwargs: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        SegmentationDataModule(**kwargs)


@pytest.mark.parametrize("key", ["train_split", "val_split"])
def test_unknown_split_names_the_key(shapes: Path, key: str) -> None:
    dm = make_dm(shapes, **{key: "tset"})
    with pytest.raises(ConfigError, match=rf"data\.{key}='tset'.*\['train', 'val'\]"):
        dm.setup("fit")


def test_prepare_data_validates_once(shapes: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import segval.dataset.validate as validate_mod

    calls: list[list[str]] = []
    monkeypatch.setattr(validate_mod, "validate_package", lambda pkg, splits=None, **kw: calls.append(splits))
    dm = make_dm(shapes, validate=True)
    dm.prepare_data()
    dm.prepare_data()  # trainer.fit and the trainer.validate after it both call it
    assert calls == [["train", "val"]]


def test_excluded_train_ids_are_not_trained_on(shapes: Path, tmp_path: Path) -> None:
    ids = [r.id for r in make_dm(shapes).load().split("train").images]
    held = tmp_path / "held_out.json"
    held.write_text(json.dumps(ids[:3]))
    dm = make_dm(shapes, exclude_train_ids=str(held))
    dm.setup("fit")
    assert sorted(r.id for r in dm.data_train.records) == sorted(ids[3:])
    with pytest.raises(ConfigError, match="leaves no image"):
        make_dm(shapes, exclude_train_ids=ids).setup("fit")
    with pytest.raises(ConfigError, match="exclude_train_ids"):
        make_dm(shapes, exclude_train_ids=str(tmp_path / "missing.json"))


def test_pin_memory_auto_follows_the_trainer_device_and_prefetch_reaches_the_loader(shapes: Path) -> None:
    from types import SimpleNamespace

    dm = make_dm(shapes, num_workers=1, pin_memory="auto", prefetch_factor=3)
    dm.setup("fit")
    loader = dm.train_dataloader()
    assert loader.pin_memory is False and loader.prefetch_factor == 3 and loader.persistent_workers
    dm.trainer = SimpleNamespace(strategy=SimpleNamespace(root_device=torch.device("cuda", 0)))
    assert dm._pin_memory() is True  # a CUDA trainer: page-locked batches
    assert make_dm(shapes, pin_memory=True)._pin_memory() is True
    assert make_dm(shapes, num_workers=0, prefetch_factor=3)._loader(dm.data_val, 1, False, False).prefetch_factor is None
