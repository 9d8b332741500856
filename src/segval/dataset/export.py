"""Export a dataset package, and import COCO exports / label-map folders back into packages.

Export formats (all written atomically into a new ``output`` folder, refusing to overwrite):

* ``coco``: ``annotations/<split>.json`` (COCO, every segmentation re-encoded as compressed RLE
  with ``bbox``, ``area`` = mask pixels, ``iscrowd``; image and annotation ids renumbered 1..n
  in split order / file order, which is the order :class:`PackageWriter` gives them, so
  export -> import -> export is byte-stable) + ``images/<split>/`` (files copied byte for byte).
* ``label_maps``: ``label_maps/<split>/<file stem>.png`` (uint8 category ids, 255 = void, the
  rasterisation rule of :mod:`segval.dataset.semantic`) + ``images/<split>/``.
* ``panoptic``: COCO panoptic (panopticapi format): ``panoptic/<split>/<file stem>.png`` RGB with
  segment id = R + 256 G + 256^2 B (0 = void) and ``annotations/panoptic_<split>.json`` with
  ``segments_info`` (id, category_id, area, bbox, iscrowd) and ``categories`` (isthing), exactly
  the panopticapi keys (pycocotools' ``COCO()`` indexes its images and categories; like any
  panoptic file its annotations are per image, not per segment). Things
  give one segment per instance (pixels visible after the painting rule; fully hidden instances
  are dropped), stuff classes one segment per category and image (background included).

Every format also writes ``export.yaml`` (name, version, splits, format, taxonomy), which
:func:`import_coco_export` / :func:`import_label_maps` use to restore the package exactly.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import yaml
from PIL import Image

from segval.dataset.coco import load_json
from segval.dataset.package import DatasetPackage
from segval.dataset.rle import encode_coco_rle
from segval.dataset.semantic import paint_order, rasterize_semantic
from segval.dataset.taxonomy import GROUPS, Taxonomy
from segval.dataset.writer import InstanceMask, PackageWriter
from segval.errors import ConfigError, DatasetError
from segval.dataset.images import open_image
from segval.io import atomic_dir

FORMATS = ("coco", "label_maps", "panoptic")
_RESERVED = ("id", "file_name", "width", "height")


def _dump(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, separators=(",", ":"))


def _write_manifest(tmp: Path, pkg: DatasetPackage, splits: Sequence[str], fmt: str) -> None:
    meta = {"name": pkg.name, "version": pkg.version, "license": pkg.license or None, "format": fmt,
            "splits": list(splits)}
    meta.update(pkg.taxonomy.to_dict())
    with open(tmp / "export.yaml", "w", encoding="utf-8") as f:
        yaml.safe_dump(meta, f, sort_keys=False, default_flow_style=None, allow_unicode=True)


def _copy_image(split_data: Any, rec: Any, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    src = split_data.image_path(rec)
    split_data.check_image_header(rec)
    shutil.copyfile(src, dst)


def export_package(
    pkg: DatasetPackage,
    output: str | os.PathLike,
    fmt: str,
    *,
    splits: Sequence[str] | None = None,
    overwrite: bool = False,
    progress: Callable[[Any], Any] | None = None,
) -> dict[str, Any]:
    """Export ``pkg`` to ``output`` in format ``fmt`` (see the module doc).

    Returns:
        ``{"format", "output", "splits", "images", "annotations"}``.

    Raises:
        ConfigError: unknown format or split. DatasetError: bad data (named); nothing is left behind.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"export format must be one of {list(FORMATS)}, got {fmt!r}")
    splits = list(splits) if splits else list(pkg.splits)
    for s in splits:
        if s not in pkg.splits:
            raise ConfigError(f"split {s!r} is not in the package (splits: {list(pkg.splits)})")
    tax = pkg.taxonomy
    n_img = n_ann = 0
    try:
        ctx = atomic_dir(output, overwrite=overwrite)
        tmp = ctx.__enter__()
    except FileExistsError:
        raise DatasetError("the export folder already exists; choose another or delete it", path=output) from None
    try:
        next_img, next_ann = 1, 1
        for s in splits:
            sd = pkg.split(s)
            images, anns, pan_anns = [], [], []
            raw_by_id = {im.get("id"): im for im in _raw_images(sd)}
            recs = progress(sd.images) if progress else sd.images
            for rec in recs:
                _copy_image(sd, rec, tmp / "images" / s / rec.file_name)
                entry = {"id": next_img, "file_name": rec.file_name, "width": rec.width, "height": rec.height}
                raw = raw_by_id.get(rec.id)
                if raw:
                    entry.update({k: v for k, v in raw.items() if k not in _RESERVED})
                images.append(entry)
                insts = sd.instances(rec)
                stem = PurePosixPath(rec.file_name).with_suffix(".png").as_posix()
                if fmt == "coco":
                    for inst in insts:
                        rle, area, bbox = encode_coco_rle(inst.mask)
                        anns.append({"id": next_ann, "image_id": next_img, "category_id": inst.category_id,
                                     "segmentation": rle, "area": area, "bbox": bbox, "iscrowd": inst.iscrowd})
                        next_ann += 1
                elif fmt == "label_maps":
                    items = [(i.category_id, i.mask, int(i.mask.sum()), i.annotation_id) for i in insts]
                    lm = rasterize_semantic(rec.height, rec.width, items, tax.background_id)
                    path = tmp / "label_maps" / s / stem
                    path.parent.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(lm).save(path, compress_level=6)
                    next_ann += len(insts)
                else:
                    png, segments = panoptic_image(rec.height, rec.width, insts, tax)
                    path = tmp / "panoptic" / s / stem
                    path.parent.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(png).save(path, compress_level=6)
                    pan_anns.append({"image_id": next_img, "file_name": stem, "segments_info": segments})
                    next_ann += len(segments)
                next_img += 1
            n_img += len(images)
            cats = tax.coco_categories()
            info = {"description": pkg.name, "version": pkg.version}
            if fmt == "coco":
                _dump(tmp / "annotations" / f"{s}.json",
                      {"info": info, "images": images, "annotations": anns, "categories": cats})
            elif fmt == "panoptic":
                _dump(tmp / "annotations" / f"panoptic_{s}.json",
                      {"info": info, "licenses": [], "images": images, "annotations": pan_anns, "categories": cats})
            n_ann += len(anns) + sum(len(a["segments_info"]) for a in pan_anns)
            (tmp / "images" / s).mkdir(parents=True, exist_ok=True)
        if fmt == "label_maps":
            with open(tmp / "taxonomy.yaml", "w", encoding="utf-8") as f:
                yaml.safe_dump(tax.to_dict(), f, sort_keys=False, default_flow_style=None, allow_unicode=True)
        _write_manifest(tmp, pkg, splits, fmt)
    except BaseException as err:
        ctx.__exit__(type(err), err, err.__traceback__)
        raise
    ctx.__exit__(None, None, None)
    return {"format": fmt, "output": str(output), "splits": splits, "images": n_img, "annotations": n_ann}


def _raw_images(sd: Any) -> list[dict[str, Any]]:
    """The image entries of a split's COCO file (for extra keys such as video_id)."""
    coco = load_json(sd.annotation_path)
    return [im for im in (coco.get("images") or []) if isinstance(im, dict)] if isinstance(coco, dict) else []


def panoptic_image(height: int, width: int, insts: Sequence[Any], tax: Taxonomy) -> tuple[np.ndarray, list[dict]]:
    """Panoptic PNG (uint8[H, W, 3], id = R + 256 G + 256^2 B) and ``segments_info`` of one image."""
    seg = np.zeros((height, width), dtype=np.int64)  # 0 = void
    owner = np.full((height, width), -1, dtype=np.int64)  # index of the painted instance
    areas = [int(i.mask.sum()) for i in insts]
    for k in paint_order(areas, [i.annotation_id for i in insts]):
        owner[insts[k].mask] = k
    segments: list[dict[str, Any]] = []
    next_id = 1
    stuff_ids: dict[int, int] = {}
    bg = tax.background_id
    if bg is not None and (owner < 0).any():
        stuff_ids[bg] = next_id
        seg[owner < 0] = next_id
        segments.append({"id": next_id, "category_id": bg, "iscrowd": 0, "_mask": owner < 0})
        next_id += 1
    for k, inst in enumerate(insts):
        vis = owner == k
        if not vis.any():
            continue
        if tax.category(inst.category_id).isthing:
            seg[vis] = next_id
            segments.append({"id": next_id, "category_id": inst.category_id, "iscrowd": inst.iscrowd, "_mask": vis})
            next_id += 1
        else:  # stuff: one segment per category
            sid = stuff_ids.get(inst.category_id)
            if sid is None:
                sid = stuff_ids[inst.category_id] = next_id
                segments.append({"id": sid, "category_id": inst.category_id, "iscrowd": 0, "_mask": vis})
                next_id += 1
            else:
                s = next(x for x in segments if x["id"] == sid)
                s["_mask"] = s["_mask"] | vis
            seg[vis] = sid
    out = []
    for s in sorted(segments, key=lambda x: x["id"]):
        m = s.pop("_mask")
        ys, xs = np.nonzero(m)
        bbox = [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]
        out.append({"id": s["id"], "category_id": s["category_id"], "area": int(m.sum()), "bbox": bbox,
                    "iscrowd": int(s["iscrowd"])})
    png = np.stack([seg % 256, (seg // 256) % 256, seg // 65536], axis=-1).astype(np.uint8)
    return png, out


# ---------------------------------------------------------------------- import
def _read_manifest(folder: Path) -> dict[str, Any] | None:
    path = folder / "export.yaml"
    if not path.is_file():
        return None
    meta = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(meta, dict):
        raise DatasetError("export.yaml must be a mapping", path=path)
    return meta


def _coco_taxonomy(coco: dict[str, Any], background: str | None, path: Path) -> Taxonomy:
    cats = []
    for c in coco.get("categories") or []:
        c = dict(c) if isinstance(c, dict) else c
        if isinstance(c, dict) and "group" not in c and c.get("supercategory") in GROUPS:
            c["group"] = c["supercategory"]
        cats.append(c)
    return Taxonomy.from_coco_categories(cats, background, path=path)


def import_coco_export(
    source: str | os.PathLike,
    output: str | os.PathLike,
    *,
    name: str | None,
    version: str | None,
    images: str | os.PathLike | None = None,
    split: str = "train",
    background: str | None = "auto",
    license: str | None = None,  # noqa: A002 - the dataset.yaml key
    progress: Callable[[Any], Any] | None = None,
) -> dict[str, Any]:
    """COCO (RLE or polygons) -> package.

    ``license`` goes to dataset.yaml (default: the export manifest's, else ``unknown``).

    ``source`` is a COCO JSON file (then ``images`` is the folder its ``file_name`` entries are
    relative to, and ``split`` names the split), or a folder written by ``export`` with
    format ``coco`` (``annotations/<split>.json`` + ``images/<split>/`` + ``export.yaml``).
    """
    source = Path(source)
    manifest = None
    if source.is_dir():
        manifest = _read_manifest(source)
        ann_dir = source / "annotations"
        if manifest is not None:
            split_names = list(manifest["splits"])
        else:
            split_names = sorted(p.stem for p in ann_dir.glob("*.json"))
        if not split_names:
            raise DatasetError("no annotations/<split>.json found; pass a COCO JSON file or a coco export", path=source)
        jobs = [(s, ann_dir / f"{s}.json", source / "images" / s) for s in split_names]
    else:
        if images is None:
            raise ConfigError("importing a COCO file needs `images`: the folder its file_name entries are relative to")
        jobs = [(split, source, Path(images))]
    pkgs = []
    for s, ann, img in jobs:
        if not ann.is_file():
            raise DatasetError(f"annotation file of split {s!r} not found", path=ann)
        pkgs.append((s, DatasetPackage.from_coco(ann, img, split=s, background=background)))
    if manifest is not None:
        tax = Taxonomy.from_dict(manifest, path=source / "export.yaml")
    else:
        tax = _coco_taxonomy(load_json(jobs[0][1]), background, jobs[0][1])
    name = name or (manifest or {}).get("name") or pkgs[0][1].name
    version = version or (manifest or {}).get("version") or pkgs[0][1].version
    if version == "0.0.0" or not version:
        version = "1.0.0"
    return _write_from_splits(output, [(s, p.split(s)) for s, p in pkgs], tax, str(name), str(version), progress,
                              _license(license, manifest))


def _license(given: str | None, manifest: dict[str, Any] | None) -> str:
    from segval.dataset.formats.result import UNKNOWN_LICENSE

    return str(given or (manifest or {}).get("license") or UNKNOWN_LICENSE)


def _write_from_splits(output, splits, tax, name, version, progress, license) -> dict[str, Any]:  # noqa: A002
    n_img = n_ann = 0
    with PackageWriter(output, name=name, version=version, taxonomy=tax, splits=[s for s, _ in splits],
                       license=license) as w:
        for s, sd in splits:
            raw = {im.get("id"): im for im in _raw_images(sd)}
            recs = progress(sd.images) if progress else sd.images
            for rec in recs:
                insts = [InstanceMask(i.category_id, i.mask, i.iscrowd) for i in sd.instances(rec) if i.mask.any()]
                extra = {k: v for k, v in (raw.get(rec.id) or {}).items() if k not in _RESERVED}
                try:
                    w.add_image(s, sd.read_image(rec), rec.file_name, instances=insts, extra=extra)
                except ValueError as err:
                    raise DatasetError(str(err), path=sd.annotation_path, image_id=rec.id) from None
                n_img += 1
                n_ann += len(insts)
    return {"output": str(output), "splits": [s for s, _ in splits], "images": n_img, "annotations": n_ann,
            "license": license}


def import_label_maps(
    source: str | os.PathLike,
    output: str | os.PathLike,
    *,
    name: str | None,
    version: str | None,
    images: str | os.PathLike | None = None,
    taxonomy: str | os.PathLike | None = None,
    split: str = "train",
    license: str | None = None,  # noqa: A002 - the dataset.yaml key
    progress: Callable[[Any], Any] | None = None,
) -> dict[str, Any]:
    """uint8 label maps (category ids, 255 = void) + taxonomy -> package.

    ``license`` goes to dataset.yaml (default: the export manifest's, else ``unknown``).

    ``source`` is a folder written by ``export`` with format ``label_maps`` (``label_maps/<split>/``,
    ``images/<split>/``, ``taxonomy.yaml``), or a folder of label-map PNGs (then ``images`` is the
    image folder, matched by relative path without extension, and ``taxonomy`` a YAML file with
    ``taxonomy: [...]`` and ``background_id``). Label maps carry no instances: each class present
    in an image becomes one instance. Where a map holds void (255), the package gets no
    background id (unannotated = void) and background pixels become a stuff annotation, so the
    void survives the round trip.
    """
    source = Path(source)
    manifest = _read_manifest(source) if source.is_dir() else None
    if manifest is not None:
        jobs = [(s, source / "label_maps" / s, source / "images" / s) for s in manifest["splits"]]
        tax = Taxonomy.from_dict(manifest, path=source / "export.yaml")
    else:
        if images is None or taxonomy is None:
            raise ConfigError("importing label maps needs `images` (image folder) and `taxonomy` (YAML file)")
        tpath = Path(taxonomy)
        if not tpath.is_file():
            raise DatasetError("taxonomy file not found", path=tpath)
        tax = Taxonomy.from_dict(yaml.safe_load(tpath.read_text(encoding="utf-8")), path=tpath)
        jobs = [(split, source, Path(images))]
    items = []  # (split, file_name, lm path, image path)
    for s, lm_dir, img_dir in jobs:
        if not lm_dir.is_dir():
            raise DatasetError("label-map folder not found", path=lm_dir)
        for lm in sorted(lm_dir.rglob("*.png"), key=lambda p: p.relative_to(lm_dir).as_posix()):
            rel = lm.relative_to(lm_dir).with_suffix("")
            cands = [img_dir / rel.with_suffix(e) for e in (".png", ".jpg", ".jpeg")]
            img = next((c for c in cands if c.is_file()), None)
            if img is None:
                raise DatasetError(f"no image for this label map in {img_dir} (looked for {rel}.png/.jpg)", path=lm)
            items.append((s, img.relative_to(img_dir).as_posix(), lm, img))
    maps = {}
    has_void = False
    valid = set(tax.ids) | {255}
    for s, fn, lm, img in items:
        with open_image(lm, what="label map") as im:  # pixel limit checked before decoding
            a = np.asarray(im)
        if a.ndim != 2 or a.dtype != np.uint8:
            raise DatasetError(f"a label map must be single-channel uint8, got {a.dtype}{list(a.shape)}", path=lm)
        bad = sorted(set(np.unique(a).tolist()) - valid)
        if bad:
            raise DatasetError(f"values {bad} are no category id of the taxonomy nor 255", path=lm)
        has_void |= bool((a == 255).any())
        maps[lm] = a
    if has_void and tax.background_id is not None:
        tax = Taxonomy(tax.categories, None)
    name = name or (manifest or {}).get("name") or source.resolve().name
    version = version or (manifest or {}).get("version") or "1.0.0"
    n_img = n_ann = 0
    split_names = list(dict.fromkeys(s for s, _, _ in jobs))
    lic = _license(license, manifest)
    with PackageWriter(output, name=str(name), version=str(version), taxonomy=tax, splits=split_names,
                       license=lic) as w:
        it = progress(items) if progress else items
        for s, fn, lm, img_path in it:
            a = maps[lm]
            with open_image(img_path) as im:
                rgb = np.asarray(im.convert("RGB"))
            if rgb.shape[:2] != a.shape:
                raise DatasetError(f"label map size {a.shape} != image size {rgb.shape[:2]} ({img_path})", path=lm)
            insts = [InstanceMask(int(c), a == c) for c in np.unique(a) if c != 255 and c != tax.background_id]
            try:
                w.add_image(s, rgb, fn, instances=insts)
            except ValueError as err:
                raise DatasetError(str(err), path=lm) from None
            n_img += 1
            n_ann += len(insts)
    return {"output": str(output), "splits": split_names, "images": n_img, "annotations": n_ann,
            "void_kept": has_void, "license": lic}
