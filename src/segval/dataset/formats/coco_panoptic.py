"""Read a COCO panoptic export (the panopticapi layout) into an :class:`ImportedDataset`.

Layout (panopticapi, COCO 2017, Detectron2, mmdet, segval's own ``export format=panoptic``)::

    annotations/panoptic_<split>.json     images[{id, file_name, width, height}],
                                          annotations[{image_id, file_name (PNG), segments_info[{id,
                                          category_id, iscrowd, area?, bbox?}]}], categories[{id, name,
                                          isthing, color?}]
    annotations/panoptic_<split>/*.png    (panopticapi) or panoptic/<split>/*.png (segval): RGB, segment
                                          id = R + 256 G + 256^2 B, 0 = void
    <images folder>/<file_name>           the photos

Mapping: a segment of a *thing* category is an instance; a segment of a *stuff* category is an
annotation of that (semantic) class; ``iscrowd: 1`` segments and void (id 0) become *ignore*
regions (255 in semantic targets), as panopticapi ignores crowd and void in PQ. The taxonomy comes
from ``categories`` (``isthing`` as 0 / 1 or a string, colours as lists or hex); by default no
background class (``background="none"``: uncovered pixels are void).

Refused, every problem named (file, image id, segment id) and listed at once, nothing written: a
PNG whose size differs from its image, ids in a PNG that ``segments_info`` does not list (and
listed segments absent from the PNG), duplicate segment ids, unknown categories, a PNG that is not
RGB, missing image or PNG files, file names leaving their folder, images over the pixel limit.

Entry point: :func:`read_coco_panoptic`; :func:`is_coco_panoptic` recognises such a JSON (for
``data check`` to say "this is COCO panoptic").
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from segval.dataset.coco import load_json
from segval.dataset.coco_dialects import coerce_bool, coerce_int, parse_color
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
    resolve_inside,
)
from segval.dataset.rle import from_mask
from segval.dataset.taxonomy import Taxonomy
from segval.errors import DatasetError

__all__ = ["default_png_dir", "is_coco_panoptic", "read_coco_panoptic"]


def is_coco_panoptic(obj: Any) -> bool:
    """True for a parsed COCO panoptic JSON: ``images`` + ``annotations`` with ``segments_info`` and PNG ``file_name``."""
    if not isinstance(obj, Mapping) or not isinstance(obj.get("images"), list):
        return False
    anns = obj.get("annotations")
    if not isinstance(anns, list) or not anns:
        return False
    head = [a for a in anns[:20] if isinstance(a, Mapping)]
    return bool(head) and all(isinstance(a.get("segments_info"), list) and isinstance(a.get("file_name"), str)
                              and a["file_name"].lower().endswith(".png") for a in head)


def default_png_dir(json_path: Path) -> list[Path]:
    """Where the PNGs of a panoptic JSON usually are: ``<json without .json>/`` (panopticapi), then
    ``<root>/panoptic/<split>/`` (segval's export, ``annotations/panoptic_<split>.json``)."""
    out = [json_path.with_suffix("")]
    stem = json_path.stem
    if stem.startswith("panoptic_") and json_path.parent.name == "annotations":
        out.append(json_path.parent.parent / "panoptic" / stem[len("panoptic_"):])
    return out


def _categories(raw: Any, path: Path, f: Findings) -> list[dict[str, Any]]:
    if not isinstance(raw, list) or not raw:
        f.problem("a COCO panoptic file needs a non-empty 'categories' list ({id, name, isthing})", path=path)
        return []
    cats = []
    for k, c in enumerate(raw):
        if not isinstance(c, Mapping) or "id" not in c or "name" not in c:
            f.problem(f"category entry {k} needs 'id' and 'name', got {c!r}", path=path)
            continue
        try:
            cid = coerce_int(c["id"])
            isthing = coerce_bool(c.get("isthing", 1))
            color = parse_color(c.get("color"))
        except ValueError as err:
            f.problem(f"category {c.get('name')!r}: {err}", path=path)
            continue
        if isinstance(c.get("isthing"), str):
            f.warn("isthing_str", "categories with 'isthing' as a string, read as a boolean", str(cid))
        if "isthing" not in c:
            f.warn("isthing_missing", "categories without 'isthing', taken as things", str(cid))
        e = {"id": cid, "name": str(c["name"]), "isthing": int(isthing)}
        if color is not None:
            e["color"] = list(color)
        for key in ("supercategory", "group"):  # segval keeps the group (rigid / thin / ...) in supercategory
            if isinstance(c.get(key), str) and c[key]:
                e[key] = c[key]
        cats.append(e)
    return cats


def read_coco_panoptic(
    json_path: str | os.PathLike,
    png_dir: str | os.PathLike | None = None,
    images_dir: str | os.PathLike | None = None,
    *,
    split: str = "train",
    background: str | None = "none",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: Callable[[Any], Any] | None = None,
) -> ImportedDataset:
    """Parse and check a COCO panoptic export (see the module doc). Nothing is written.

    Args:
        json_path: the panoptic JSON.
        png_dir: folder of the panoptic PNGs (default: see :func:`default_png_dir`).
        images_dir: folder the images' ``file_name`` entries are relative to (default: the JSON's
            ``../images/<split>`` for segval's export layout, else ``../<split>`` e.g. ``val2017/``).
        split: split name for the package.
        background: ``"none"`` (uncovered = void), ``"auto"`` or a category name
            (:meth:`~segval.dataset.taxonomy.Taxonomy.from_coco_categories`).
        max_pixels: limit on width * height, checked from the headers before decoding.
        progress: wraps the per-image loop.

    Raises:
        DatasetError: listing every problem found.
    """
    json_path = Path(json_path)
    if not json_path.is_file():
        raise DatasetError("COCO panoptic JSON not found; check the path", path=json_path)
    data = load_json(json_path)
    if not is_coco_panoptic(data):
        from segval.dataset.coco_dialects import classify_coco

        kind = classify_coco(data)
        what = "a COCO instances file: read it with format=coco" if kind.kind == "instances" else kind.message
        raise DatasetError(f"not a COCO panoptic file (it needs 'images' and 'annotations' with 'segments_info' "
                           f"and a PNG 'file_name'); this is {what}", path=json_path)
    pngs = _pick_dir(png_dir, default_png_dir(json_path), "panoptic PNG folder", json_path)
    root = json_path.parent.parent if json_path.parent.name == "annotations" else json_path.parent
    stem = json_path.stem[len("panoptic_"):] if json_path.stem.startswith("panoptic_") else split
    imgs = _pick_dir(images_dir, [root / "images" / stem, root / stem, root / "images"], "image folder", json_path)

    f = Findings()
    cats = _categories(data.get("categories"), json_path, f)
    f.raise_if_any(json_path, "COCO panoptic file")
    tax = Taxonomy.from_coco_categories(cats, background, path=json_path)

    images: dict[int, Mapping[str, Any]] = {}
    for k, im in enumerate(data["images"]):
        try:
            iid = coerce_int(im.get("id")) if isinstance(im, Mapping) else None
            if iid is None:
                raise ValueError("not an object with an 'id'")
            coerce_int(im.get("width"))
            coerce_int(im.get("height"))
        except ValueError as err:
            f.problem(f"image entry {k}: {err}", path=json_path)
            continue
        if iid in images:
            f.problem("duplicate image id in 'images'", path=json_path, image_id=iid)
            continue
        images[iid] = im
    anns: dict[int, Mapping[str, Any]] = {}
    for k, a in enumerate(data["annotations"]):
        try:
            iid = coerce_int(a.get("image_id")) if isinstance(a, Mapping) else None
        except ValueError as err:
            f.problem(f"annotation entry {k}: image_id: {err}", path=json_path)
            continue
        if iid is None:
            f.problem(f"annotation entry {k} is not an object with an 'image_id'", path=json_path)
        elif iid not in images:
            f.problem(f"annotation entry {k} ({a.get('file_name')!r}) points at image id {iid}, which is not in "
                      "'images'", path=json_path)
        elif iid in anns:
            f.problem("two panoptic annotations for one image; merge them (one PNG per image)", path=json_path,
                      image_id=iid)
        else:
            anns[iid] = a
    out: list[ImportedImage] = []
    items = list(images.items())
    for iid, im in (progress(items) if progress else items):
        ann = anns.get(iid)
        if ann is None:
            f.skip("images without a panoptic annotation", f"image id {iid} ({im.get('file_name')!r})")
            continue
        try:
            out.append(_read_image(im, ann, iid, json_path, pngs, imgs, tax, max_pixels, f))
        except _Listed:
            continue
        except DatasetError as err:
            f.add(err)
    check_unique_names(f, split, out, json_path)
    f.raise_if_any(json_path, "COCO panoptic export")
    return ImportedDataset("coco_panoptic", str(json_path), tax, {split: out}, f.warnings(), f.skipped,
                           max_pixels=max_pixels, license=_license(data))


def _license(data: Mapping[str, Any]) -> str | None:
    lic = data.get("licenses")
    if isinstance(lic, list) and len(lic) == 1 and isinstance(lic[0], Mapping) and lic[0].get("name"):
        return str(lic[0]["name"])
    return None


def _pick_dir(given: Any, candidates: list[Path], what: str, source: Path) -> Path:
    if given is not None:
        p = Path(given)
        if not p.is_dir():
            raise DatasetError(f"{what} not found", path=p)
        return p
    for c in candidates:
        if c.is_dir():
            return c
    raise DatasetError(f"no {what} given and none found (looked at {', '.join(map(str, candidates))}); pass it",
                       path=source)


def _read_image(im: Mapping[str, Any], ann: Mapping[str, Any], iid: int, json_path: Path, pngs: Path, imgs: Path,
                tax: Taxonomy, max_pixels: int, f: Findings) -> ImportedImage:
    w, h = coerce_int(im["width"]), coerce_int(im["height"])
    fn = im.get("file_name")
    try:
        img_path = resolve_inside(imgs, fn, what="image file_name")
        png_path = resolve_inside(pngs, ann.get("file_name"), what="panoptic file_name")
    except ValueError as err:
        raise DatasetError(str(err), path=json_path, image_id=iid) from None
    if not img_path.is_file():
        raise DatasetError(f"image file {fn!r} not found in {imgs}; add it or pass the right images folder",
                           path=json_path, image_id=iid)
    iw, ih = probe_image(img_path, max_pixels=max_pixels)
    if (iw, ih) != (w, h):
        raise DatasetError(f"image file {fn!r} is {iw}x{ih} but the JSON says {w}x{h} (width x height)",
                           path=json_path, image_id=iid)
    if not png_path.is_file():
        raise DatasetError(f"panoptic PNG {ann.get('file_name')!r} not found in {pngs}", path=json_path, image_id=iid)
    png = read_png_array(png_path, max_pixels=max_pixels, width=w, height=h, what="panoptic PNG")
    with png:
        if png.mode not in ("RGB", "RGBA"):
            raise DatasetError(f"panoptic PNG must be RGB (id = R + 256 G + 256^2 B), got mode {png.mode}",
                               path=png_path, image_id=iid)
        rgb = np.asarray(png.convert("RGB") if png.mode != "RGB" else png).astype(np.int32)
    ids = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
    infos = ann.get("segments_info")
    where = f"{json_path}, image id {iid} ({png_path.name})"
    listed: dict[int, tuple[int, bool]] = {}
    for j, s in enumerate(infos if isinstance(infos, list) else []):
        try:
            sid = coerce_int(s.get("id")) if isinstance(s, Mapping) else None
            if sid is None:
                raise ValueError("not an object with an 'id'")
            cat = coerce_int(s.get("category_id"))
            crowd = coerce_bool(s.get("iscrowd", 0) if s.get("iscrowd") is not None else 0)
        except ValueError as err:
            f.problem(f"{where}: segments_info entry {j}: {err}")
            continue
        if sid <= 0:
            f.problem(f"{where}: segment id {sid} is not a segment (0 is void); give it an id > 0")
        elif sid in listed:
            f.problem(f"{where}: segment id {sid} is listed twice in segments_info")
        elif cat not in tax:
            f.problem(f"{where}: segment {sid} has category_id {cat}, which is not in 'categories' "
                      f"(ids {tax.ids})")
        else:
            listed[sid] = (cat, crowd)
    masks: dict[int, np.ndarray] = {}
    listed_px = np.zeros((h, w), dtype=bool)
    for sid in listed:
        m = ids == sid
        masks[sid] = m
        listed_px |= m
    absent = sorted(sid for sid, m in masks.items() if not m.any())
    stray = ~listed_px & (ids != 0)
    missing = sorted(np.unique(ids[stray]).tolist()) if stray.any() else []
    if missing:
        f.problem(f"{where}: segment ids {missing[:10]}{' ...' if len(missing) > 10 else ''} are in the PNG but not in "
                  "its segments_info (panopticapi refuses this too); list them or paint them void (0)")
    if absent:
        f.problem(f"{where}: segments {absent[:10]} of segments_info have no pixel in the PNG; remove them")
    if missing or absent:
        raise _Listed()
    instances = []
    ignore = ids == 0  # void
    for sid, m in masks.items():
        cat, crowd = listed[sid]
        if crowd:
            ignore |= m
            f.warn("crowd", "crowd segments (iscrowd=1) read as ignore regions, as panopticapi does",
                   f"image {iid} segment {sid}")
            continue
        if cat == tax.background_id:
            continue  # the background class: uncovered pixels are background in the package
        # things: one instance per segment; stuff: an annotation of the class (one segment per class and image)
        instances.append(ImportedInstance(cat, from_mask(m), 0, origin=f"image id {iid} segment {sid}"))
    return ImportedImage(package_file_name(str(fn)), w, h, path=img_path, instances=instances,
                         ignore=from_mask(ignore) if ignore.any() else None,
                         extra={"source_image_id": iid}, origin=f"image id {iid} ({fn})")


class _Listed(Exception):
    """An image whose problems are already in the Findings (raised to skip building it)."""
