"""Small helpers shared by the format-reader tests (fixtures are written by hand, per each tool's format)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image


def write_rgb(path: Path, h: int, w: int, seed: int = 0, fmt: str | None = None) -> np.ndarray:
    """A random RGB image written to ``path`` (PNG unless the suffix says otherwise); returns the pixels."""
    rgb = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path, format=fmt)
    return rgb


def write_json(path: Path, obj: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj), encoding="utf-8")
    return path


def box(h: int, w: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    m = np.zeros((h, w), dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


def masks_of(image) -> dict[int, np.ndarray]:
    """category id -> union of the instance masks of an ImportedImage."""
    out: dict[int, np.ndarray] = {}
    for inst in image.instances:
        m = inst.mask.decode()
        out[inst.category_id] = out.get(inst.category_id, np.zeros_like(m)) | m
    return out


def rle_of(mask: np.ndarray) -> dict:
    """Compressed COCO RLE (counts str) of a bool[H, W] mask."""
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": rle["counts"].decode("ascii")}
