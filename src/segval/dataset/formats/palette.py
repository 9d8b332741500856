"""Read colour / palette PNG label maps (PASCAL VOC style) with a colour table: ``format=voc``.

Masks are PNGs whose pixel colour names the class: RGB colour masks, palette-mode (``P``) PNGs (the
colour of a pixel is its palette entry, as VOC's ``SegmentationClass`` files), or single-channel
``L`` PNGs whose values are the class ids themselves, unless every value v of the mask is the grey
table colour (v, v, v) of a class (binary 0 / 255 masks with ``object:255,255,255``). The colour table comes from:

* ``dataset_meta.json``: MMSegmentation style ``{"classes": [...], "palette": [[r, g, b], ...]}``,
  or Datumaro's ``{"label_map": {"0": name, ...}, "segmentation_colors": [[r, g, b], ...]}``;
* ``labelmap.txt`` of CVAT / Datumaro: ``# label:color_rgb:parts:actions`` then ``name:r,g,b::`` a line
  (an empty colour gets the VOC colour of its index);
* labelme2voc's ``class_names.txt``: one name a line (a first ``__ignore__`` dropped), VOC colours by position;
* otherwise VOC's own 21 classes with the standard bit-interleaved colormap (background black);
  VOC's 255 (its colour (224, 224, 192)) marks borders: *ignore*.

The position in the table is the category id. A class named background (any case) is the
background; its pixels are not annotations. ``SegmentationObject``-style instance PNGs (VOC instance
colormap or palette indices: 0 background, 255 border) split a class into instances (each object
takes the majority class of its pixels; pixels of a class outside every object become one
instance of that class); without them each class in an image is one instance. The semantic
target of the package is the class map exactly.

Pairing of images and masks: the same relative path without extension, or an explicit ``pair``:
two patterns with ``{id}``, e.g. ``("image_{id}.png", "gt_{id}.png")`` (or ``"image_{id}.png:gt_{id}.png"``).

Refused (every problem listed at once, nothing written): a colour not in the table (the message
names the file, the colour and its pixel count), a mask of another size than its image, a mask
without an image, unreadable files, images over the pixel limit.

Entry point: :func:`read_voc`. :mod:`.cvat_masks` reads CVAT's "Segmentation mask 1.1" with the same
machinery.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from segval.dataset.coco_dialects import parse_color
from segval.dataset.formats.result import (
    DEFAULT_MAX_PIXELS,
    Findings,
    ImportedDataset,
    ImportedImage,
    ImportedInstance,
    check_unique_names,
    package_file_name,
    probe_image,
    read_png_array,
)
from segval.dataset.rle import from_mask
from segval.dataset.taxonomy import BACKGROUND_NAMES, Category, Taxonomy, palette_color
from segval.errors import DatasetError

__all__ = [
    "VOC_CLASSES",
    "ColorTable",
    "decode_class_png",
    "decode_object_png",
    "pair_files",
    "read_dataset_meta",
    "read_labelmap_txt",
    "read_voc",
    "voc_colormap",
]

#: PASCAL VOC's 21 classes (index = class id); 255 is the border (ignore)
VOC_CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor")
IGNORE = 255
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def voc_colormap(n: int = 256) -> np.ndarray:
    """The VOC bit-interleaved colormap, uint8[n, 3] (row i = :func:`~segval.dataset.taxonomy.palette_color` (i))."""
    return np.asarray([palette_color(i) for i in range(n)], dtype=np.uint8)


def _pack(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.int64)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


@dataclass
class ColorTable:
    """Class names and colours; the index is the category id.

    Attributes:
        names: class names.
        colors: one RGB triple per class.
        ignore: colours meaning ignore (255 in the result).
        source: where the table came from (named in messages).
    """

    names: list[str]
    colors: list[tuple[int, int, int]]
    ignore: list[tuple[int, int, int]] = field(default_factory=list)
    source: str = ""

    def __post_init__(self) -> None:
        if len(self.names) != len(self.colors):
            raise DatasetError(f"{self.source}: {len(self.names)} class names but {len(self.colors)} colours")
        if not self.names:
            raise DatasetError(f"{self.source}: the colour table has no class")
        if len(self.names) > 255:
            raise DatasetError(f"{self.source}: {len(self.names)} classes; at most 255 fit a uint8 label map")
        seen: dict[tuple[int, int, int], str] = {}
        for n, c in zip(self.names, self.colors):
            if c in seen:
                raise DatasetError(f"{self.source}: classes {seen[c]!r} and {n!r} share the colour {c}; each class "
                                   "needs its own colour")
            seen[c] = n
        dup = sorted({n for n in self.names if self.names.count(n) > 1})
        if dup:
            raise DatasetError(f"{self.source}: class names {dup} appear twice")

    @classmethod
    def voc(cls) -> ColorTable:
        """VOC's 21 classes, colours of the VOC colormap, 255's colour = ignore."""
        return cls(list(VOC_CLASSES), [palette_color(i) for i in range(len(VOC_CLASSES))], [palette_color(IGNORE)],
                   "the PASCAL VOC colormap")

    def sorted_lut(self) -> tuple[np.ndarray, np.ndarray]:
        """(packed colours ascending, their category ids): for ``np.searchsorted`` lookups."""
        lut = self.lut()
        keys = np.asarray(sorted(lut), dtype=np.int64)
        return keys, np.asarray([lut[int(k)] for k in keys], dtype=np.int64)

    def lut(self) -> dict[int, int]:
        """Packed colour (r << 16 | g << 8 | b) -> category id (255 for ignore colours)."""
        out = {int(_pack(np.asarray(c))): i for i, c in enumerate(self.colors)}
        for c in self.ignore:
            out.setdefault(int(_pack(np.asarray(c))), IGNORE)
        return out

    def taxonomy(self, background: str | None = "auto") -> Taxonomy:
        """Category i = (names[i], colors[i]); the background by name (``auto``), by ``background=<name>``, or none."""
        want = None if background is None or background.lower() == "none" else background
        bg = None
        if want == "auto":
            found = [i for i, n in enumerate(self.names) if n.lower() in BACKGROUND_NAMES]
            bg = found[0] if found else None
        elif want is not None:
            if want not in self.names:
                raise DatasetError(f"background={background!r} is not a class of {self.source} ({self.names})")
            bg = self.names.index(want)
        cats = [Category(i, n, c, i != bg, "stuff" if i == bg else "rigid")
                for i, (n, c) in enumerate(zip(self.names, self.colors))]
        return Taxonomy(cats, bg)


def read_labelmap_txt(path: str | os.PathLike) -> ColorTable:
    """CVAT / Datumaro ``labelmap.txt``: ``name:r,g,b:parts:actions`` lines (``#`` comments)."""
    path = Path(path)
    names, colors = [], []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DatasetError(f"cannot read the label map ({err})", path=path) from None
    for n, line in enumerate(lines, start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        if len(parts) != 4:
            raise DatasetError(f"line {n}: {line!r} has {len(parts)} ':'-separated fields; expected "
                               "name:r,g,b:parts:actions", path=path)
        try:
            color = parse_color(parts[1]) if parts[1].strip() else palette_color(len(names))
        except ValueError as err:
            raise DatasetError(f"line {n}: {err}", path=path) from None
        names.append(parts[0].strip())
        colors.append(color)
    return ColorTable(names, colors, [], str(path))


def read_class_names(path: str | os.PathLike) -> ColorTable:
    """labelme2voc's ``class_names.txt``: one name a line, the line number (from 0) is the id and the VOC
    colormap gives the colour; a first line ``__ignore__`` (labelme's id -1, written as 255) is dropped and
    255's colour means ignore."""
    path = Path(path)
    try:
        names = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
    except (OSError, UnicodeDecodeError) as err:
        raise DatasetError(f"cannot read the class names ({err})", path=path) from None
    names = [n for n in names if n and not n.startswith("#")]
    if names and names[0] == "__ignore__":
        names = names[1:]
    return ColorTable(names, [palette_color(i) for i in range(len(names))], [palette_color(IGNORE)], str(path))


def read_color_table(path: str | os.PathLike) -> ColorTable:
    """A colour table file: ``dataset_meta.json``, a ``labelmap.txt`` (``name:r,g,b::`` lines) or a plain
    list of names (``class_names.txt``, VOC colours by position)."""
    p = Path(path)
    if not p.is_file():
        raise DatasetError("colour table file not found", path=p)
    if p.suffix.lower() == ".json":
        return read_dataset_meta(p)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise DatasetError(f"cannot read the colour table ({err})", path=p) from None
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    return read_labelmap_txt(p) if any(":" in ln for ln in lines) else read_class_names(p)


def read_dataset_meta(path: str | os.PathLike) -> ColorTable:
    """``dataset_meta.json``: ``{"classes", "palette"}`` (MMSeg) or ``{"label_map", "segmentation_colors"}`` (Datumaro)."""
    path = Path(path)
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise DatasetError(f"cannot read the JSON ({err})", path=path) from None
    if not isinstance(meta, dict):
        raise DatasetError("dataset_meta.json must hold a JSON object", path=path)
    if "classes" in meta:
        names = [str(n) for n in meta["classes"]]
        pal = meta.get("palette") or [palette_color(i) for i in range(len(names))]
    elif "label_map" in meta:
        lm = meta["label_map"]
        order = sorted(lm, key=lambda k: int(k)) if isinstance(lm, dict) else []
        if [int(k) for k in order] != list(range(len(order))):
            raise DatasetError("'label_map' keys must be 0, 1, 2, ... (the class ids)", path=path)
        names = [str(lm[k]) for k in order]
        pal = meta.get("segmentation_colors") or [palette_color(i) for i in range(len(names))]
    else:
        raise DatasetError("dataset_meta.json needs 'classes' (+ 'palette') or 'label_map' (+ 'segmentation_colors')",
                           path=path)
    try:
        colors = [parse_color(c) for c in pal]
    except ValueError as err:
        raise DatasetError(f"palette: {err}", path=path) from None
    if len(colors) != len(names) or any(c is None for c in colors):
        raise DatasetError(f"{len(names)} classes but {len(colors)} palette colours; give one [r, g, b] per class",
                           path=path)
    return ColorTable(names, colors, [], str(path))  # type: ignore[arg-type]


def find_color_table(*folders: Path) -> ColorTable | None:
    """``dataset_meta.json``, ``labelmap.txt`` or labelme2voc's ``class_names.txt`` in the first folder that has one."""
    for d in folders:
        if (d / "dataset_meta.json").is_file():
            return read_dataset_meta(d / "dataset_meta.json")
        if (d / "labelmap.txt").is_file():
            return read_labelmap_txt(d / "labelmap.txt")
        if (d / "class_names.txt").is_file():
            return read_class_names(d / "class_names.txt")
    return None


# ---------------------------------------------------------------------- decoding
def _unknown(path: Path, colors: np.ndarray, counts: np.ndarray, table: ColorTable) -> DatasetError:
    order = np.argsort(-counts)
    shown = ", ".join(f"({c >> 16}, {(c >> 8) & 255}, {c & 255}): {n} px" for c, n in
                      zip(colors[order][:5].tolist(), counts[order][:5].tolist()))
    more = f" and {len(colors) - 5} more" if len(colors) > 5 else ""
    return DatasetError(f"colours not in the colour table ({table.source}): {shown}{more}; add the classes to the "
                        "table or fix the mask", path=path)


def _grey_as_colors(ids: np.ndarray, table: ColorTable) -> np.ndarray | None:
    """A grey mask whose every value v is the table colour (v, v, v) of a class that is not id v (a binary 0 / 255
    mask with ``object: 255,255,255``): uint8[H, W] category ids through the table; else None (values are ids)."""
    vals = np.unique(ids)
    if vals.size == 0 or vals.min() < 0 or vals.max() > 255:
        return None
    lut = table.lut()
    mapped = [lut.get(int(v) * 65793) for v in vals.tolist()]  # 65793 = (1 << 16) + (1 << 8) + 1
    if any(m is None for m in mapped) or all(m == v for m, v in zip(mapped, vals.tolist())):
        return None
    out = np.zeros(256, dtype=np.uint8)
    out[vals] = mapped
    return out[ids]


def decode_class_png(path: Path, table: ColorTable, *, width: int, height: int,
                     max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """uint8[H, W] category ids (255 = ignore) of a colour / palette / grey mask PNG.

    Raises:
        DatasetError: missing, unreadable, wrong size, unknown colours (file, colour, pixel count).
    """
    im = read_png_array(path, max_pixels=max_pixels, width=width, height=height, what="mask")
    with im:
        if im.mode in ("L", "I", "I;16"):
            ids = np.asarray(im).astype(np.int64)
            grey = _grey_as_colors(ids, table)
            if grey is not None:
                return grey
            bad = ~((ids < len(table.names)) | (ids == IGNORE))
            if bad.any():
                vals, counts = np.unique(ids[bad], return_counts=True)
                raise DatasetError(f"grey mask values {vals[:10].tolist()} ({counts.sum()} px) are no class id "
                                   f"(0..{len(table.names) - 1}) nor 255", path=path)
            return ids.astype(np.uint8)
        if im.mode == "P":
            idx = np.asarray(im)
            pal = np.asarray(im.getpalette() or [], dtype=np.int64)
            pal = np.pad(pal, (0, max(0, 768 - pal.size)))[:768].reshape(256, 3)
            per_index = _lookup(_pack(pal), *table.sorted_lut())  # category id of each palette index, -1 unknown
            used = np.bincount(idx.reshape(-1), minlength=256)
            bad = (used > 0) & (per_index < 0)
            if bad.any():
                raise _unknown(path, _pack(pal)[bad], used[bad], table)
            return per_index[idx].astype(np.uint8)
        rgb = np.asarray(im.convert("RGB"))
    return _map_colors(_pack(rgb), *table.sorted_lut(), path, table)


def _lookup(packed: np.ndarray, keys: np.ndarray, vals: np.ndarray) -> np.ndarray:
    pos = np.clip(np.searchsorted(keys, packed), 0, len(keys) - 1)
    return np.where(keys[pos] == packed, vals[pos], -1)


def _map_colors(packed: np.ndarray, keys: np.ndarray, vals: np.ndarray, path: Path, table: Any) -> np.ndarray:
    ids = _lookup(packed, keys, vals)
    bad = ids < 0
    if bad.any():
        colors, counts = np.unique(packed[bad], return_counts=True)
        raise _unknown(path, colors, counts, table)
    return ids.astype(np.uint8)


_VOC_INST_KEYS = _pack(voc_colormap(256))
_VOC_INST_ORDER = np.argsort(_VOC_INST_KEYS)
_VOC_INST = (_VOC_INST_KEYS[_VOC_INST_ORDER], _VOC_INST_ORDER.astype(np.int64))


class _InstanceColormap:
    source = "the VOC instance colormap"


def decode_object_png(path: Path, *, width: int, height: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """int[H, W] object indices (0 background, 255 border) of a VOC ``SegmentationObject`` PNG (palette
    indices, or RGB colours of the VOC instance colormap)."""
    im = read_png_array(path, max_pixels=max_pixels, width=width, height=height, what="object mask")
    with im:
        if im.mode in ("P", "L"):
            return np.asarray(im).astype(np.int64)
        rgb = np.asarray(im.convert("RGB"))
    return _map_colors(_pack(rgb), *_VOC_INST, path, _InstanceColormap).astype(np.int64)


def instances_from_maps(cls_map: np.ndarray, obj_map: np.ndarray | None, bg_id: int | None, where: str,
                        f: Findings) -> tuple[list[ImportedInstance], Any]:
    """Instances (and the ignore region) of a class map and an optional object map (see the module doc)."""
    ignore = cls_map == IGNORE
    covered = ignore.copy()
    if bg_id is not None:
        covered |= cls_map == bg_id
    out: list[ImportedInstance] = []
    if obj_map is not None:
        for k in np.flatnonzero(np.bincount(obj_map.reshape(-1), minlength=256)).tolist():
            if k in (0, IGNORE):
                continue
            m = (obj_map == k) & ~covered
            if not m.any():
                f.warn("object_no_class", "objects whose pixels are all background or ignore in the class mask, "
                       "left out", f"{where} object {k}")
                continue
            counts = np.bincount(cls_map[m], minlength=256)
            cat = int(np.argmax(counts))
            if np.count_nonzero(counts) > 1:
                f.warn("object_classes", "objects spanning several classes: the object takes its majority class, "
                       "the other pixels stay their class", f"{where} object {k}")
            m &= cls_map == cat
            covered |= m
            out.append(ImportedInstance(cat, from_mask(m), 0, origin=f"{where} object {k}"))
    for c in np.flatnonzero(np.bincount(cls_map[~covered], minlength=256)).tolist():
        out.append(ImportedInstance(int(c), from_mask((cls_map == c) & ~covered), 0, origin=f"{where} class {c}"))
    return out, (from_mask(ignore) if ignore.any() else None)


# ---------------------------------------------------------------------- pairing
def _pattern(p: str) -> re.Pattern[str]:
    if p.count("{id}") != 1:
        raise DatasetError(f"pair pattern {p!r} needs exactly one '{{id}}', e.g. 'image_{{id}}.png'")
    a, b = p.split("{id}")
    return re.compile(re.escape(a) + r"(?P<id>.+?)" + re.escape(b) + r"$")


def _files(d: Path, exts: Sequence[str]) -> list[str]:
    return sorted(p.relative_to(d).as_posix() for p in d.rglob("*") if p.is_file() and p.suffix.lower() in exts
                  and not p.name.startswith("."))


def pair_files(images_dir: Path, masks_dir: Path, pair: str | Sequence[str] | None = None,
               f: Findings | None = None) -> list[tuple[Path, Path, str]]:
    """(image path, mask path, image relative path) per mask.

    ``pair`` None: same relative path without extension. Otherwise two patterns with ``{id}``
    (image pattern, mask pattern), matched against the relative paths.

    Raises:
        DatasetError: a mask without an image (named), several images for one mask, bad patterns.
    """
    images, masks = _files(images_dir, IMAGE_EXTS), _files(masks_dir, (".png",))
    if not masks:
        raise DatasetError("no .png masks found", path=masks_dir)
    if pair is None:
        key_img = {Path(r).with_suffix("").as_posix(): r for r in images}
        key_mask = {Path(r).with_suffix("").as_posix(): r for r in masks}
    else:
        pats = pair.split(":") if isinstance(pair, str) else list(pair)
        if len(pats) != 2:
            raise DatasetError(f"pair must be two patterns (image, mask) such as ('image_{{id}}.png', 'gt_{{id}}.png'),"
                               f" got {pair!r}")
        pi, pm = _pattern(pats[0]), _pattern(pats[1])
        key_img = {m.group("id"): r for r in images if (m := pi.search(r)) and _anchored(m, r)}
        key_mask = {m.group("id"): r for r in masks if (m := pm.search(r)) and _anchored(m, r)}
        if not key_mask:
            raise DatasetError(f"no mask file matches the pattern {pats[1]!r}", path=masks_dir)
    out, problems = [], []
    for k, mrel in sorted(key_mask.items()):
        irel = key_img.get(k)
        if irel is None:
            problems.append(DatasetError(f"mask {mrel!r} has no image in {images_dir} (looked for {k!r} + an image "
                                         "extension); add the image or pass pair=(image pattern, mask pattern)",
                                         path=masks_dir / mrel))
            continue
        out.append((images_dir / irel, masks_dir / mrel, irel))
    if f is not None:
        for k, irel in key_img.items():
            if k not in key_mask:
                f.skip("images without a mask", irel)
        f.problems.extend(problems)
    elif problems:
        from segval.dataset.coco import combine_problems

        raise combine_problems(problems, f"{masks_dir}: {len(problems)} masks without an image", path=masks_dir)
    return out


def _anchored(m: re.Match[str], rel: str) -> bool:
    """The pattern matches a whole path part (``gt_1.png`` in ``sub/gt_1.png``, not ``xgt_1.png``)."""
    return m.start() == 0 or rel[m.start() - 1] == "/"


# ---------------------------------------------------------------------- the reader
def read_voc(
    masks_dir: str | os.PathLike,
    images_dir: str | os.PathLike,
    *,
    colors: str | os.PathLike | ColorTable | None = None,
    pair: str | Sequence[str] | None = None,
    objects_dir: str | os.PathLike | None = None,
    split: str = "train",
    background: str | None = "auto",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: Callable[[Any], Any] | None = None,
) -> ImportedDataset:
    """Parse and check colour / palette label maps with their images (see the module doc). Nothing is written.

    Args:
        masks_dir: folder of mask PNGs (e.g. VOC's ``SegmentationClass``).
        images_dir: folder of the images (e.g. ``JPEGImages``).
        colors: a ``dataset_meta.json`` / ``labelmap.txt`` path, a :class:`ColorTable`, ``"voc"``, or None
            (a table beside / above the masks, else VOC's 21 classes).
        pair: image / mask name patterns with ``{id}`` (default: same name without extension).
        objects_dir: folder of instance PNGs (``SegmentationObject``), optional.
        split: split name.
        background: ``"auto"`` (a class named background), ``"none"`` or a class name.
        max_pixels: limit on width * height, checked from the headers before decoding.
        progress: wraps the per-image loop.

    Raises:
        DatasetError: listing every problem (file, colour and pixel count for unknown colours).
    """
    masks_dir, images_dir = Path(masks_dir), Path(images_dir)
    for d, what in ((masks_dir, "mask folder"), (images_dir, "image folder")):
        if not d.is_dir():
            raise DatasetError(f"{what} not found", path=d)
    f = Findings()
    table = _table(colors, masks_dir, f)
    tax = table.taxonomy(background)
    pairs = pair_files(images_dir, masks_dir, pair, f)
    objs = Path(objects_dir) if objects_dir is not None else None
    out = _read_pairs(pairs, table, tax, objs, max_pixels, f, progress, "voc")
    check_unique_names(f, split, out, masks_dir)
    f.raise_if_any(masks_dir, "label maps")
    return ImportedDataset("voc", str(masks_dir), tax, {split: out}, f.warnings(), f.skipped, max_pixels=max_pixels)


def _table(colors: Any, masks_dir: Path, f: Findings) -> ColorTable:
    if isinstance(colors, ColorTable):
        return colors
    if isinstance(colors, str) and colors.lower() == "voc":
        return ColorTable.voc()
    if colors is not None:
        return read_color_table(colors)
    found = find_color_table(masks_dir, masks_dir.parent)
    if found is not None:
        return found
    f.note("no dataset_meta.json / labelmap.txt found: using the 21 PASCAL VOC classes and colours "
           "(255 / (224, 224, 192) = ignore)")
    return ColorTable.voc()


def _read_pairs(pairs: list[tuple[Path, Path, str]], table: ColorTable, tax: Taxonomy, objs: Path | None,
                max_pixels: int, f: Findings, progress: Callable[[Any], Any] | None, fmt: str) -> list[ImportedImage]:
    out: list[ImportedImage] = []
    for img, mask, rel in (progress(pairs) if progress else pairs):
        try:
            w, h = probe_image(img, max_pixels=max_pixels)
            cls_map = decode_class_png(mask, table, width=w, height=h, max_pixels=max_pixels)
            obj_map = None
            if objs is not None:
                op = next((c for c in (objs / Path(rel).with_suffix(".png"), objs / mask.name) if c.is_file()), None)
                if op is not None:
                    obj_map = decode_object_png(op, width=w, height=h, max_pixels=max_pixels)
                else:
                    f.warn("no_objects", "masks without an object (instance) PNG: one instance per class",
                           mask.name)
        except DatasetError as err:
            f.add(err)
            continue
        present = np.bincount(cls_map.reshape(-1), minlength=256) > 0
        if present[IGNORE] and not present[1:IGNORE].any():
            f.warn("only_ignore", "masks holding nothing but ignore (255) and class 0: if 255 marks your objects (a "
                   "binary 0 / 255 mask), give a colour table naming them, e.g. a labelmap.txt with "
                   "`background:0,0,0::` and `object:255,255,255::` (voc.colors=)", mask.name)
        insts, ignore = instances_from_maps(cls_map, obj_map, tax.background_id, mask.name, f)
        out.append(ImportedImage(package_file_name(rel), w, h, path=img, instances=insts, ignore=ignore,
                                 origin=f"{fmt} mask {mask.name}"))
    return out
