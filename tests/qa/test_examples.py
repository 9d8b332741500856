"""Instances as examples (segval.qa.examples): the scan (boxes, occlusion, pixels) and the diverse, deterministic
selection, on hand-built instances and the hand-made package of tests/qa/guideline_package.py."""

from __future__ import annotations

import random

import numpy as np
import pytest

from segval.dataset.package import DatasetPackage
from segval.qa.examples import InstanceRef, scan_instances, select_diverse

from tests.qa.guideline_package import H, W, write_package


@pytest.fixture(scope="module")
def pkg(tmp_path_factory: pytest.TempPathFactory) -> DatasetPackage:
    return DatasetPackage.open(write_package(tmp_path_factory.mktemp("e") / "arms"))


def ref(i: int, video: int | None, area: int, *, occ: float = 0.0, cx: float = 0.5, side: int = 30,
        image: int | None = None) -> InstanceRef:
    return InstanceRef("train", i if image is None else image, f"{i}.png", video, i, 1, (0, 0, side, side), area,
                       occ, cx, 0.5)


# ---------------------------------------------------------------------------------------- selection
def test_selection_is_deterministic_and_spreads_over_videos() -> None:
    # 12 instances in 4 videos (3 each), sizes and positions varied
    refs = [ref(i, i % 4, 900 + 97 * i, occ=(i % 3) / 3, cx=(i % 5) / 5) for i in range(12)]
    picks = select_diverse(refs, 4)
    assert len({r.video_id for r in picks}) == 4  # four videos: never two from one while another is unused
    for seed in range(5):  # the input order does not matter
        shuffled = refs[:]
        random.Random(seed).shuffle(shuffled)
        assert select_diverse(shuffled, 4) == picks
    five = select_diverse(refs, 5)
    assert five[:4] == picks and len({r.image_id for r in five}) == 5  # a 5th video is not there: another image


def test_selection_order_is_farthest_first_from_the_median_size() -> None:
    refs = [ref(0, 0, 100), ref(1, 1, 100), ref(2, 2, 100), ref(3, 3, 1000), ref(4, 4, 10000)]
    # first: median size (100; the first of equals), then the largest (farthest in log size), then 1000
    assert [r.image_id for r in select_diverse(refs, 3)] == [0, 4, 3]


def test_selection_within_one_video_and_one_image() -> None:
    same_video = [ref(i, 7, 400 + 10 * i) for i in range(4)]
    assert len(select_diverse(same_video, 3)) == 3  # only one video: still three examples, three images
    same_image = [ref(i, None, 400 + 300 * i, image=5) for i in range(3)]
    # log areas 5.99, 6.55, 6.91: the median (700) first, then 400 (0.61 away in normalised log size), then 1000
    assert [r.annotation_id for r in select_diverse(same_image, 5)] == [1, 0, 2]
    assert select_diverse([], 4) == [] and select_diverse(same_video, 0) == []


def test_selection_prefers_instances_above_the_minimum_size() -> None:
    small = [ref(i, i, 50, side=8) for i in range(4)]
    big = [ref(10 + i, 10 + i, 900, side=30) for i in range(3)]
    assert {r.image_id for r in select_diverse(small + big, 3)} == {10, 11, 12}
    assert len(select_diverse(small + big, 5)) == 5  # not enough big ones: the small ones fill in
    # ... but never at the cost of a second crop from one video: two big ones share video 20
    mixed = [ref(20, 20, 900), ref(21, 20, 950), ref(22, 22, 50, side=8)]
    assert {r.video_id for r in select_diverse(mixed, 2)} == {20, 22}


# ---------------------------------------------------------------------------------------- scan
def test_scan_boxes_occlusion_and_pixels(pkg: DatasetPackage) -> None:
    scan = scan_instances(pkg)
    assert scan.images == 8 and len(scan.instances) == 24  # 3 instances per image, background and ghost have none
    arm, gripper, cable = scan.instances[:3]
    assert arm.bbox == (2, 2, 8, 8) and arm.area == 64 and arm.video_id == 0
    assert arm.occlusion == pytest.approx(6 / 28)  # its right column (6 of 28 outline px) touches the gripper
    assert gripper.occlusion == pytest.approx(6 / 20)
    assert cable.occlusion == pytest.approx(2 / 48)  # a 48x1 row: its two ends touch the image border
    assert arm.cx == pytest.approx(6 / W) and arm.cy == pytest.approx(6 / H)
    # pixel counts = the semantic label maps' (independent: SplitData.semantic_target + the lut back to ids)
    expected = np.zeros(256, np.int64)
    for s in pkg.splits:
        sd = pkg.split(s)
        for rec in sd.images:
            expected += np.bincount(np.asarray(pkg.taxonomy.ids)[sd.semantic_target(rec)].ravel(), minlength=256)
    assert np.array_equal(scan.pixels, expected)
