"""qa.workers: chunking that keeps videos whole, and the same qa.json for any number of workers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from segval.dataset import DatasetPackage, InstanceMask, PackageWriter
from segval.errors import ConfigError
from segval.qa.parallel import map_ordered, resolve_workers, video_chunks
from segval.qa.runner import QAConfig, run_qa, write_report
from tests.qa.test_checks import H, W, _box, _tax


def test_video_chunks_keep_videos_whole():
    videos = [0, 0, 0, 1, 1, 2, None, None, None, None]
    chunks = video_chunks(videos, 4)
    assert [list(c) for c in chunks] == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]
    assert video_chunks([7] * 5, 3) == [range(5)]
    assert video_chunks([], 3) == []
    assert [list(c) for c in video_chunks([None] * 5, 1)] == [[0, 1, 2, 3, 4]]


def test_resolve_workers_and_map_ordered():
    assert 1 <= resolve_workers("auto") <= 4
    assert resolve_workers(3) == 3
    for bad in (0, -1, "many", True, 1.5):
        with pytest.raises(ConfigError, match="qa.workers"):
            resolve_workers(bad)
    seen = []
    assert map_ordered(lambda c: [x * x for x in c], [range(3), range(3, 5), range(5, 9)], 2,
                       done=lambda c: seen.append(c.start)) == [[0, 1, 4], [9, 16], [25, 36, 49, 64]]
    assert seen == [0, 3, 5]
    with pytest.raises(ConfigError):
        QAConfig(workers=0).validate()


def _planted(root):
    """Videos of moving boxes with planted defects (specks, fragments, jumps, overlaps, a corrupt RLE,
    a wrong image size) and some stills."""
    rng = np.random.default_rng(3)
    with PackageWriter(root, name="qa-par", version="1.0.0", taxonomy=_tax(), splits=["train", "val"],
                       label_maps=False) as w:
        k = 0
        for split, n_videos in (("train", 9), ("val", 4)):
            for v in range(n_videos):
                y, x = rng.integers(5, 30, 2)
                for f in range(6):
                    m = _box(y, x + f, y + 20, x + 20 + f)
                    if rng.random() < 0.15:
                        m = np.roll(m, 25, axis=0)  # jump
                    inst = [InstanceMask(1, m)]
                    if rng.random() < 0.3:
                        inst.append(InstanceMask(2, _box(y + 10, x + 10, y + 30, x + 30)))  # overlap
                    if rng.random() < 0.2:
                        inst.append(InstanceMask(2, _box(60, 60, 62, 62)))  # speck
                    if rng.random() < 0.2:
                        frag = np.zeros((H, W), bool)
                        frag[2, 2:60:4] = True
                        inst.append(InstanceMask(1, frag))
                    w.add_image(split, np.zeros((H, W, 3), np.uint8), f"v{v}_{f}", instances=inst,
                                extra={"video_id": 100 * (split == "val") + v, "frame_index": f})
                    k += 1
            for s in range(5):
                w.add_image(split, np.zeros((H, W, 3), np.uint8), f"{split}_still{s}",
                            instances=[InstanceMask(1, _box(s, s, 30 + s, 20))] if s else [])
    coco_path = root / "annotations" / "train.json"
    coco = json.loads(coco_path.read_text())
    coco["annotations"][7]["segmentation"]["size"] = [H, W + 1]
    coco_path.write_text(json.dumps(coco))
    from PIL import Image

    Image.fromarray(np.zeros((H, W + 3, 3), np.uint8)).save(root / "images" / "val" / "v1_2.png")
    return DatasetPackage.open(root)


def test_two_workers_give_the_same_report_as_one(tmp_path):
    pkg = _planted(tmp_path / "pkg")
    reports = {}
    for workers in (1, 2, 3):
        rep = run_qa(pkg, QAConfig(workers=workers), progress=False)
        rep.pop("seconds")
        write_report(rep, tmp_path / f"w{workers}")
        reports[workers] = (tmp_path / f"w{workers}" / "qa.json").read_text()
    assert reports[1] == reports[2] == reports[3]
    rep = json.loads(reports[1])
    checks = rep["counts"]["checks"]
    for c in ("small_mask", "fragmented", "temporal_iou", "overlap", "format", "no_segment"):
        assert checks[c] > 0, c
    assert "workers" not in rep["config"]
