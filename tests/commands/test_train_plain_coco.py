"""`segval train data=coco` on plain COCO exports, as labelme and Label Studio / CVAT write them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from tests.helpers import run_segval

pytestmark = pytest.mark.slow

LABELME_CATEGORIES = ["_background_", "person", "car", "tv/monitor"]  # labelme: id 0 is _background_


def polygon(cx: float, cy: float, r: float, n: int = 7) -> list[float]:
    """A flat [x1, y1, ...] polygon with float coordinates, as labelme writes them."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return [round(float(v), 4) for xy in zip(cx + r * np.cos(t), cy + 0.8 * r * np.sin(t)) for v in xy]


def write_jpeg(path: Path, width: int, height: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path, quality=90)


def write_labelme_export(root: Path) -> Path:
    """Like labelme's labelme2coco output: info/licenses/type blocks, ids from 0, JPEGImages/x.jpg, polygons."""
    sizes = [(80, 60), (64, 72), (80, 60), (64, 72)]  # (width, height)
    images, annotations = [], []
    for i, (w, h) in enumerate(sizes):
        name = f"JPEGImages/2011_{i:06d}.jpg"
        write_jpeg(root / name, w, h, seed=i)
        images.append({"license": 0, "url": None, "file_name": name, "height": h, "width": w,
                       "date_captured": None, "id": i})
        for k, cat in enumerate((1, 2) if i % 2 else (1, 1, 3)):
            poly = polygon(w * (0.3 + 0.2 * k), h * 0.5, min(w, h) * 0.2)
            xs, ys = poly[0::2], poly[1::2]
            annotations.append({
                "id": len(annotations), "image_id": i, "category_id": cat, "segmentation": [poly],
                "area": float(0.8 * np.pi * (min(w, h) * 0.2) ** 2),
                "bbox": [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)], "iscrowd": 0,
            })
    coco = {
        "info": {"description": None, "url": None, "version": None, "year": 2020, "contributor": None,
                 "date_created": "2020-01-26 05:46:30.244442"},
        "licenses": [{"url": None, "id": 0, "name": None}],
        "images": images,
        "type": "instances",
        "annotations": annotations,
        "categories": [{"supercategory": None, "id": i, "name": n} for i, n in enumerate(LABELME_CATEGORIES)],
    }
    path = root / "annotations.json"
    path.write_text(json.dumps(coco))
    return path


def uncompressed_rle(mask: np.ndarray) -> dict[str, Any]:
    """COCO uncompressed RLE (counts as a list, column-major, starting with a background run)."""
    flat = mask.T.reshape(-1).astype(np.uint8)
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat[0]:
        counts = [0, *counts]
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": counts}


def compressed_rle(mask: np.ndarray) -> dict[str, Any]:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": rle["counts"].decode("ascii")}


def write_label_studio_export(root: Path) -> Path:
    """Like Label Studio / CVAT COCO exports: no background category, ids from 1, RLE segmentations."""
    images, annotations = [], []
    for i in range(4):
        w, h = (80, 60) if i % 2 else (64, 72)
        name = f"images/frame_{i + 1:04d}.png"
        rng = np.random.default_rng(10 + i)
        (root / "images").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / name)
        images.append({"id": i + 1, "file_name": name, "width": w, "height": h})
        gripper = np.zeros((h, w), bool)
        gripper[h // 4 : h // 2, w // 4 : w // 2] = True
        cable = np.zeros((h, w), bool)
        cable[h // 2 + 2 : h // 2 + 5, 2 : w - 2] = True
        for cat, mask, segm in ((1, gripper, uncompressed_rle(gripper)), (2, cable, compressed_rle(cable))):
            ys, xs = np.nonzero(mask)
            annotations.append({
                "id": len(annotations) + 1, "image_id": i + 1, "category_id": cat, "segmentation": segm,
                "area": int(mask.sum()), "iscrowd": 1 if cat == 1 else 0,
                "bbox": [int(xs.min()), int(ys.min()), int(np.ptp(xs)) + 1, int(np.ptp(ys)) + 1],
            })
    coco = {"images": images, "annotations": annotations,
            "categories": [{"id": 1, "name": "gripper"}, {"id": 2, "name": "cable"}],
            "info": {"description": "exported", "year": 2024}}
    path = root / "result.json"
    path.write_text(json.dumps(coco))
    return path


def train_coco(annotations: Path, images: Path, run_dir: Path) -> Any:
    return run_segval(
        "train", "data=coco", f"data.annotations={annotations}", f"data.images={images}",
        "data.crop_size=[64,64]", "trainer.max_steps=2", "trainer.val_check_interval=2", "logger=csv",
        "data.num_workers=0", f"hydra.run.dir={run_dir}", cwd=run_dir.parent,
    )


def test_labelme_export_trains(tmp_path: Path) -> None:
    export = tmp_path / "labelme_export"
    annotations = write_labelme_export(export)
    run_dir = tmp_path / "runs" / "labelme"
    run_dir.parent.mkdir()
    res = train_coco(annotations, export, run_dir)
    assert res.returncode == 0, res.output
    assert "Traceback" not in res.output
    metrics = json.loads((run_dir / "metrics.json").read_text())
    names = [c["name"] for c in metrics["per_class"]]
    assert names == LABELME_CATEGORIES  # _background_ first: it is the background class, none added
    assert [c["id"] for c in metrics["per_class"]] == [0, 1, 2, 3]
    assert metrics["dataset"]["name"] == "labelme_export"
    # one of the 4 images is held out (val_fraction 0.2): its pixels are all counted
    conf = np.load(run_dir / "confusion_matrix.npy")
    assert conf.shape == (4, 4) and conf.sum() in (80 * 60, 64 * 72)
    assert str(run_dir / "metrics.json") in res.stdout


def test_label_studio_export_without_background_trains(tmp_path: Path) -> None:
    export = tmp_path / "ls_export"
    annotations = write_label_studio_export(export)
    run_dir = tmp_path / "runs" / "ls"
    run_dir.parent.mkdir()
    res = train_coco(annotations, export, run_dir)
    assert res.returncode == 0, res.output
    metrics = json.loads((run_dir / "metrics.json").read_text())
    # a synthetic background class with id 0 is added in front of the 1-based categories
    assert [c["name"] for c in metrics["per_class"]] == ["background", "gripper", "cable"]
    assert [c["id"] for c in metrics["per_class"]] == [0, 1, 2]
    val = metrics["per_class"]
    assert val[0]["gt_pixels"] > 0 and val[1]["gt_pixels"] > 0 and val[2]["gt_pixels"] > 0
