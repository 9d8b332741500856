"""A tiny synthetic package of coloured shapes: no pybullet, milliseconds to write.

Used by the tests and quick trials. Each image holds a few discs (class ``disc``), squares
(``square``) and bars (``bar``) on a noisy background; some overlap, so the rasterisation rule
matters. Deterministic for a seed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import numpy as np

from segval.dataset.taxonomy import Category, Taxonomy
from segval.dataset.writer import InstanceMask, PackageWriter

SHAPES_TAXONOMY = Taxonomy(
    [
        Category(0, "background", (0, 0, 0), False, "stuff"),
        Category(1, "disc", (220, 40, 40), True, "rigid"),
        Category(2, "square", (40, 200, 40), True, "rigid"),
        Category(3, "bar", (40, 60, 220), True, "thin"),
    ],
    background_id=0,
)
_COLOURS = {1: (220, 40, 40), 2: (40, 200, 40), 3: (40, 60, 220)}


def shapes_frame(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, list[InstanceMask]]:
    """One image uint8[H, W, 3] and its instances (painted in order: later ones occlude earlier ones)."""
    image = rng.integers(90, 140, size=(height, width, 3), dtype=np.uint8)
    yy, xx = np.mgrid[0:height, 0:width]
    instances: list[InstanceMask] = []
    for cat in rng.permutation([1, 2, 3, 1, 2][: rng.integers(3, 6)]):
        cy, cx = rng.integers(height // 6, height - height // 6), rng.integers(width // 6, width - width // 6)
        r = int(rng.integers(max(3, height // 10), max(4, height // 5)))
        if cat == 1:
            mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        elif cat == 2:
            mask = (abs(yy - cy) <= r) & (abs(xx - cx) <= r)
        else:
            mask = (abs(yy - cy) <= max(1, r // 4)) & (abs(xx - cx) <= 2 * r)
        colour = np.array(_COLOURS[int(cat)]) + rng.integers(-20, 21, size=3)
        image[mask] = np.clip(colour, 0, 255).astype(np.uint8)
        for inst in instances:  # what is painted later hides what lies below
            inst.mask &= ~mask
        instances.append(InstanceMask(int(cat), mask.copy()))
    return image, [i for i in instances if i.mask.any()]


def write_shapes_package(
    root: str | Path,
    *,
    images: dict[str, int] | None = None,
    size: tuple[int, int] = (64, 64),
    frames_per_video: int = 1,
    seed: int = 0,
    name: str = "shapes",
    version: str = "1.0.0",
    overwrite: bool = False,
    class_names: Mapping[int, str] | None = None,
) -> Path:
    """Write a shapes package; ``images`` maps split -> image count (default train 8, val 4); ``class_names``
    renames classes by id (e.g. hostile names for escaping tests), the pixels stay the same."""
    images = images or {"train": 8, "val": 4}
    rng = np.random.default_rng(seed)
    h, w = size
    taxonomy = SHAPES_TAXONOMY
    if class_names:
        taxonomy = Taxonomy([replace(c, name=class_names.get(c.id, c.name)) for c in SHAPES_TAXONOMY.categories],
                            background_id=SHAPES_TAXONOMY.background_id)
    with PackageWriter(root, name=name, version=version, taxonomy=taxonomy, splits=list(images),
                       overwrite=overwrite) as writer:
        video_base = 0  # video ids are unique across the package
        for split, n in images.items():
            for i in range(n):
                image, instances = shapes_frame(rng, h, w)
                video = i // frames_per_video
                writer.add_image(split, image, f"{split}_{video:03d}/{i % frames_per_video:06d}.png",
                                 instances=instances,
                                 extra={"video_id": video_base + video, "video_name": f"{split}_{video:03d}",
                                        "frame_index": i % frames_per_video})
            video_base += -(-n // frames_per_video)
    return Path(root)
