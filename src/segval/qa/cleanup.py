"""Mask clean-up for `segval dataset clean`: morphology, small components, edge-aware refinement.

All functions take and return ``bool[H, W]`` instance masks, are pure (inputs are not modified)
and deterministic.

1. :func:`open_close` — a 3x3 opening (removes spurs / specks thinner than 3 px) followed by a
   3x3 closing (fills holes / notches thinner than 3 px), each ``iterations`` times. Pixels
   outside the image count as "not touching" (the image border neither erodes nor grows a mask).
2. :func:`refine_edges` — a joint-bilateral vote guided by the RGB image: each pixel in a band of
   ``band`` px around the mask boundary takes the label held by the (spatially near, colour
   similar) pixels of its ``(2 radius + 1)^2`` window, weighted
   ``exp(-|d|^2 / 2 sigma_s^2) * exp(-|I(p) - I(q)|^2 / 2 sigma_r^2)`` (colours in [0, 1]).
   Vote > 0.5: inside, < 0.5: outside, exactly 0.5: unchanged; repeated up to ``iterations``
   times (until stable). Pixels outside the band of the input mask never change, so a boundary is only moved onto a nearby image edge.
   (``cv2.ximgproc`` is not in opencv-python-headless, so the filter is written here.)
3. :func:`remove_small_components` — drops 8-connected components under ``min_pixels``; the
   largest component (ties: the first in row-major order) is always kept.

:func:`clean_mask` runs the enabled steps in this order (morphology, refinement, components);
:func:`clean_package` cleans every instance of a package into a new version of it.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from segval.dataset.rle import encode_coco_rle
from segval.io import shipped_defaults

__all__ = ["CleanParams", "clean_mask", "clean_package", "open_close", "refine_edges", "remove_small_components"]

_KERNEL3 = np.ones((3, 3), np.uint8)


def _as_u8(mask: np.ndarray) -> np.ndarray:
    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {m.shape}")
    return m.astype(np.uint8, copy=True)


def open_close(mask: np.ndarray, *, iterations: int = 1, do_open: bool = True, do_close: bool = True) -> np.ndarray:
    """3x3 morphological opening then closing, each repeated ``iterations`` times.

    Returns:
        bool[H, W].

    >>> m = np.zeros((9, 9), bool); m[1:8, 1:8] = True; m[4, 4] = False; m[4, 8] = True
    >>> open_close(m).astype(int)[4].tolist()
    [0, 1, 1, 1, 1, 1, 1, 1, 0]
    """
    if iterations < 0:
        raise ValueError(f"iterations must be >= 0, got {iterations}")
    m = _as_u8(mask)
    if iterations == 0:
        return m.astype(bool)
    # pad so the border behaves as "outside the image" for both operations: pad with the
    # replicated edge, i.e. the image border neither erodes nor dilates the mask
    p = iterations + 1
    m = cv2.copyMakeBorder(m, p, p, p, p, cv2.BORDER_REPLICATE)
    if do_open:
        m = cv2.dilate(cv2.erode(m, _KERNEL3, iterations=iterations, borderType=cv2.BORDER_REPLICATE),
                       _KERNEL3, iterations=iterations, borderType=cv2.BORDER_REPLICATE)
    if do_close:
        m = cv2.erode(cv2.dilate(m, _KERNEL3, iterations=iterations, borderType=cv2.BORDER_REPLICATE),
                      _KERNEL3, iterations=iterations, borderType=cv2.BORDER_REPLICATE)
    return m[p:-p, p:-p].astype(bool)


def remove_small_components(mask: np.ndarray, min_pixels: int) -> np.ndarray:
    """Drop 8-connected components with fewer than ``min_pixels`` pixels; keep the largest always.

    >>> m = np.zeros((4, 6), bool); m[0, 0] = True; m[2:4, 3:6] = True
    >>> remove_small_components(m, 2).astype(int).tolist()
    [[0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0], [0, 0, 0, 1, 1, 1], [0, 0, 0, 1, 1, 1]]
    """
    m = _as_u8(mask)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    if n <= 2:  # background + at most one component
        return m.astype(bool)
    areas = stats[1:, cv2.CC_STAT_AREA]
    # connectedComponents numbers components in row-major order of their first pixel: argmax takes the first
    largest = int(np.argmax(areas)) + 1
    keep = np.zeros(n, bool)
    keep[1:] = areas >= int(min_pixels)
    keep[largest] = True
    return keep[labels]


def _band(mask_u8: np.ndarray, width: int) -> np.ndarray:
    k = np.ones((2 * width + 1, 2 * width + 1), np.uint8)
    grown = cv2.dilate(mask_u8, k, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    shrunk = cv2.erode(mask_u8, k, borderType=cv2.BORDER_REPLICATE)
    return (grown != shrunk)


def refine_edges(
    mask: np.ndarray,
    image: np.ndarray,
    *,
    radius: int = 4,
    band: int = 3,
    sigma_spatial: float = 4.0,
    sigma_color: float = 0.1,
    iterations: int = 3,
) -> np.ndarray:
    """Edge-aware refinement of a binary mask by a joint-bilateral vote guided by ``image``.

    Args:
        mask: bool[H, W].
        image: uint8[H, W, 3] RGB (or uint8[H, W] grey) of the same size.
        radius: the vote window is ``(2 radius + 1)^2``.
        band: only pixels within ``band`` px (chessboard distance) of the boundary may change.
        sigma_spatial: spatial Gaussian sigma in px (<= 0: uniform weights).
        sigma_color: colour sigma, colours scaled to [0, 1].
        iterations: vote rounds (stops early when nothing changes); later rounds let a corner
            follow once its two sides have moved. The band stays that of the input mask.

    Returns:
        bool[H, W].
    """
    m = _as_u8(mask)
    img = np.asarray(image)
    if img.shape[:2] != m.shape:
        raise ValueError(f"image size {img.shape[:2]} != mask size {m.shape}")
    if radius < 1 or band < 1 or iterations < 1 or sigma_color <= 0:
        raise ValueError("radius, band and iterations must be >= 1 and sigma_color > 0")
    if not m.any():
        return m.astype(bool)
    region = _band(m, band)
    ys, xs = np.nonzero(region)
    if len(ys) == 0:
        return m.astype(bool)
    h, w = m.shape
    # crop to the band (plus the window) so the cost follows the instance size, not the image size
    y0, y1 = max(int(ys.min()) - radius, 0), min(int(ys.max()) + radius + 1, h)
    x0, x1 = max(int(xs.min()) - radius, 0), min(int(xs.max()) + radius + 1, w)
    guide = img[y0:y1, x0:x1].astype(np.float32) / 255.0
    if guide.ndim == 2:
        guide = guide[..., None]
    lab = m[y0:y1, x0:x1].astype(bool)
    band_crop = region[y0:y1, x0:x1]
    ch, cw = lab.shape
    r = radius
    gp = np.pad(guide, ((r, r), (r, r), (0, 0)), mode="edge")
    valid = np.pad(np.ones((ch, cw), np.float32), r)  # pixels outside the image do not vote
    inv_c = 1.0 / (2.0 * sigma_color**2)
    inv_s = 0.0 if sigma_spatial <= 0 else 1.0 / (2.0 * sigma_spatial**2)
    for _ in range(iterations):
        lp = np.pad(lab.astype(np.float64), r)
        num = np.zeros((ch, cw), np.float64)
        den = np.zeros((ch, cw), np.float64)
        for dy in range(-r, r + 1):
            for dx in range(-r, r + 1):
                sl = (slice(r + dy, r + dy + ch), slice(r + dx, r + dx + cw))
                diff = ((gp[sl] - guide) ** 2).sum(axis=2, dtype=np.float64)
                wgt = np.exp(-(diff * inv_c) - (dy * dy + dx * dx) * inv_s) * valid[sl]
                num += wgt * lp[sl]
                den += wgt
        vote = num / np.maximum(den, 1e-300)
        new = lab.copy()
        new[vote > 0.5] = True
        new[vote < 0.5] = False
        new = np.where(band_crop, new, lab)  # only the band around the ORIGINAL boundary may change
        if np.array_equal(new, lab):
            break
        lab = new
    out = m.astype(bool)
    out[y0:y1, x0:x1] = lab
    return out


#: the defaults of CleanParams: conf/dataset_clean.yaml's steps: block
_STEPS = shipped_defaults("dataset_clean", "steps")


@dataclass(frozen=True)
class CleanParams:
    """Which steps run and their parameters; the defaults are ``conf/dataset_clean.yaml``'s ``steps:`` block."""

    morphology: bool = _STEPS["morphology"]["enabled"]
    morph_iterations: int = _STEPS["morphology"]["iterations"]
    morph_open: bool = _STEPS["morphology"]["open"]
    morph_close: bool = _STEPS["morphology"]["close"]
    refine: bool = _STEPS["refine"]["enabled"]
    refine_radius: int = _STEPS["refine"]["radius"]
    refine_band: int = _STEPS["refine"]["band"]
    refine_sigma_spatial: float = _STEPS["refine"]["sigma_spatial"]
    refine_sigma_color: float = _STEPS["refine"]["sigma_color"]
    refine_iterations: int = _STEPS["refine"]["iterations"]
    components: bool = _STEPS["components"]["enabled"]
    min_pixels: int = _STEPS["components"]["min_pixels"]


def clean_mask(mask: np.ndarray, image: np.ndarray | None, params: CleanParams) -> np.ndarray:
    """Run the enabled steps (morphology, refinement, small components) on one instance mask."""
    out = np.asarray(mask).astype(bool)
    if params.morphology:
        out = open_close(out, iterations=params.morph_iterations, do_open=params.morph_open,
                         do_close=params.morph_close)
    if params.refine and out.any():
        if image is None:
            raise ValueError("refinement needs the image")
        out = refine_edges(out, image, radius=params.refine_radius, band=params.refine_band,
                           sigma_spatial=params.refine_sigma_spatial, sigma_color=params.refine_sigma_color,
                           iterations=params.refine_iterations)
    if params.components and out.any():
        out = remove_small_components(out, params.min_pixels)
    return out


# ---------------------------------------------------------------------------------------- a package
def clean_package(
    root: str | os.PathLike,
    output: str | os.PathLike,
    *,
    version: str,
    params: Mapping[int, CleanParams],
    skip_crowd: bool,
    steps_text: str,
    steps: Mapping[str, Any] | None = None,
    progress: Callable[[Iterable[Any], str], Iterable[Any]] = lambda it, desc: it,
) -> dict[str, Any]:
    """Clean every instance mask of the package at ``root`` into a new package ``output`` as ``version``.

    Image and annotation ids are kept; an annotation that becomes empty is deprecated (listed under
    ``deprecated_annotations`` of its split's COCO file with its data, its id under dataset.yaml
    ``deprecated``); label maps of changed images are regenerated; a CHANGELOG entry says what changed.

    Args:
        params: the steps per category id. ``steps_text`` / ``steps`` describe them in the CHANGELOG / the result.
        skip_crowd: leave crowd annotations as they are.

    Returns:
        The changes: per split the changed annotations (pixels added / removed) and deprecated ids, totals,
        pixels changed per class, and source / output with their content hashes.
    """
    from segval.dataset.package import DatasetPackage
    from segval.dataset.versioning import write_version_copy
    from segval.io import atomic_dir

    root, output = Path(root), Path(output)
    pkg = DatasetPackage.open(root)
    tax = pkg.taxonomy
    cleaner = _PackageCleaner(root, tax, params, version, skip_crowd)
    changes: dict[str, Any] = {"splits": {}}
    new_coco: dict[str, dict] = {}
    new_label_maps: dict[str, dict[Path, np.ndarray]] = {}
    for s in pkg.splits:
        split = pkg.split(s)
        coco, label_maps, changed, deprecated = cleaner.clean_split(split, progress(split.images, f"clean {s}"))
        if changed:
            new_coco[s], new_label_maps[s] = coco, label_maps
        changes["splits"][s] = {"annotations": split.num_annotations, "changed": changed, "deprecated_ids": deprecated}
    deprecated_all = [i for c in changes["splits"].values() for i in c["deprecated_ids"]]
    total_changed = sum(len(c["changed"]) for c in changes["splits"].values())
    per_class = {n: {"pixels_added": cleaner.added[n], "pixels_removed": cleaner.removed[n]}
                 for n in sorted(set(cleaner.added) | set(cleaner.removed), key=tax.names.index)}
    entry_text = _changelog_entry(version, pkg.version, steps_text, changes, cleaner.annotations, per_class,
                                  deprecated_all)

    with atomic_dir(output) as tmp:
        # ids are never deleted: the emptied annotations are recorded where `segval dataset release` / `diff` look
        write_version_copy(root, tmp, version=version, annotations=new_coco, label_maps=new_label_maps,
                           deprecated={s: c["deprecated_ids"] for s, c in changes["splits"].items()},
                           changelog=entry_text)
        new_hash = DatasetPackage.open(tmp).content_hash()  # the written package opens

    changes.update({
        "source": {"root": str(root), "name": pkg.name, "version": pkg.version, "content_hash": pkg.content_hash()},
        "output": {"root": str(output), "version": version, "content_hash": new_hash},
        "steps": steps, "skip_crowd": skip_crowd,
        "annotations": cleaner.annotations, "annotations_changed": total_changed,
        "pixels_changed_per_class": per_class, "deprecated_ids": deprecated_all,
    })
    return changes


class _PackageCleaner:
    """Cleans the splits of one package: the new COCO document and label maps of each, and pixel counts."""

    def __init__(self, root: Path, tax: Any, params: Mapping[int, CleanParams], version: str,
                 skip_crowd: bool) -> None:
        self.root, self.tax, self.params, self.version, self.skip_crowd = root, tax, params, version, skip_crowd
        self.needs_image = any(p.refine for p in params.values())
        #: class name -> pixels added / removed over every split
        self.added: dict[str, int] = defaultdict(int)
        self.removed: dict[str, int] = defaultdict(int)
        self.annotations = 0

    def clean_split(self, split: Any, records: Iterable[Any]
                    ) -> tuple[dict[str, Any], dict[Path, np.ndarray], list[dict[str, Any]], list[int]]:
        """(COCO document, label maps of changed images, changed annotations, deprecated ids) of ``split``."""
        from segval.dataset.coco import load_json
        from segval.dataset.semantic import rasterize_semantic

        coco = load_json(split.annotation_path)
        pos = {int(a["id"]): i for i, a in enumerate(coco["annotations"])}
        changed: list[dict[str, Any]] = []
        deprecated: list[int] = []
        label_maps: dict[Path, np.ndarray] = {}
        for rec in records:
            insts = split.instances(rec)
            self.annotations += len(insts)
            image = split.read_image(rec) if self.needs_image and insts else None
            final: list[tuple[int, np.ndarray, int]] = []  # (category id, mask, ann id) after cleaning
            image_changed = False
            for inst in insts:
                new = self._clean(inst, image)
                if new is None:
                    final.append((inst.category_id, inst.mask, inst.annotation_id))
                    continue
                image_changed = True
                entry = self._record(inst, new, rec)
                ann = dict(coco["annotations"][pos[inst.annotation_id]])
                if not new.any():
                    deprecated.append(inst.annotation_id)
                    entry["deprecated"] = True
                    ann["deprecated_in"] = self.version
                    ann["deprecated_reason"] = "empty after `segval dataset clean`"
                    coco.setdefault("deprecated_annotations", []).append(ann)
                    coco["annotations"][pos[inst.annotation_id]] = None
                else:
                    ann["segmentation"], ann["area"], ann["bbox"] = encode_coco_rle(new)
                    coco["annotations"][pos[inst.annotation_id]] = ann
                    final.append((inst.category_id, new, inst.annotation_id))
                changed.append(entry)
            if image_changed and split.has_label_maps:
                rel = split.label_map_path(rec).relative_to(self.root)
                label_maps[rel] = rasterize_semantic(
                    rec.height, rec.width, [(c, m, int(m.sum()), a) for c, m, a in final], self.tax.background_id)
        if changed:
            coco["annotations"] = [a for a in coco["annotations"] if a is not None]
            if isinstance(coco.get("info"), dict):
                coco["info"] = {**coco["info"], "version": self.version}
        return coco, label_maps, changed, deprecated

    def _clean(self, inst: Any, image: np.ndarray | None) -> np.ndarray | None:
        """The cleaned mask of ``inst``, or None when it is left as it is (skipped, or unchanged)."""
        p = self.params[inst.category_id]
        if (inst.iscrowd and self.skip_crowd) or not (p.morphology or p.refine or p.components):
            return None
        new = clean_mask(inst.mask, image, p)
        return None if np.array_equal(new, inst.mask) else new

    def _record(self, inst: Any, new: np.ndarray, rec: Any) -> dict[str, Any]:
        """The changes.json entry of one changed annotation (pixel counts added to the class's)."""
        name = self.tax.category(inst.category_id).name
        added = int((new & ~inst.mask).sum())
        removed = int((inst.mask & ~new).sum())
        self.added[name] += added
        self.removed[name] += removed
        return {"id": inst.annotation_id, "image_id": rec.id, "file_name": rec.file_name, "category": name,
                "area_before": int(inst.mask.sum()), "area_after": int(new.sum()),
                "pixels_added": added, "pixels_removed": removed}


def _changelog_entry(version: str, source_version: str, steps_text: str, changes: Mapping[str, Any],
                     total_anns: int, per_class: Mapping[str, Mapping[str, int]], deprecated: Sequence[int]) -> str:
    """The CHANGELOG entry of a cleaned version."""
    total_changed = sum(len(c["changed"]) for c in changes["splits"].values())
    lines = [f"## {version} ({_dt.date.today().isoformat()})", "",
             f"Masks cleaned from version {source_version} with `segval dataset clean`: {steps_text}. "
             "Image and annotation ids unchanged.", "",
             f"- annotations changed: {total_changed} of {total_anns}"
             + (" (" + ", ".join(f"{s}: {len(v['changed'])}" for s, v in changes["splits"].items()) + ")"
                if total_anns else ""),
             "- pixels changed per class: "
             + (", ".join(f"{n} +{v['pixels_added']} / -{v['pixels_removed']}" for n, v in per_class.items())
                or "none"),
             "- deprecated annotation ids (empty after cleaning): "
             + (", ".join(str(i) for i in deprecated) if deprecated else "none"), ""]
    return "\n".join(lines) + "\n"
