"""check_header: plain PNG headers read without Pillow, with the outcome of open_checked on any file."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from segval.dataset import images as imio
from segval.errors import DatasetError


def _outcome(fn, path, **kw):
    try:
        r = fn(path, **kw)
    except DatasetError as err:
        return str(err)
    if r is not None:
        r.close()
    return "ok"


def _files(tmp_path):
    arr = np.zeros((6, 8, 3), np.uint8)
    files = {}
    for name, save in {"plain.png": {}, "dpi.png": {"dpi": (72, 72)}, "photo.jpg": {}}.items():
        Image.fromarray(arr).save(tmp_path / name, **save)
        files[name] = tmp_path / name
    Image.fromarray(np.zeros((6, 9, 3), np.uint8)).save(tmp_path / "wide.png")
    files["wide.png"] = tmp_path / "wide.png"
    raw = bytearray((tmp_path / "plain.png").read_bytes())
    bad_crc = raw.copy()
    bad_crc[29] ^= 0xFF
    (tmp_path / "crc.png").write_bytes(bytes(bad_crc))
    bad_filter = raw.copy()
    bad_filter[27] = 1  # filter method 1 (with its CRC fixed)
    import zlib

    bad_filter[29:33] = zlib.crc32(bytes(bad_filter[12:29])).to_bytes(4, "big")
    (tmp_path / "filter.png").write_bytes(bytes(bad_filter))
    (tmp_path / "short.png").write_bytes(bytes(raw[:30]))
    files.update({n: tmp_path / n for n in ("crc.png", "filter.png", "short.png", "missing.png")})
    return files


def test_check_header_agrees_with_open_checked(tmp_path):
    for name, path in _files(tmp_path).items():
        for kw in ({"width": 8, "height": 6, "max_pixels": 100}, {"width": 8, "height": 6, "max_pixels": 40},
                   {"width": 6, "height": 8, "max_pixels": 100}):
            want = _outcome(imio.open_checked, path, image_id=3, **kw)
            assert _outcome(imio.check_header, path, image_id=3, **kw) == want, (name, kw)
    assert _outcome(imio.check_header, tmp_path / "plain.png", width=8, height=6, max_pixels=100) == "ok"


def test_plain_png_fast_path_needs_ihdr_then_idat(tmp_path):
    f = _files(tmp_path)
    assert imio._plain_png_fits(f["plain.png"], 8, 6, 100)
    for name in ("dpi.png", "photo.jpg", "crc.png", "filter.png", "short.png", "missing.png"):
        assert not imio._plain_png_fits(f[name], 8, 6, 100), name
    assert not imio._plain_png_fits(f["plain.png"], 8, 6, 47)  # over max_pixels: Pillow path gives the error
    with pytest.raises(DatasetError, match="over the limit"):
        imio.check_header(f["plain.png"], width=8, height=6, max_pixels=47)


def test_image_path_resolves_like_pathlib(tmp_path):
    """SplitData._resolve caches each folder's real path; the result is Path.resolve()'s, links included."""
    import os

    from segval.dataset.split import SplitData
    from segval.dataset.taxonomy import Category, Taxonomy

    img = tmp_path / "images" / "train"
    (img / "v0").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (img / "v0" / "a.png").write_bytes(b"")
    (tmp_path / "elsewhere" / "x.png").write_bytes(b"")
    os.symlink(tmp_path / "elsewhere" / "x.png", img / "v0" / "link.png")
    os.symlink(tmp_path / "elsewhere", img / "dirlink")
    os.symlink(img / "v0", img / "inside")
    tax = Taxonomy([Category(0, "background", (0, 0, 0), False, "stuff"), Category(1, "a", (1, 1, 1), True, "rigid")],
                   background_id=0)
    sd = SplitData("train", {"images": [], "annotations": [], "categories": [{"id": 1, "name": "a"}]},
                   images_dir=img, taxonomy=tax, annotation_path=tmp_path / "train.json")
    names = ["v0/a.png", "v0/link.png", "dirlink/x.png", "inside/a.png", "v0/missing.png", "v0/../v0/a.png",
             "./v0/a.png", "v0//a.png", "missing_dir/b.png", "/abs/c.png"]
    for _ in range(2):  # second round: folders from the cache
        for n in names:
            assert sd._resolve(n) == (img / n).resolve(), n
