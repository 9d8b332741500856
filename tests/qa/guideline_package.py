"""A hand-made package for the guideline tests: known boxes, videos, a part / whole pair and a class without
instances (imported by tests/qa/test_guideline.py and tests/report/test_guideline.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from segval.dataset.taxonomy import Category, Taxonomy
from segval.dataset.writer import InstanceMask, PackageWriter

H, W = 40, 48


def taxonomy(arm_name: str = "robot_arm", arm_description: str | None = "the links and joints of the arm") -> Taxonomy:
    return Taxonomy([
        Category(0, "background", (0, 0, 0), False, "stuff"),
        Category(1, arm_name, (200, 30, 30), True, "rigid", description=arm_description),
        Category(2, "gripper", (30, 200, 30), True, "rigid", description="fingers and palm", part_of=arm_name),
        Category(3, "cable", (30, 30, 200), True, "thin"),
        Category(4, "ghost", (200, 200, 0), True, "rigid"),
    ], background_id=0)


def box(y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return m


def write_package(root: Path, *, arm_name: str = "robot_arm", arm_description: str | None = None,
                  file_prefix: str = "") -> Path:
    """Train: 3 videos x 2 frames + 1 image without video; val: 1 image. Per image an arm box (its size grows
    with the image number), a gripper box touching it (so its outline touches another object) and a cable row.
    ``ghost`` has no instance."""
    desc = "the links and joints of the arm" if arm_description is None else arm_description
    rng = np.random.default_rng(0)
    with PackageWriter(root, name="arms", version="1.0.0", taxonomy=taxonomy(arm_name, desc),
                       splits=["train", "val"]) as w:
        k = 0
        for split, videos in (("train", [0, 0, 1, 1, 2, 2, None]), ("val", [7])):
            for frame, video in enumerate(videos):
                side = 8 + 3 * k  # arm: 8x8, 11x11, ... px
                arm = box(2, 2 + side, 2, 2 + side)
                gripper = box(2, 8, 2 + side, 8 + side)  # 6x6, right of the arm, touching it
                cable = box(36, 37, 0, W)  # 48x1, along the bottom
                extra = {} if video is None else {"video_id": video, "frame_index": frame}
                w.add_image(split, rng.integers(0, 255, (H, W, 3), dtype=np.uint8), f"{file_prefix}{split}{k}.png",
                            instances=[InstanceMask(1, arm), InstanceMask(2, gripper), InstanceMask(3, cable)],
                            extra=extra)
                k += 1
    return root
