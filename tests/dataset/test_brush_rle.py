"""segval.dataset.brush_rle (the Label Studio brush codec, moved from relabel): round trips, the reference bits,
literal blocks, truncation, and a forged header refused before allocating."""

from __future__ import annotations

from itertools import groupby

import numpy as np
import pytest

from segval.dataset.brush_rle import BrushRLEError, decode_mask, decode_rle, encode_mask


def reference_encode(values) -> list[int]:
    """An independent transcription of label_studio_sdk/converter/brush.py ``encode_rle`` (bit strings, groupby)."""
    bits = f"{len(values):032b}" + f"{8 - 1:05b}" + "".join(f"{x - 1:04b}" for x in (3, 4, 8, 16))
    for value, group in groupby(values):
        n = len(list(group))
        if n == 1:
            bits += "0" + "00" + "000" + f"{value:08b}"
        elif n <= 8:
            bits += "1" + "00" + f"{n - 1:03b}" + f"{value:08b}"
        elif n <= 16:
            bits += "1" + "01" + f"{n - 1:04b}" + f"{value:08b}"
        elif n <= 256:
            bits += "1" + "10" + f"{n - 1:08b}" + f"{value:08b}"
        else:
            while n > 2**16:
                bits += "1" + "11" + f"{2**16 - 1:016b}" + f"{value:08b}"
                n -= 2**16
            bits += "1" + "11" + f"{n - 1:016b}" + f"{value:08b}"
    bits += "0" * (8 - len(bits) % 8)
    return [int(bits[i:i + 8], 2) for i in range(0, len(bits), 8)]


@pytest.mark.parametrize("seed", range(4))
def test_random_masks(seed):
    rng = np.random.default_rng(seed)
    h, w = (int(x) for x in rng.integers(1, 60, size=2))
    m = rng.random((h, w)) < 0.3 if seed % 2 else np.pad(np.ones((h // 2, w // 2), bool), ((0, h - h // 2),
                                                                                           (0, w - w // 2)))
    ref = reference_encode(list(np.repeat(np.where(m.reshape(-1), 255, 0), 4)))
    assert encode_mask(m) == ref
    assert (decode_mask(ref, h, w) == m).all()


def test_long_runs_and_literal_blocks():
    assert decode_mask(reference_encode([255] * 160000), 200, 200).all()
    bits = f"{3:032b}" + "00111" + "0010" + "0011" + "0111" + "1111" + "0" + "00" + "010" + "00000001" + "00000010" \
        + "00000011"
    bits += "0" * (8 - len(bits) % 8)
    assert decode_rle([int(bits[i:i + 8], 2) for i in range(0, len(bits), 8)]).tolist() == [1, 2, 3]


def test_errors():
    m = np.zeros((10, 12), bool)
    m[2:5, 3:9] = True
    rle = encode_mask(m)
    with pytest.raises(BrushRLEError, match="truncated"):
        decode_mask(rle[: len(rle) // 2], 10, 12)
    with pytest.raises(BrushRLEError, match="size"):
        decode_mask(rle, 11, 12)
    with pytest.raises(BrushRLEError, match="byte values"):
        decode_mask([0, 1, "x"], 1, 1)
    forged = [255, 255, 255, 255] + rle[4:]  # header: 4 billion values
    with pytest.raises(BrushRLEError, match="4294967295 values, but 480 were expected"):
        decode_mask(forged, 10, 12)
