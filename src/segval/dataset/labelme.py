"""Import a folder of labelme JSON files as a segval dataset package.

Shapes (labelme ``shape_type``):

* ``polygon`` (also a missing ``shape_type``), ``rectangle``, ``circle`` and ``mask`` are areas and
  become instance masks. They are rasterised like labelme's own ``shapes_to_label`` (PIL
  ``ImageDraw``: polygon with outline, rectangle from two corners, circle from centre and a
  point on the rim; ``mask``: the base64 PNG placed at the shape's top-left point).
* ``point``, ``line``, ``linestrip`` have no area. By default they are an error naming the file
  and shape; with ``skip_unsupported=True`` (``labelme.skip_unsupported=true`` on the command line)
  they are skipped and the reason is reported.
* any other ``shape_type`` is an error naming the file and shape.

Shapes labelled ``__ignore__`` (labelme2voc's convention; the list is ``ignore_labels``) are *ignore*
regions: 255 in semantic targets where no other shape lies, neither a class nor background.

Shapes with the same ``label`` and the same non-null ``group_id`` form one instance (the union
of their masks, as labelme does); every other shape is its own instance.

Taxonomy: with a label list (labelme's ``label_names.txt`` / ``class_names.txt``, one name a
line), the line number is the category id; a line ``_background_`` (or ``background``) is the
background stuff class (a first line ``__ignore__``, labelme2voc's convention, is dropped, so
``_background_`` after it is id 0). A list without a background name gives a package without background id:
unannotated pixels are void (255). Without a list, names get ids 1, 2, ... in first-seen order (files
sorted by path) and a stuff class ``_background_`` gets id 0. A label that is not in a given
list is an error naming the file.

Image: ``imageData`` (embedded base64) when present, else ``imagePath`` relative to the JSON.
Images are stored as PNG under ``images/<split>/<json path without .json>.png``.

Entry points: :func:`read_labelme` (parse and check, an
:class:`~segval.dataset.formats.result.ImportedDataset`) and :func:`import_labelme` (read, then write a package).
"""

from __future__ import annotations

import base64
import io
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from segval.dataset.images import open_image
from segval.dataset.taxonomy import BACKGROUND_NAMES, Category, Taxonomy, palette_color
from segval.errors import DatasetError

#: shape types turned into instance masks
AREA_SHAPES = ("polygon", "rectangle", "circle", "mask")
#: shape types without an area (rejected, or skipped with skip_unsupported=True)
NO_AREA_SHAPES = ("point", "line", "linestrip", "points")
#: labelme2voc's "ignore" label (first line of class_names.txt, id -1)
IGNORE_LABEL = "__ignore__"
#: the override key that skips area-less shapes (named in errors)
SKIP_KEY = "labelme.skip_unsupported=true"
#: file names looked for as a label list when none is given
LABEL_LIST_NAMES = ("label_names.txt", "class_names.txt", "labels.txt")


@dataclass
class LabelmeItem:
    """One parsed labelme file: the image, its instances (category names, not ids yet), its ignore region
    (bool[H, W] of the ``ignore_labels`` shapes, or None) and what was skipped (reason lines)."""

    path: Path
    file_name: str
    image: np.ndarray
    instances: list[tuple[str, np.ndarray]]
    skipped: list[str] = field(default_factory=list)
    ignore: np.ndarray | None = None


def read_label_list(path: str | os.PathLike) -> list[str]:
    """Names of a labelme label list file (blank lines and ``#`` comments ignored)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError("label list file not found", path=path)
    names = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
    names = [n for n in names if n and not n.startswith("#")]
    if not names:
        raise DatasetError("label list file is empty", path=path)
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise DatasetError(f"label list names appear twice: {dup}", path=path)
    return names


def taxonomy_from_labels(names: Sequence[str], *, first_is_id: int = 0, add_background: bool = False) -> Taxonomy:
    """A taxonomy whose ids are the positions of ``names`` (from ``first_is_id``).

    A name in :data:`~segval.dataset.taxonomy.BACKGROUND_NAMES` becomes the background stuff
    class; with ``add_background`` and none present, ``_background_`` gets id 0.
    """
    cats = []
    bg_id = None
    if add_background and not any(n.lower() in BACKGROUND_NAMES for n in names):
        cats.append(Category(0, "_background_", (0, 0, 0), False, "stuff"))
        bg_id = 0
    for k, n in enumerate(names):
        cid = first_is_id + k
        if n.lower() in BACKGROUND_NAMES:
            if bg_id is not None:
                raise DatasetError(f"several background names in the label list: {list(names)}")
            bg_id = cid
            cats.append(Category(cid, n, (0, 0, 0), False, "stuff"))
        else:
            cats.append(Category(cid, n, palette_color(cid), True, "rigid"))
    if len(cats) > 255:
        raise DatasetError(f"{len(cats)} classes; at most 255 fit in a uint8 label map")
    return Taxonomy(cats, bg_id)


def _decode_image(data: dict[str, Any], path: Path) -> np.ndarray:
    raw = data.get("imageData")
    try:
        if raw:
            img = open_image(io.BytesIO(base64.b64decode(raw)), what="imageData")
        else:
            rel = data.get("imagePath")
            if not rel:
                raise DatasetError("no imageData and no imagePath; cannot find the image", path=path)
            img_path = (path.parent / str(rel).replace("\\", "/")).resolve()
            if not img_path.is_file():
                raise DatasetError(f"imagePath {rel!r} not found (looked at {img_path})", path=path)
            img = open_image(img_path)
        img.load()
    except DatasetError:
        raise
    except Exception as err:  # PIL / base64 errors
        raise DatasetError(f"cannot decode the image ({type(err).__name__}: {err})", path=path) from None
    from PIL import ImageOps

    img = ImageOps.exif_transpose(img) or img
    arr = np.asarray(img.convert("RGB"), dtype=np.uint8)
    h, w = data.get("imageHeight"), data.get("imageWidth")
    if h is not None and w is not None and (int(h), int(w)) != arr.shape[:2]:
        raise DatasetError(
            f"imageHeight x imageWidth = {h}x{w} but the image is {arr.shape[0]}x{arr.shape[1]}", path=path
        )
    return np.ascontiguousarray(arr)


def shape_to_mask(shape: dict[str, Any], height: int, width: int, *, where: str) -> np.ndarray:
    """Rasterise one area shape like labelme's ``shape_to_mask`` (bool[H, W]).

    Raises:
        DatasetError: unknown / area-less shape type or bad points (``where`` names the item).
    """
    stype = shape.get("shape_type") or "polygon"
    pts = shape.get("points")
    try:
        xy = [(float(p[0]), float(p[1])) for p in (pts or [])]
    except (TypeError, ValueError, IndexError):
        raise DatasetError(f"{where}: points must be a list of [x, y] pairs, got {pts!r}") from None
    if not all(math.isfinite(v) for p in xy for v in p):
        raise DatasetError(f"{where}: points hold a non-finite number")
    img = Image.new("1", (width, height), 0)
    draw = ImageDraw.Draw(img)
    if stype == "polygon":
        if len(xy) < 3:
            raise DatasetError(f"{where}: a polygon needs at least 3 points, got {len(xy)}")
        draw.polygon(xy, outline=1, fill=1)
    elif stype == "rectangle":
        if len(xy) != 2:
            raise DatasetError(f"{where}: a rectangle needs 2 points (corners), got {len(xy)}")
        (x1, y1), (x2, y2) = xy
        draw.rectangle([(min(x1, x2), min(y1, y2)), (max(x1, x2), max(y1, y2))], outline=1, fill=1)
    elif stype == "circle":
        if len(xy) != 2:
            raise DatasetError(f"{where}: a circle needs 2 points (centre, rim), got {len(xy)}")
        (cx, cy), (px, py) = xy
        r = math.hypot(cx - px, cy - py)
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=1, fill=1)
    elif stype == "mask":
        raw = shape.get("mask")
        if not raw or not xy:
            raise DatasetError(f"{where}: a mask shape needs 'mask' (base64 PNG) and a top-left point")
        try:
            m = np.asarray(open_image(io.BytesIO(base64.b64decode(raw)), what="mask").convert("L")) > 0
        except Exception as err:
            raise DatasetError(f"{where}: cannot decode 'mask' ({type(err).__name__}: {err})") from None
        out = np.zeros((height, width), dtype=bool)
        x0, y0 = int(round(xy[0][0])), int(round(xy[0][1]))
        ys, xs = max(y0, 0), max(x0, 0)
        ye, xe = min(y0 + m.shape[0], height), min(x0 + m.shape[1], width)
        if ye > ys and xe > xs:
            out[ys:ye, xs:xe] = m[ys - y0 : ye - y0, xs - x0 : xe - x0]
        return out
    elif stype in NO_AREA_SHAPES:
        raise DatasetError(
            f"{where}: shape_type {stype!r} has no area, so it cannot be a segmentation mask; draw it as a "
            f"polygon / rectangle / circle, or pass {SKIP_KEY} to skip such shapes"
        )
    else:
        raise DatasetError(
            f"{where}: unknown shape_type {stype!r}; supported: {list(AREA_SHAPES)} "
            f"(and {list(NO_AREA_SHAPES)} skipped with {SKIP_KEY})"
        )
    return np.asarray(img, dtype=bool)


def parse_labelme_file(path: Path, file_name: str, *, skip_unsupported: bool = False,
                       ignore_labels: Sequence[str] = (IGNORE_LABEL,)) -> LabelmeItem:
    """Read one labelme JSON: image + instances (shapes grouped by ``(label, group_id)``) + ignore region."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DatasetError(f"invalid JSON at line {err.lineno}, column {err.colno}: {err.msg}", path=path) from None
    except UnicodeDecodeError as err:
        raise DatasetError(f"not UTF-8 text: {err}", path=path) from None
    if not isinstance(data, dict) or not isinstance(data.get("shapes"), list):
        raise DatasetError("not a labelme file: needs a JSON object with a 'shapes' list", path=path)
    image = _decode_image(data, path)
    h, w = image.shape[:2]
    groups: dict[Any, tuple[str, np.ndarray]] = {}
    order: list[Any] = []
    skipped: list[str] = []
    ignore: np.ndarray | None = None
    for k, shape in enumerate(data["shapes"]):
        where = f"{path}: shape {k}"
        if not isinstance(shape, dict):
            raise DatasetError(f"{where}: must be a JSON object, got {type(shape).__name__}")
        label = shape.get("label")
        if not isinstance(label, str) or not label.strip():
            raise DatasetError(f"{where}: 'label' must be a non-empty string, got {label!r}")
        label = label.strip()
        where = f"{where} (label {label!r})"
        stype = shape.get("shape_type") or "polygon"
        if stype in NO_AREA_SHAPES and skip_unsupported:
            skipped.append(f"{path.name}: shape {k} (label {label!r}) skipped: shape_type {stype!r} has no area")
            continue
        mask = shape_to_mask(shape, h, w, where=where)
        if label in ignore_labels:
            ignore = mask if ignore is None else ignore | mask
            continue
        gid = shape.get("group_id")
        key: Any = ("shape", k) if gid is None else ("group", label, gid)
        if key in groups:
            groups[key] = (label, groups[key][1] | mask)
        else:
            groups[key] = (label, mask)
            order.append(key)
    instances = []
    for key in order:
        label, mask = groups[key]
        if mask.any():
            instances.append((label, mask))
        else:
            skipped.append(f"{path.name}: {label!r} instance skipped: its mask is empty (outside the image?)")
    return LabelmeItem(path, file_name, image, instances, skipped, ignore)


def find_labelme_files(source: str | os.PathLike) -> list[Path]:
    """Labelme JSON files under ``source`` (recursive, sorted by relative path)."""
    source = Path(source)
    if not source.is_dir():
        raise DatasetError("labelme folder not found", path=source)
    files = sorted((p for p in source.rglob("*.json") if not p.name.startswith(".")),
                   key=lambda p: p.relative_to(source).as_posix())
    if not files:
        raise DatasetError("no labelme .json files found in the folder", path=source)
    return files


def _parse_folder(source: Path, labels: Any, skip_unsupported: bool, ignore_labels: Sequence[str],
                  progress: Callable[[Any], Any] | None) -> tuple[list[LabelmeItem], Taxonomy, str | None]:
    """Every labelme file parsed (errors before anything is written), the taxonomy and the label list used."""
    files = find_labelme_files(source)
    label_list: str | None = None
    if labels is None:
        for cand in LABEL_LIST_NAMES:
            if (source / cand).is_file():
                labels = source / cand
                break
    if isinstance(labels, (str, os.PathLike)):
        label_list = str(labels)
        names = read_label_list(labels)
    elif labels is not None:
        names = [str(n) for n in labels]
    else:
        names = None
    if names and names[0] == IGNORE_LABEL:  # labelme2voc convention: __ignore__ = -1, then _background_ = 0
        names = names[1:]
    if names:
        names = [n for n in names if n not in ignore_labels]
    files = [f for f in files if f.name not in LABEL_LIST_NAMES]
    items: list[LabelmeItem] = []
    for f in (progress(files) if progress else files):
        rel = f.relative_to(source).with_suffix(".png").as_posix()
        items.append(parse_labelme_file(f, rel, skip_unsupported=skip_unsupported, ignore_labels=ignore_labels))
    if names is None:
        seen: list[str] = []
        for item in items:
            for label, _ in item.instances:
                if label not in seen and label.lower() not in BACKGROUND_NAMES:
                    seen.append(label)
        taxonomy = taxonomy_from_labels(seen, first_is_id=1, add_background=True)
    else:
        taxonomy = taxonomy_from_labels(names, first_is_id=0)
    known = set(taxonomy.names)
    for item in items:
        for label, _ in item.instances:
            if label not in known:
                raise DatasetError(
                    f"label {label!r} is not in the label list {label_list or names}; add it to the list (or to "
                    "labelme.ignore_labels when its shapes mark regions to ignore)",
                    path=item.path,
                )
    return items, taxonomy, label_list


def read_labelme(
    source: str | os.PathLike,
    *,
    split: str = "train",
    labels: str | os.PathLike | Sequence[str] | None = None,
    skip_unsupported: bool = False,
    ignore_labels: Sequence[str] = (IGNORE_LABEL,),
    progress: Callable[[Any], Any] | None = None,
) -> Any:
    """Parse and check a folder of labelme JSONs (see the module doc). Nothing is written.

    Args:
        source: the labelme folder (searched recursively for ``*.json``).
        split: split name.
        labels: a label list file, a list of names, or None (a ``label_names.txt`` / ``class_names.txt``
            in ``source`` is used if present, else first-seen order).
        skip_unsupported: skip point / line / linestrip shapes instead of failing.
        ignore_labels: labels whose shapes are ignore regions (255 in semantic targets).
        progress: wraps the file iterator (e.g. ``tqdm``).

    Returns:
        An :class:`~segval.dataset.formats.result.ImportedDataset` (images in memory).

    Raises:
        DatasetError: bad file / shape / label (named).
    """
    items, taxonomy, _ = _parse_folder(Path(source), labels, skip_unsupported, tuple(ignore_labels), progress)
    return _imported(Path(source), split, items, taxonomy)


def _imported(source: Path, split: str, items: list[LabelmeItem], taxonomy: Taxonomy) -> Any:
    from segval.dataset.formats.result import Findings, ImportedDataset, ImportedImage, ImportedInstance
    from segval.dataset.rle import from_mask

    by_name = {c.name: c.id for c in taxonomy}
    f = Findings()
    images = []
    for item in items:
        h, w = item.image.shape[:2]
        insts = [ImportedInstance.from_mask(by_name[label], mask, origin=f"{item.path.name} {label!r}")
                 for label, mask in item.instances]
        for reason in item.skipped:
            f.skip("area-less shapes (labelme.skip_unsupported=true)" if "has no area" in reason
                   else "shapes without pixels", reason)
        if item.ignore is not None and item.ignore.any():
            f.warn("ignore", "shapes labelled as ignore (labelme.ignore_labels) are ignore regions (255)",
                   item.path.name)
        images.append(ImportedImage(item.file_name, w, h, pixels=item.image, instances=insts,
                                    ignore=None if item.ignore is None else from_mask(item.ignore),
                                    extra={"source_file": item.path.relative_to(source).as_posix()},
                                    origin=str(item.path)))
    return ImportedDataset("labelme", str(source), taxonomy, {split: images}, f.warnings(), f.skipped,
                           name=source.resolve().name)


def import_labelme(
    source: str | os.PathLike,
    output: str | os.PathLike,
    *,
    name: str,
    version: str,
    split: str = "train",
    labels: str | os.PathLike | Sequence[str] | None = None,
    skip_unsupported: bool = False,
    ignore_labels: Sequence[str] = (IGNORE_LABEL,),
    license: str | None = None,  # noqa: A002 - the dataset.yaml key
    progress: Callable[[Any], Any] | None = None,
) -> dict[str, Any]:
    """Convert a folder of labelme JSONs into a package at ``output`` (atomic; refuses to overwrite).

    Args:
        source, split, labels, skip_unsupported, ignore_labels, progress: as :func:`read_labelme`.
        output: the package folder to create.
        name, version: package name and semver version.
        license: licence for dataset.yaml (default ``unknown``, with a warning).

    Returns:
        ``{"images", "instances", "taxonomy": [names], "label_list": path|None, "skipped": [reasons],
        "warnings": [...], "license"}``.

    Raises:
        DatasetError: bad file / shape / label (named); the output folder is not created.
    """
    from segval.dataset.formats.result import write_imported

    source = Path(source)
    items, taxonomy, label_list = _parse_folder(source, labels, skip_unsupported, tuple(ignore_labels), progress)
    res = write_imported(_imported(source, split, items, taxonomy), output, name=name, version=version,
                         license=license)
    return {"images": res["images"], "instances": res["annotations"], "taxonomy": taxonomy.names,
            "label_list": label_list, "skipped": [s for item in items for s in item.skipped],
            "warnings": res["warnings"], "license": res["license"]}
