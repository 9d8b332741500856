"""`segval demo oracle`: the clean truth of queued images only, as a CVAT COCO 1.0 export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from segval.dataset.package import DatasetPackage
from segval.demo.inject import KINDS, InjectConfig, inject_errors
from segval.demo.oracle import answer_queue, load_queue, queued_image_ids
from segval.demo.shapes import write_shapes_package
from segval.errors import DatasetError


@pytest.fixture(scope="module")
def pkgs(tmp_path_factory) -> tuple[Path, Path, dict]:
    d = tmp_path_factory.mktemp("oracle")
    clean = write_shapes_package(d / "clean", images={"train": 12, "val": 2}, size=(40, 48))
    cfg = InjectConfig(rate=0.5, mix={k: 1.0 for k in KINDS}, swap_pairs=(("disc", "square"),), boundary_px=2,
                       min_pixels=12, seed=1)
    manifest = inject_errors(clean, d / "corrupted", d / "errors.json", cfg)
    return clean, d / "corrupted", manifest


def _queue(corrupted: Path, image_ids: list[int]) -> dict:
    pkg = DatasetPackage.open(corrupted)
    split = pkg.split("train")
    items = [{"rank": k + 1, "item_id": f"q{k}", "image_id": i, "file_name": split.image(i).file_name,
              "video_id": None, "frame_index": None, "class": None, "category_id": None, "annotation_ids": [],
              "region": None, "reason": "test", "score": 1.0 - k / 10, "expected_gain": 0.0, "evidence": {},
              "proposal": None} for k, i in enumerate(image_ids)]
    return {"schema_version": 1, "dataset": {"name": pkg.name, "version": pkg.version, "root": str(corrupted)},
            "split": "train", "budget": len(set(image_ids)), "ranking": {}, "run_dir": "", "items": items}


def _decode(seg) -> np.ndarray:
    return mask_utils.decode({"size": seg["size"], "counts": seg["counts"].encode()}).astype(bool)


def test_answers_exactly_the_queued_images_with_the_clean_truth(pkgs) -> None:
    clean, corrupted, manifest = pkgs
    wrong = [it["image_id"] for it in manifest["items"]]
    asked = [wrong[2], wrong[0], wrong[2], 1 if 1 not in wrong else 2]  # a repeated image: answered once
    queue = _queue(corrupted, asked)
    assert queued_image_ids(queue) == [wrong[2], wrong[0], asked[3]]
    export = answer_queue(queue, DatasetPackage.open(clean))
    assert [im["id"] for im in export["images"]] == [1, 2, 3]  # CVAT renumbers; matched back by file name
    truth = json.loads((clean / "annotations/train.json").read_text())
    by_name = {im["file_name"]: im for im in truth["images"]}
    cats = {c["id"]: c["name"] for c in export["categories"]}
    assert sorted(cats.values()) == ["bar", "disc", "square"]  # no background label
    clean_names = {c["id"]: c["name"] for c in truth["categories"]}
    for im in export["images"]:
        orig = by_name[im["file_name"]]
        assert (im["width"], im["height"]) == (orig["width"], orig["height"])
        got = sorted((cats[a["category_id"]], _decode(a["segmentation"]).tobytes(), a["iscrowd"])
                     for a in export["annotations"] if a["image_id"] == im["id"])
        want = sorted((clean_names[a["category_id"]], _decode(a["segmentation"]).tobytes(), a["iscrowd"])
                      for a in truth["annotations"] if a["image_id"] == orig["id"])
        assert got == want and got
    assert [orig["id"] for orig in (by_name[im["file_name"]] for im in export["images"])] == queued_image_ids(queue)
    for a in export["annotations"]:
        m = _decode(a["segmentation"])
        assert a["area"] == m.sum() and a["bbox"][2] > 0
    # a subset of the queue
    sub = answer_queue(queue, DatasetPackage.open(clean), image_ids=[wrong[0]])
    assert [im["file_name"] for im in sub["images"]] == [by_name_id(truth, wrong[0])]


def by_name_id(coco: dict, image_id: int) -> str:
    return next(im["file_name"] for im in coco["images"] if im["id"] == image_id)


def test_bad_questions(pkgs, tmp_path) -> None:
    clean, corrupted, manifest = pkgs
    wrong = [it["image_id"] for it in manifest["items"]]
    queue = _queue(corrupted, wrong[:2])
    not_queued = next(i for i in range(1, 13) if i not in wrong[:2])
    with pytest.raises(DatasetError, match=rf"image ids \[{not_queued}\] are not in the queue"):
        answer_queue(queue, DatasetPackage.open(clean), image_ids=[not_queued])
    queue["items"][0]["image_id"] = 999
    with pytest.raises(DatasetError, match="queued image id 999 is not in split 'train'"):
        answer_queue(queue, DatasetPackage.open(clean))
    (tmp_path / "q.json").write_text('{"items": 3}')
    with pytest.raises(DatasetError, match="not a relabel queue"):
        load_queue(tmp_path / "q.json")
