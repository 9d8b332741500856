"""Read images and label maps safely: pixel limit from the header, size checks, clear errors.

The pixel limit (``max_pixels``, width * height) is checked from the file header before any
pixel is decoded. Pillow has its own decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``:
a warning above it, an error above twice it); :func:`raise_pil_limit` lifts it to at least our
limit so that ours is the one applied, and a ``DecompressionBombError`` that still happens
(someone lowered Pillow's limit) becomes a :class:`DatasetError` saying what to do.
"""

from __future__ import annotations

import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from segval.errors import DatasetError

#: Default limit on width * height of an image, checked from the header before decoding.
DEFAULT_MAX_PIXELS = 64_000_000


def raise_pil_limit(max_pixels: int) -> None:
    """Make Pillow's own decompression-bomb limit no lower than ``max_pixels`` (process-wide)."""
    if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < max_pixels:
        Image.MAX_IMAGE_PIXELS = max_pixels


def open_checked(
    path: Path,
    *,
    width: int,
    height: int,
    max_pixels: int,
    image_id: int | None = None,
    listed_in: Path | None = None,
) -> Image.Image:
    """Open an image lazily (header only) and check its size.

    Args:
        path: the file.
        width: W the COCO entry gives.
        height: H the COCO entry gives.
        max_pixels: limit on width * height.
        image_id: named in errors.
        listed_in: the annotation file listing the image (named when the file is missing).

    Returns:
        The open, not yet decoded, PIL image (close it).

    Raises:
        DatasetError: missing or unreadable file, over the pixel limit, size != (width, height).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
    except FileNotFoundError:
        where = f" (listed in {listed_in})" if listed_in is not None else ""
        raise DatasetError(
            f"image file not found{where}; add the file or remove the image entry", path=path, image_id=image_id
        ) from None
    except Image.DecompressionBombError as err:
        raise DatasetError(
            f"image is over Pillow's pixel limit ({err}); raise max_pixels if this image is genuine",
            path=path,
            image_id=image_id,
        ) from None
    except Exception as err:  # UnidentifiedImageError, IsADirectoryError, PermissionError, ...
        raise DatasetError(f"cannot read the image ({err}); replace the file", path=path, image_id=image_id) from None
    w, h = im.size
    if w * h > max_pixels:
        im.close()
        raise DatasetError(
            f"image is {w}x{h} = {w * h} pixels, over the limit of {max_pixels} "
            "(checked before decoding); raise max_pixels if this image is genuine",
            path=path,
            image_id=image_id,
        )
    if (w, h) != (width, height):
        im.close()
        raise DatasetError(
            f"image file is {w}x{h} (width x height) but the COCO entry says {width}x{height}; "
            "fix width/height in the annotation file or replace the image",
            path=path,
            image_id=image_id,
        )
    return im


#: (bit depth, colour type) pairs of PNG that Pillow opens
_PNG_MODES = {(1, 0), (2, 0), (4, 0), (8, 0), (16, 0), (8, 2), (16, 2), (1, 3), (2, 3), (4, 3), (8, 3), (8, 4), (16, 4),
              (8, 6), (16, 6)}


def _plain_png_fits(path: Path, width: int, height: int, max_pixels: int) -> bool:
    """True when ``path`` is a PNG whose IHDR (CRC checked) is width x height, within both pixel
    limits, and followed directly by IDAT: then :func:`open_checked` would pass it (Pillow reads no
    other chunk). False means "not known": let Pillow decide."""
    try:
        with open(path, "rb") as f:
            head = f.read(41)
    except OSError:
        return False
    if len(head) < 41 or head[:16] != b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" or head[37:41] != b"IDAT":
        return False
    w, h, depth, colour, _, flt, _ = struct.unpack(">IIBBBBB", head[16:29])
    if zlib.crc32(head[12:29]) != struct.unpack(">I", head[29:33])[0] or flt or (depth, colour) not in _PNG_MODES:
        return False
    limit = Image.MAX_IMAGE_PIXELS
    return (w, h) == (width, height) and w * h <= max_pixels and (limit is None or w * h <= limit)


def check_header(
    path: Path,
    *,
    width: int,
    height: int,
    max_pixels: int,
    image_id: int | None = None,
    listed_in: Path | None = None,
) -> None:
    """The checks of :func:`open_checked` without keeping the image; plain PNGs from their first
    41 bytes (no Pillow), anything else through Pillow.

    Raises:
        DatasetError: as :func:`open_checked`.
    """
    if not _plain_png_fits(path, width, height, max_pixels):
        open_checked(path, width=width, height=height, max_pixels=max_pixels, image_id=image_id,
                     listed_in=listed_in).close()


def read_rgb(
    path: Path,
    *,
    width: int,
    height: int,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    image_id: int | None = None,
    listed_in: Path | None = None,
) -> np.ndarray:
    """Read an image as RGB after the checks of :func:`open_checked`.

    Returns:
        uint8[H, W, 3], writable.

    Raises:
        DatasetError: as :func:`open_checked`, and truncated or corrupt files.
    """
    im = open_checked(path, width=width, height=height, max_pixels=max_pixels, image_id=image_id,
                      listed_in=listed_in)
    try:
        with im:
            if im.mode != "RGB":
                im = im.convert("RGB")
            else:
                im.load()
            arr = np.asarray(im)
    except Exception as err:  # PIL raises OSError, SyntaxError, ValueError, zlib.error, ...
        raise DatasetError(
            f"cannot decode the image (truncated or corrupt file: {err}); re-export or replace it",
            path=path,
            image_id=image_id,
        ) from None
    if not arr.flags.writeable:
        arr = arr.copy()
    return arr


def check_pixels(im: Image.Image, path: Path | str, *, max_pixels: int = DEFAULT_MAX_PIXELS, what: str = "image",
                 image_id: int | None = None) -> None:
    """Refuse an opened (not yet decoded) image whose header size is over ``max_pixels``.

    Raises:
        DatasetError: width * height > max_pixels (the message says how to raise the limit).
    """
    w, h = im.size
    if w * h > max_pixels:
        raise DatasetError(f"{what} is {w}x{h} = {w * h} pixels, over the limit of {max_pixels} (checked before "
                           "decoding); raise max_pixels if it is genuine", path=path, image_id=image_id)


def open_image(path: Path | str, *, max_pixels: int = DEFAULT_MAX_PIXELS, what: str = "image") -> Image.Image:
    """``Image.open`` with the pixel limit checked from the header (nothing decoded yet); close it after use."""
    raise_pil_limit(max_pixels)
    im = Image.open(path)
    try:
        check_pixels(im, path if not hasattr(path, "read") else what, max_pixels=max_pixels, what=what)
    except DatasetError:
        im.close()
        raise
    return im


def read_label_map(
    path: Path,
    *,
    width: int,
    height: int,
    valid: np.ndarray,
    image_id: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """Read a label-map PNG of category ids and check it.

    Args:
        path: the PNG.
        width: W of the image.
        height: H of the image.
        valid: bool[256], True for allowed pixel values (category ids and 255).
        image_id: named in errors.
        max_pixels: limit on width * height, checked from the header before decoding (a label map
            as large as a decompression bomb is refused even when its image record claims that size).

    Returns:
        uint8[H, W] of category ids (255 = ignore).

    Raises:
        DatasetError: missing or unreadable file, not 8-bit single channel, size != image,
            values not allowed (the message lists them).
    """
    try:
        with open_image(path, max_pixels=max_pixels, what="label map") as im:
            if im.mode not in ("L", "P"):
                raise DatasetError(
                    f"label map must be a single-channel 8-bit PNG (mode L or P), got mode {im.mode}",
                    path=path,
                    image_id=image_id,
                )
            if im.size != (width, height):
                raise DatasetError(
                    f"label map is {im.size[0]}x{im.size[1]} but the image is {width}x{height} "
                    "(width x height); regenerate the label map",
                    path=path,
                    image_id=image_id,
                )
            arr = np.asarray(im)
    except DatasetError:
        raise
    except FileNotFoundError:
        raise DatasetError(
            "label map not found; every image of a split with label maps needs one (or drop label_maps/)",
            path=path,
            image_id=image_id,
        ) from None
    except Exception as err:
        raise DatasetError(f"cannot read the label map ({err})", path=path, image_id=image_id) from None
    bad = ~valid[arr]
    if bad.any():
        values = np.unique(arr[bad]).tolist()
        allowed = np.flatnonzero(valid[:255]).tolist()
        raise DatasetError(
            f"label map has values {values[:20]}{' ...' if len(values) > 20 else ''} that are neither "
            f"category ids {allowed} nor 255 (ignore); fix the label map or the taxonomy",
            path=path,
            image_id=image_id,
        )
    return arr
