"""COCO RLE helper for the reader tests."""

from __future__ import annotations

import numpy as np
from pycocotools import mask as mask_utils


def rle_of(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": rle["counts"].decode("ascii")}
