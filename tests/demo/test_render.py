"""The demo renderer: package layout, exact masks, video fields, determinism (tiny renders)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from segval.demo import DEMO_TAXONOMY, render_dataset
from segval.demo.scene import GRIPPER_NAME, decode_segmentation

TINY = dict(videos={"train": 2, "val": 1}, frames_per_video=3, width=96, height=72, progress=False)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    pytest.importorskip("pybullet")
    return render_dataset(tmp_path_factory.mktemp("demo") / "pkg", seed=3, **TINY)


# ---------------------------------------------------------------------------- taxonomy
def test_taxonomy_is_contiguous_with_background_zero():
    tax = DEMO_TAXONOMY
    assert tax.ids == list(range(tax.num_classes))
    assert tax.background_id == 0 and tax.names[0] == "background"
    assert len(set(tax.colors)) == tax.num_classes  # distinct display colours
    things = [c for c in tax if c.isthing and c.name not in ("robot_arm", "gripper")]
    assert len(things) >= 8
    groups = {c.name: c.group for c in tax}
    assert groups["gripper"] == "thin" and groups["teddy"] == "deformable" and groups["table"] == "stuff"


# ---------------------------------------------------------------------------- segmentation decoding
def test_decode_segmentation_background_links_and_small_instances():
    arm, table, mug = 2, 1, 5
    seg = np.full((8, 10), -1, dtype=np.int32)  # -1: nothing drawn
    seg[0:2, :] = 0  # body 0 (the floor): not annotated -> background
    seg[2:4, :] = table + (0 << 24)  # base link (-1) is stored as 0
    seg[4:6, 0:5] = arm + (0 << 24)  # arm base -> robot_arm
    seg[4:6, 5:8] = arm + (4 << 24)  # arm link 3 -> robot_arm
    seg[6:8, 0:6] = arm + (10 << 24)  # arm link 9 (finger) -> gripper
    seg[6:8, 6:8] = mug  # 4 pixels: below the minimum, dropped
    bodies = {table: "table", arm: "robot_arm", mug: "mug", 0xFFFFFF: "trap"}
    out = decode_segmentation(seg, bodies, arm)
    by_name = {i.name: i.mask for i in out}
    assert sorted(by_name) == sorted(["table", "robot_arm", GRIPPER_NAME])  # no "trap": -1 is no body
    assert by_name["table"].sum() == 20 and by_name["table"][2:4].all()
    assert by_name["robot_arm"].sum() == 16 and by_name[GRIPPER_NAME].sum() == 12
    assert all(i.mask.dtype == bool and i.mask.shape == seg.shape for i in out)
    assert len(decode_segmentation(seg, bodies, arm, min_pixels=1)) == 4  # the mug comes back


# ---------------------------------------------------------------------------- the package
def test_package_layout_and_video_fields(rendered: Path):
    assert (rendered / "dataset.yaml").is_file()
    ids = DEMO_TAXONOMY.ids
    videos = set()
    for split, n_videos in TINY["videos"].items():
        coco = json.loads((rendered / "annotations" / f"{split}.json").read_text())
        assert len(coco["images"]) == n_videos * TINY["frames_per_video"]
        for im in coco["images"]:
            assert (im["width"], im["height"]) == (96, 72)
            name, frame = im["video_name"], im["frame_index"]
            assert name.startswith(f"{split}_") and isinstance(im["video_id"], int)
            assert im["file_name"] == f"{name}/{frame:06d}.png"
            assert (rendered / "images" / split / im["file_name"]).is_file()
            videos.add((im["video_id"], name))
        assert {a["category_id"] for a in coco["annotations"]} <= set(ids)
        assert all(a["area"] > 0 for a in coco["annotations"])
    assert len(videos) == len({v for v, _ in videos}) == sum(TINY["videos"].values())


def test_masks_are_exact_and_match_label_maps(rendered: Path):
    per_class = Counter()
    for split in TINY["videos"]:
        coco = json.loads((rendered / "annotations" / f"{split}.json").read_text())
        anns = {}
        for a in coco["annotations"]:
            anns.setdefault(a["image_id"], []).append(a)
        for im in coco["images"]:
            lm = np.asarray(Image.open(rendered / "label_maps" / split / im["file_name"]))
            covered = np.zeros(lm.shape, dtype=int)
            for a in anns.get(im["id"], []):
                m = mask_utils.decode(a["segmentation"]).astype(bool)
                covered += m
                assert (lm[m] == a["category_id"]).all()
                per_class[a["category_id"]] += 1
            assert covered.max() <= 1  # one body per pixel: instances never overlap
            assert (lm[covered == 0] == DEMO_TAXONOMY.background_id).all()
    names = {DEMO_TAXONOMY.category(c).name for c in per_class}
    assert {"table", "tray"} <= names
    assert len(names) >= 6  # several object classes visible even in a tiny render


def test_package_opens_and_validates(rendered: Path):
    package = pytest.importorskip("segval.dataset.package")
    validate = pytest.importorskip("segval.dataset.validate")
    pkg = package.DatasetPackage.open(rendered)
    assert pkg.taxonomy == DEMO_TAXONOMY and list(pkg.splits) == list(TINY["videos"])
    validate.validate_package(pkg, progress=False)
    rec = pkg.split("train").images[0]
    assert rec.frame_index == 0 and rec.video_id is not None
    assert pkg.split("train").read_image(rec).shape == (72, 96, 3)


def test_same_seed_is_byte_identical_other_seed_differs(rendered: Path, tmp_path: Path):
    again = render_dataset(tmp_path / "again", seed=3, **TINY)
    assert _files(again) == _files(rendered)
    other = _files(render_dataset(tmp_path / "other", seed=4, **{**TINY, "videos": {"train": 1}}))
    first = _files(rendered)
    assert other["images/train/train_000/000000.png"] != first["images/train/train_000/000000.png"]


def test_refuses_existing_root_unless_overwrite(rendered: Path, tmp_path: Path):
    root = tmp_path / "pkg"
    root.mkdir()
    with pytest.raises(FileExistsError):
        render_dataset(root, **TINY)
    tiny = {**TINY, "videos": {"train": 1}, "frames_per_video": 1}
    assert render_dataset(root, overwrite=True, **tiny) == root
    assert (root / "images" / "train" / "train_000" / "000000.png").is_file()


@pytest.mark.parametrize(
    "bad", [{"videos": {"train": -1}}, {"videos": {}}, {"frames_per_video": 0}, {"width": 4}, {"seed": -1}]
)
def test_bad_arguments_are_value_errors(tmp_path: Path, bad):
    with pytest.raises(ValueError):
        render_dataset(tmp_path / "x", **{**TINY, **bad})
    assert not (tmp_path / "x").exists()
