"""The Label Studio SDK half of ``labelstudio_roundtrip.py``; runs inside the throwaway Label Studio venv, so brush
masks are decoded and edited with Label Studio's own codec (``label_studio_sdk.converter.brush``), not segval's.

    python _labelstudio_side.py decode IN.json OUT.npz
        IN: ``[{"key", "rle", "height", "width"}]`` -> OUT: ``key -> bool[H, W]``.
    python _labelstudio_side.py erase IN.json OUT.json
        IN: ``{"rle", "height", "width", "rows": [y0, y1]}`` -> OUT: ``{"rle"}`` with rows y0..y1-1 set to 0
        (a stroke erased).
"""

from __future__ import annotations

import json
import sys

import numpy as np
from label_studio_sdk.converter.brush import decode_rle, encode_rle


def _mask(rle: list[int], h: int, w: int) -> np.ndarray:
    """bool[H, W]: Label Studio brush RLE decodes to RGBA bytes; the alpha channel is the mask."""
    return np.reshape(decode_rle(rle), (h, w, 4))[:, :, 3] > 0


def decode(src: str, out: str) -> None:
    items = json.loads(open(src, encoding="utf-8").read())
    np.savez_compressed(out, **{it["key"]: _mask(it["rle"], it["height"], it["width"]) for it in items})


def erase(src: str, out: str) -> None:
    it = json.loads(open(src, encoding="utf-8").read())
    h, w = it["height"], it["width"]
    rgba = np.reshape(decode_rle(it["rle"]), (h, w, 4)).copy()
    y0, y1 = it["rows"]
    rgba[y0:y1] = 0
    rle = [int(v) for v in encode_rle(rgba.ravel())]
    with open(out, "w", encoding="utf-8") as f:
        json.dump({"rle": rle, "erased_pixels": int((np.reshape(decode_rle(it["rle"]), (h, w, 4))[y0:y1, :, 3] > 0).sum())},
                  f)


if __name__ == "__main__":
    cmd, *args = sys.argv[1:]
    {"decode": decode, "erase": erase}[cmd](*args)
