"""Shared pytest fixtures.

``make_coco_package``: a factory writing a tiny dataset package by hand (not with
PackageWriter), so tests can plant any defect in dataset.yaml, the COCO file, images or label maps;
``shapes_root``: a generated 4-class shapes package (8 train / 4 val images, videos of 2 frames).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from PIL import Image
from pycocotools import mask as mask_utils

from segval.demo.shapes import write_shapes_package

#: taxonomy of the fixture package: background 0, cube 1, cable 4 (train indices 0, 1, 2)
FIXTURE_TAXONOMY = [
    {"id": 0, "name": "background", "color": [0, 0, 0], "isthing": False, "group": "stuff"},
    {"id": 1, "name": "cube", "color": [200, 30, 30], "isthing": True, "group": "rigid"},
    {"id": 4, "name": "cable", "color": [30, 200, 30], "isthing": True, "group": "thin"},
]
FIXTURE_H, FIXTURE_W = 6, 8


def fixture_rle(mask: np.ndarray) -> dict[str, Any]:
    """Compressed COCO RLE (counts str) of a bool[H, W] mask."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": rle["counts"].decode("ascii")}


def fixture_masks() -> tuple[np.ndarray, np.ndarray]:
    """The two default instance masks (cube: big box, cable: a row crossing it), bool[6, 8]."""
    cube = np.zeros((FIXTURE_H, FIXTURE_W), bool)
    cube[1:5, 1:6] = True  # area 20
    cable = np.zeros((FIXTURE_H, FIXTURE_W), bool)
    cable[3, 0:8] = True  # area 8, lies on the cube
    return cube, cable


@pytest.fixture
def make_coco_package(tmp_path: Path):
    """Factory: ``make_coco_package(**overrides) -> Path`` of a package root in tmp_path.

    Keyword args (all optional):
        name: folder name (default "pkg").
        images: COCO image entries (default: one 8x6 image ``a.png`` with id 1).
        annotations: COCO annotation entries (default: cube id 10 and cable id 11 on image 1).
        categories: COCO categories (default: the fixture taxonomy).
        image_files: {file_name: uint8 array or raw bytes}; default: a random RGB PNG of the
            entry's size for every image entry.
        label_maps: {file_name: uint8[H, W]} written to label_maps/train/<stem>.png;
            default: the correct label map; None: no label-map folder.
        meta: dataset.yaml overrides (merged).
        annotation_text: raw text written as annotations/train.json instead of the COCO dict.

    The factory also carries helpers: ``.H``, ``.W`` (6, 8), ``.rle(mask)`` (compressed RLE
    dict), ``.masks()`` (the default cube and cable masks), ``.taxonomy`` (dataset.yaml entries).
    """
    counter = [0]

    def make(**kw: Any) -> Path:
        counter[0] += 1
        root = tmp_path / kw.get("name", f"pkg{counter[0]}")
        cube, cable = fixture_masks()
        images = kw.get("images", [{"id": 1, "file_name": "a.png", "width": FIXTURE_W, "height": FIXTURE_H}])
        anns = kw.get(
            "annotations",
            [
                {"id": 10, "image_id": 1, "category_id": 1, "segmentation": fixture_rle(cube), "area": 20,
                 "bbox": [1, 1, 5, 4], "iscrowd": 0},
                {"id": 11, "image_id": 1, "category_id": 4, "segmentation": fixture_rle(cable), "area": 8,
                 "bbox": [0, 3, 8, 1], "iscrowd": 0},
            ],
        )
        cats = kw.get("categories", [{"id": c["id"], "name": c["name"]} for c in FIXTURE_TAXONOMY])
        meta = {
            "name": "fixture",
            "version": "1.0.0",
            "license": "CC-BY-4.0",
            "description": "test fixture",
            "splits": ["train"],
            "background_id": 0,
            "taxonomy": FIXTURE_TAXONOMY,
        }
        meta.update(kw.get("meta", {}))
        (root / "annotations").mkdir(parents=True)
        (root / "dataset.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
        text = kw.get("annotation_text")
        if text is None:
            text = json.dumps({"images": images, "annotations": anns, "categories": cats}, indent=1)
        (root / "annotations" / "train.json").write_text(text)

        img_dir = root / "images" / "train"
        img_dir.mkdir(parents=True)
        rng = np.random.default_rng(0)
        files = kw.get("image_files")
        if files is None:
            files = {
                im["file_name"]: rng.integers(0, 256, (im["height"], im["width"], 3), dtype=np.uint8)
                for im in images
                if isinstance(im, dict) and isinstance(im.get("file_name"), str) and ".." not in im["file_name"]
                and not im["file_name"].startswith("/")
            }
        for fn, content in files.items():
            p = img_dir / fn
            p.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                p.write_bytes(content)
            else:
                Image.fromarray(content).save(p)

        lms = kw.get("label_maps", "default")
        if lms == "default":
            lm = np.zeros((FIXTURE_H, FIXTURE_W), np.uint8)
            lm[cube] = 1
            lm[cable] = 4
            lms = {"a.png": lm}
        if lms is not None:
            lm_dir = root / "label_maps" / "train"
            lm_dir.mkdir(parents=True)
            for fn, arr in lms.items():
                p = lm_dir / Path(fn).with_suffix(".png")
                p.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(arr).save(p)
        return root

    # helpers for tests (tests/ is a package, so tests do not import conftest directly)
    make.H, make.W = FIXTURE_H, FIXTURE_W
    make.rle = fixture_rle
    make.masks = fixture_masks
    make.taxonomy = FIXTURE_TAXONOMY
    return make


@pytest.fixture(scope="session")
def shapes_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4-class package: 8 train / 4 val images of 64x64, videos of 2 frames."""
    return write_shapes_package(tmp_path_factory.mktemp("data") / "shapes", frames_per_video=2)
