"""Label Studio brush RLE: a known vector derived by hand from the reference algorithm, round trips, errors."""

from __future__ import annotations

from itertools import groupby

import numpy as np
import pytest

from segval.dataset.brush_rle import BrushRLEError, decode_mask, decode_rle, encode_mask, encode_rle


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


def test_known_vector_one_by_two_mask():
    # mask [[0, 1]] -> RGBA values [0,0,0,0,255,255,255,255]: header 8 values, word 8, sizes 3 4 8 16,
    # then two runs of 4 (flag 1, size index 00, length-1 = 011 in 3 bits, value), 81 bits padded with 7 zeros
    bits = ("0" * 28 + "1000" + "00111" + "0010" + "0011" + "0111" + "1111"
            + "1" + "00" + "011" + "00000000" + "1" + "00" + "011" + "11111111" + "0000000")
    expected = [int(bits[i:i + 8], 2) for i in range(0, len(bits), 8)]
    assert expected == [0, 0, 0, 8, 57, 27, 252, 96, 17, 255, 128]
    assert encode_mask(np.array([[False, True]])) == expected
    assert decode_mask(expected, 1, 2).tolist() == [[False, True]]


def test_aligned_stream_gets_a_whole_padding_byte_like_the_reference():
    # 53 header bits + literal 14 bits... choose values whose encoding is a multiple of 8 bits
    vals = [5] * 3  # header 53 + one run 14 = 67 bits -> 5 pad bits; check the reference's always-pad rule
    assert encode_rle(vals) == reference_encode(vals)
    for n in range(1, 40):  # some lengths land exactly on a byte boundary
        v = list(np.arange(n) % 3 * 100)
        assert encode_rle(v) == reference_encode(v)


@pytest.mark.parametrize("seed", range(6))
def test_random_masks_round_trip_and_match_the_reference(seed):
    rng = np.random.default_rng(seed)
    h, w = (int(x) for x in rng.integers(1, 50, size=2))
    m = rng.random((h, w)) < rng.random()
    if seed % 2:  # blobs with long runs
        m = np.zeros((h, w), bool)
        m[: h // 2, : w // 3] = True
    rle = encode_mask(m)
    assert (decode_mask(rle, h, w) == m).all()
    flat = list(np.repeat(np.where(m.reshape(-1), 255, 0), 4))
    assert rle == reference_encode(flat)


def test_runs_longer_than_2_16_are_split():
    m = np.ones((200, 200), bool)  # 160000 equal values
    rle = encode_mask(m)
    assert rle == reference_encode([255] * 160000)
    assert decode_mask(rle, 200, 200).all()


def test_decoder_reads_literal_blocks_of_several_words():
    # a JS rle-pack literal block: flag 0, size index 00 (3 bits), length-1 = 2 -> three words
    bits = f"{3:032b}" + "00111" + "0010" + "0011" + "0111" + "1111" + "0" + "00" + "010" + "00000001" + "00000010" + "00000011"
    bits += "0" * (8 - len(bits) % 8)
    data = [int(bits[i:i + 8], 2) for i in range(0, len(bits), 8)]
    assert decode_rle(data).tolist() == [1, 2, 3]


def test_truncated_and_wrong_size_are_errors():
    m = np.zeros((10, 12), bool)
    m[2:5, 3:9] = True
    rle = encode_mask(m)
    with pytest.raises(BrushRLEError, match="truncated"):
        decode_mask(rle[: len(rle) // 2], 10, 12)
    with pytest.raises(BrushRLEError, match="size"):
        decode_mask(rle, 12, 10 + 1)
    with pytest.raises(BrushRLEError):
        decode_mask([0, 1, "x"], 1, 1)


def test_a_forged_header_is_refused_before_allocating() -> None:
    m = np.zeros((10, 12), bool)
    m[2:5, 3:9] = True
    rle = encode_mask(m)
    forged = [255, 255, 255, 255] + rle[4:]  # header: 4 billion values
    with pytest.raises(BrushRLEError, match="4294967295 values, but 480 were expected"):
        decode_mask(forged, 10, 12)
    with pytest.raises(BrushRLEError, match="byte values"):
        decode_mask([0, 1, "x"], 1, 1)
