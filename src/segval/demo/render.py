"""Render the demo dataset: short pybullet tabletop videos with exact masks, as a dataset package.

Example:
    >>> from segval.demo import render_dataset
    >>> root = render_dataset("data/demo", videos={"train": 10, "val": 3})  # doctest: +SKIP

Each video is one random scene (:class:`segval.demo.scene.TabletopScene`): a table, a tray, a
Franka Panda whose hand visits points above the objects, and 6-10 objects of nine classes, seen by
a camera that drifts around the table under random light. Every frame is written through
:class:`segval.dataset.writer.PackageWriter` as ``images/<split>/<video_name>/<frame:06d>.png`` with
one COCO annotation per visible body (the arm split into ``robot_arm`` and ``gripper``) and a label
map. Its COCO image entry carries ``video_id`` (an int, unique across the package, as the reader
requires), ``frame_index`` (0-based) and ``video_name`` (e.g. ``"train_000"``, the image folder).

Determinism: a ``seed`` gives byte-identical images and annotations. Video ``i`` of split ``s``
draws everything from its own generator seeded by ``(seed, crc32(s), i)`` and the simulation is
reset before each video, so a video does not depend on how many others are rendered.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from segval.dataset.taxonomy import Category, Taxonomy
from segval.dataset.writer import InstanceMask, PackageWriter
from segval.demo.scene import CLASS_NAMES, TabletopScene

#: The demo classes: ids are contiguous (0..13, train index == id); background is id 0.
DEMO_TAXONOMY = Taxonomy(
    [
        Category(0, "background", (0, 0, 0), False, "stuff"),
        Category(1, "table", (190, 153, 112), False, "stuff"),
        Category(2, "tray", (100, 100, 110), False, "stuff"),
        Category(3, "robot_arm", (0, 170, 200), True, "rigid",
                 description="the Franka Panda arm: base and links up to the wrist flange"),
        Category(4, "gripper", (255, 140, 0), True, "thin",
                 description="the Panda hand and its two fingers, from the wrist flange on", part_of="robot_arm"),
        Category(5, "mug", (220, 30, 40), True, "rigid"),
        Category(6, "duck", (255, 225, 0), True, "rigid"),
        Category(7, "lego", (0, 150, 60), True, "rigid"),
        Category(8, "cube", (160, 80, 230), True, "rigid"),
        Category(9, "ball", (40, 80, 255), True, "rigid"),
        Category(10, "teddy", (140, 70, 20), True, "deformable"),
        Category(11, "soccer_ball", (235, 235, 235), True, "rigid"),
        Category(12, "jenga_block", (255, 105, 180), True, "rigid"),
        Category(13, "domino", (0, 230, 190), True, "rigid"),
    ],
    background_id=0,
)
assert tuple(DEMO_TAXONOMY.names[1:]) == CLASS_NAMES, "DEMO_TAXONOMY and the scene's classes disagree"

_DESCRIPTION = (
    "Synthetic tabletop videos rendered with pybullet (ER_TINY_RENDERER): a Franka Panda arm, a table, "
    "a tray and household objects from pybullet_data under a moving camera and random light. Masks are "
    "exact (from the renderer's segmentation buffer); one annotation per visible body, the arm split into "
    "robot_arm and gripper. Images carry video_id (int), video_name and frame_index."
)


def _video_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator of video ``index`` of ``split``: independent of every other video."""
    return np.random.default_rng([int(seed), zlib.crc32(split.encode("utf-8")), int(index)])


def _check_args(videos: Mapping[str, int], frames_per_video: int, width: int, height: int, seed: int) -> None:
    if not isinstance(videos, Mapping) or not videos:
        raise ValueError(f"videos must be a non-empty mapping split -> number of videos, got {videos!r}")
    for split, n in videos.items():
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"videos[{split!r}] must be an int >= 0, got {n!r}")
    sizes = (("frames_per_video", frames_per_video, 1), ("width", width, 16), ("height", height, 16))
    for arg, value, lo in sizes:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
            raise ValueError(f"{arg} must be an int >= {lo}, got {value!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")


def render_dataset(
    root: str | os.PathLike,
    *,
    videos: Mapping[str, int] | None = None,
    frames_per_video: int = 16,
    width: int = 320,
    height: int = 240,
    seed: int = 0,
    name: str = "segval-demo-tabletop",
    version: str = "1.0.0",
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Render tabletop videos into a new dataset package at ``root``.

    Args:
        root: the package folder to create (written atomically).
        videos: number of videos per split, in split order; default ``{"train": 10, "val": 3}``.
        frames_per_video: frames per video (one scene each; camera and arm move across frames).
        width, height: image size in pixels.
        seed: the same seed gives byte-identical images and annotations.
        name, version: written to dataset.yaml (version is a semver string).
        overwrite: replace an existing ``root``; otherwise an existing one is an error.
        progress: show a progress bar (tqdm, on stderr).

    Returns:
        The package root.

    Raises:
        ValueError: a bad argument.
        segval.dataset.writer.PackageExistsError: ``root`` exists and ``overwrite`` is False
            (checked before anything is rendered).
        ImportError: pybullet is not installed (``pip install pybullet``).
    """
    videos = {"train": 10, "val": 3} if videos is None else dict(videos)
    _check_args(videos, frames_per_video, width, height, seed)
    ids = {c.name: c.id for c in DEMO_TAXONOMY}
    total = sum(int(n) for n in videos.values()) * int(frames_per_video)
    writer = PackageWriter(
        root, name=name, version=version, taxonomy=DEMO_TAXONOMY, splits=list(videos),
        description=_DESCRIPTION, overwrite=overwrite,
    )
    from tqdm.auto import tqdm

    with TabletopScene(width, height) as scene, writer as out, tqdm(
        total=total, desc=f"rendering {Path(root).name}", unit="frame", disable=not progress
    ) as bar:
        video_id = 0
        for split, n_videos in videos.items():
            for v in range(int(n_videos)):
                video_name = f"{split}_{v:03d}"
                scene.build(_video_rng(seed, split, v), num_frames=int(frames_per_video))
                for f in range(int(frames_per_video)):
                    rgb, instances = scene.frame(f)
                    out.add_image(
                        split, rgb, f"{video_name}/{f:06d}.png",
                        instances=[InstanceMask(ids[i.name], i.mask) for i in instances],
                        extra={"video_id": video_id, "frame_index": f, "video_name": video_name},
                    )
                    bar.update(1)
                video_id += 1
    return Path(root)
