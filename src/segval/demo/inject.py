"""Inject known label errors into a copy of a clean dataset package (the demo's ground truth).

Example:
    >>> cfg = InjectConfig(rate=0.15, swap_pairs=(("lego", "cube"), ("ball", "soccer_ball")), seed=0)
    >>> manifest = inject_errors("data/demo", "data/demo_corrupted", "outputs/errors.json", cfg)  # doctest: +SKIP

A fraction ``rate`` of the images of one split (default ``train``) gets exactly ONE error each,
so every changed pixel of an image belongs to one manifest item. The number of errors of each
kind follows ``mix`` (weights, apportioned by largest remainder). Kinds:

============= ========================================================================
kind          what happens to one annotation of the image
============= ========================================================================
swap          its class becomes the other class of a plausible pair (``swap_pairs``)
drop          deprecated (kept under ``deprecated_annotations``, id in dataset.yaml
              ``deprecated``): its pixels fall back to what lies below (background)
dilate        mask dilated by ``boundary_px`` (elliptical structuring element)
erode         mask eroded by ``boundary_px`` (must stay non-empty)
simplify      outer contours simplified (Douglas-Peucker, ``simplify_tolerance`` px),
              refilled: holes and detail lost
shift         mask translated by (dx, dy), ``shift_px / 2 <= |d| <= shift_px``
wrong_region  a whole region (an annotation, drawn with probability ~ its area) given a
              class that is neither its own nor a swap partner
============= ========================================================================

``pixels_changed`` of an item is the number of pixels whose semantic label (the rasterisation
rule of :mod:`segval.dataset.semantic`) differs between the clean and the corrupted image; an
error that changes no pixel (e.g. hidden under another instance) is never chosen.
``mask_pixels_changed`` is the size of the symmetric difference of the annotation's masks
(the whole mask for swap / drop / wrong_region).

Everything random comes from one generator seeded by ``seed``: the same package and config give
the same corrupted package and manifest, byte for byte. Image and annotation ids are kept.
The manifest is written OUTSIDE both packages, so nothing in the loop can see it.
"""

from __future__ import annotations

import datetime as _dt
import os
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from segval.dataset.coco import load_json
from segval.dataset.package import DatasetPackage, Instance, SplitData
from segval.dataset.rle import encode_coco_rle
from segval.dataset.semantic import rasterize_semantic
from segval.dataset.taxonomy import Taxonomy
from segval.errors import ConfigError, DatasetError
from segval.io import shipped_defaults

__all__ = [
    "KINDS",
    "MANIFEST_SCHEMA_VERSION",
    "Corruption",
    "InjectConfig",
    "apportion",
    "dilate_mask",
    "erode_mask",
    "inject_errors",
    "load_manifest",
    "plan_corruptions",
    "shift_mask",
    "simplify_mask",
]

MANIFEST_SCHEMA_VERSION = 1
#: every kind of injected error, in the order they are planned (most constrained first)
KINDS = ("swap", "wrong_region", "erode", "simplify", "dilate", "shift", "drop")
#: the defaults of InjectConfig: conf/demo_inject.yaml's inject: block
_DEFAULTS = shipped_defaults("demo_inject", "inject")
DEFAULT_MIX: dict[str, float] = dict(_DEFAULTS["mix"])


@dataclass(frozen=True)
class InjectConfig:
    """What to inject (the defaults are conf/demo_inject.yaml's ``inject:`` block).

    Args:
        rate: fraction of the split's images corrupted (one error each), in [0, 1].
        mix: weight per kind (see :data:`KINDS`); normalised; a kind left out gets 0.
        swap_pairs: class-name pairs confused by ``swap`` (both directions).
        boundary_px: radius of ``dilate`` / ``erode``.
        simplify_tolerance: Douglas-Peucker tolerance of ``simplify`` in pixels.
        shift_px: largest translation of ``shift`` per axis (at least ``shift_px // 2`` along one axis).
        min_pixels: annotations smaller than this are never corrupted.
        split: the split corrupted.
        seed: the generator seed.
    """

    rate: float = _DEFAULTS["rate"]
    mix: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_MIX))
    swap_pairs: Sequence[Sequence[str]] = tuple(tuple(p) for p in _DEFAULTS["swap_pairs"])
    boundary_px: int = _DEFAULTS["boundary_px"]
    simplify_tolerance: float = _DEFAULTS["simplify_tolerance"]
    shift_px: int = _DEFAULTS["shift_px"]
    min_pixels: int = _DEFAULTS["min_pixels"]
    split: str = _DEFAULTS["split"]
    seed: int = _DEFAULTS["seed"]

    def check(self, taxonomy: Taxonomy | None = None) -> None:
        """ConfigError naming the bad field (and, with ``taxonomy``, unknown class names)."""
        rate = self.rate
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= float(rate) <= 1.0:
            raise ConfigError(f"inject.rate is the fraction of {self.split} images to corrupt and must lie in "
                              f"[0, 1], got {rate!r}")
        unknown = sorted(set(self.mix) - set(KINDS))
        if unknown:
            raise ConfigError(f"inject.mix has unknown kinds {unknown}; kinds are {list(KINDS)}")
        weights = [float(v) for v in self.mix.values()]
        if any(not np.isfinite(w) or w < 0 for w in weights) or sum(weights) <= 0:
            raise ConfigError(f"inject.mix weights must be >= 0 with a positive sum, got {dict(self.mix)}")
        for key, value, lo in (("boundary_px", self.boundary_px, 1), ("shift_px", self.shift_px, 1),
                               ("min_pixels", self.min_pixels, 1)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
                raise ConfigError(f"inject.{key} must be an int >= {lo}, got {value!r}")
        if not float(self.simplify_tolerance) > 0:
            raise ConfigError(f"inject.simplify_tolerance must be > 0 pixels, got {self.simplify_tolerance!r}")
        for pair in self.swap_pairs:
            if len(pair) != 2 or pair[0] == pair[1]:
                raise ConfigError(f"inject.swap_pairs entries must be two different class names, got {list(pair)}")
            if taxonomy is not None:
                missing = [n for n in pair if n not in taxonomy.names]
                if missing:
                    raise ConfigError(f"inject.swap_pairs names {missing}, not classes of the dataset "
                                      f"(classes: {taxonomy.names})")
        if float(self.mix.get("swap", 0)) > 0 and not self.swap_pairs:
            raise ConfigError("inject.mix asks for swaps but inject.swap_pairs is empty; add pairs or set mix.swap=0")


@dataclass
class Corruption:
    """One injected error (one per corrupted image)."""

    image_id: int
    file_name: str
    kind: str
    annotation_id: int
    category_id: int
    new_category_id: int | None  # swap / wrong_region: the class given; else None
    new_mask: np.ndarray | None  # the annotation's mask after the error; None = dropped
    pixels_changed: int
    mask_pixels_changed: int
    params: dict[str, Any]


# ---------------------------------------------------------------------- mask operations (pure)
def _disk(radius: int) -> np.ndarray:
    import cv2

    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def dilate_mask(mask: np.ndarray, radius: int) -> np.ndarray:
    """bool[H, W] dilated by an elliptical element of ``radius`` px.

    >>> m = np.zeros((5, 5), bool); m[2, 2] = True
    >>> dilate_mask(m, 1).astype(int).sum()
    5
    """
    import cv2

    return cv2.dilate(mask.astype(np.uint8), _disk(radius)).astype(bool)


def erode_mask(mask: np.ndarray, radius: int) -> np.ndarray:
    """bool[H, W] eroded by an elliptical element of ``radius`` px (outside the image counts as set)."""
    import cv2

    return cv2.erode(mask.astype(np.uint8), _disk(radius), borderType=cv2.BORDER_REPLICATE).astype(bool)


def simplify_mask(mask: np.ndarray, tolerance: float) -> np.ndarray:
    """bool[H, W]: each outer contour simplified (Douglas-Peucker, ``tolerance`` px) and filled; holes lost."""
    import cv2

    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    out = np.zeros(mask.shape, np.uint8)
    polys = [cv2.approxPolyDP(c, float(tolerance), True) for c in contours]
    cv2.fillPoly(out, [p for p in polys if len(p) >= 3], 1)
    for p in polys:  # degenerate (1-2 point) polygons: keep them as lines
        if len(p) < 3:
            cv2.polylines(out, [p], False, 1)
    return out.astype(bool)


def shift_mask(mask: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """bool[H, W] translated by (dy, dx); what leaves the image is lost.

    >>> m = np.zeros((3, 3), bool); m[0, 0] = True
    >>> np.argwhere(shift_mask(m, 1, 2)).tolist()
    [[1, 2]]
    """
    h, w = mask.shape
    out = np.zeros_like(mask, dtype=bool)
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    if abs(dy) < h and abs(dx) < w:
        out[yd, xd] = mask[ys, xs]
    return out


def apportion(total: int, weights: Mapping[str, float]) -> dict[str, int]:
    """Split ``total`` into integer counts proportional to ``weights`` (largest remainder; ties in
    :data:`KINDS` order).

    >>> apportion(10, {"swap": 0.5, "drop": 0.25, "shift": 0.25})
    {'swap': 5, 'shift': 3, 'drop': 2}
    """
    kinds = [k for k in KINDS if float(weights.get(k, 0)) > 0]
    s = sum(float(weights[k]) for k in kinds)
    exact = {k: total * float(weights[k]) / s for k in kinds}
    counts = {k: int(np.floor(exact[k])) for k in kinds}
    rest = total - sum(counts.values())
    for k in sorted(kinds, key=lambda k: (-(exact[k] - counts[k]), KINDS.index(k)))[:rest]:
        counts[k] += 1
    return counts


# ---------------------------------------------------------------------- planning
def _semantic(rec_h: int, rec_w: int, insts: Sequence[tuple[int, np.ndarray, int]], background_id: int | None):
    return rasterize_semantic(rec_h, rec_w, [(c, m, int(m.sum()), a) for c, m, a in insts], background_id)


def _partners(cfg: InjectConfig, taxonomy: Taxonomy) -> dict[int, list[int]]:
    ids = {c.name: c.id for c in taxonomy}
    out: dict[int, list[int]] = {}
    for a, b in cfg.swap_pairs:
        out.setdefault(ids[a], []).append(ids[b])
        out.setdefault(ids[b], []).append(ids[a])
    return {k: sorted(set(v)) for k, v in out.items()}


def _try_kind(kind: str, rec, insts: list[Instance], cfg: InjectConfig, taxonomy: Taxonomy,
              partners: dict[int, list[int]], rng: np.random.Generator) -> Corruption | None:
    """One corruption of ``kind`` for this image, or None when none changes a pixel."""
    eligible = [k for k, i in enumerate(insts) if not i.iscrowd and int(i.mask.sum()) >= cfg.min_pixels
                and i.category_id != taxonomy.background_id]
    if kind == "swap":
        eligible = [k for k in eligible if insts[k].category_id in partners]
    if not eligible:
        return None
    if kind == "wrong_region":  # a whole region: larger ones are likelier
        areas = np.array([insts[k].mask.sum() for k in eligible], float)
        order = [eligible[k] for k in rng.choice(len(eligible), size=len(eligible), replace=False, p=areas / areas.sum())]
    else:
        order = [eligible[k] for k in rng.permutation(len(eligible))]
    base = [(i.category_id, i.mask, i.annotation_id) for i in insts]
    before = _semantic(rec.height, rec.width, base, taxonomy.background_id)
    for k in order:
        inst = insts[k]
        new_cat: int | None = None
        new_mask: np.ndarray | None = inst.mask
        params: dict[str, Any] = {}
        if kind == "swap":
            choices = partners[inst.category_id]
            new_cat = int(choices[int(rng.integers(len(choices)))])
        elif kind == "wrong_region":
            banned = {inst.category_id, *partners.get(inst.category_id, [])}
            if taxonomy.background_id is not None:
                banned.add(taxonomy.background_id)
            choices = [c for c in taxonomy.ids if c not in banned]
            if not choices:
                continue
            new_cat = int(choices[int(rng.integers(len(choices)))])
        elif kind == "drop":
            new_mask = None
        elif kind == "dilate":
            new_mask = dilate_mask(inst.mask, cfg.boundary_px)
            params = {"radius": int(cfg.boundary_px)}
        elif kind == "erode":
            new_mask = erode_mask(inst.mask, cfg.boundary_px)
            params = {"radius": int(cfg.boundary_px)}
        elif kind == "simplify":
            new_mask = simplify_mask(inst.mask, cfg.simplify_tolerance)
            params = {"tolerance": float(cfg.simplify_tolerance)}
        elif kind == "shift":
            lo, hi = max(1, cfg.shift_px // 2), cfg.shift_px
            big = int(rng.integers(lo, hi + 1)) * int(rng.choice([-1, 1]))
            small = int(rng.integers(-hi, hi + 1))
            dy, dx = (big, small) if rng.random() < 0.5 else (small, big)
            new_mask = shift_mask(inst.mask, dy, dx)
            params = {"dy": dy, "dx": dx}
        else:  # pragma: no cover - KINDS is checked
            raise AssertionError(kind)
        if new_mask is not None and not new_mask.any():
            continue
        after_insts = [b for j, b in enumerate(base) if j != k]
        if new_mask is not None:
            after_insts.insert(k, (new_cat if new_cat is not None else inst.category_id, new_mask, inst.annotation_id))
        after = _semantic(rec.height, rec.width, after_insts, taxonomy.background_id)
        changed = int((before != after).sum())
        if changed == 0:
            continue
        mask_changed = int(inst.mask.sum()) if new_mask is None or new_cat is not None \
            else int((inst.mask ^ new_mask).sum())
        return Corruption(rec.id, rec.file_name, kind, inst.annotation_id, inst.category_id, new_cat, new_mask,
                          changed, mask_changed, params)
    return None


def plan_corruptions(split: SplitData, taxonomy: Taxonomy, cfg: InjectConfig) -> tuple[list[Corruption], dict[str, int]]:
    """Choose and compute the corruptions of a split (nothing is written).

    Returns:
        The corruptions sorted by image id, and the shortfall per kind (errors of a kind that no
        remaining image could take; 0 normally).
    """
    cfg.check(taxonomy)
    rng = np.random.default_rng([int(cfg.seed), zlib.crc32(b"segval-inject"), zlib.crc32(split.name.encode())])
    images = sorted(split.images, key=lambda r: r.id)
    n_total = int(round(float(cfg.rate) * len(images)))
    counts = apportion(n_total, cfg.mix)
    partners = _partners(cfg, taxonomy)
    order = [images[i] for i in rng.permutation(len(images))]
    used: set[int] = set()
    cache: dict[int, list[Instance]] = {}
    out: list[Corruption] = []
    shortfall: dict[str, int] = {}
    for kind in KINDS:
        need = counts.get(kind, 0)
        for rec in order:
            if need == 0:
                break
            if rec.id in used:
                continue
            if rec.id not in cache:
                cache[rec.id] = split.instances(rec)
            c = _try_kind(kind, rec, cache[rec.id], cfg, taxonomy, partners, rng)
            if c is not None:
                out.append(c)
                used.add(rec.id)
                need -= 1
        if need:
            shortfall[kind] = need
    return sorted(out, key=lambda c: c.image_id), shortfall


# ---------------------------------------------------------------------- writing
def inject_errors(
    root: str | os.PathLike,
    output: str | os.PathLike,
    manifest_path: str | os.PathLike,
    cfg: InjectConfig,
    *,
    version: str | None = None,
) -> dict[str, Any]:
    """Write ``output``: a copy of package ``root`` with the errors of :func:`plan_corruptions`.

    Args:
        root: the clean package (only read).
        output: the corrupted package to create (refused if it exists).
        manifest_path: errors.json to write; must lie outside both packages.
        cfg: what to inject.
        version: version of the corrupted package (default: the clean one's minor + 1).

    Returns:
        The manifest (also written to ``manifest_path``).

    Raises:
        ConfigError: bad config, output or manifest inside a package, version not higher.
        DatasetError: output exists; the split is not in the package.
    """

    from segval.dataset.versioning import new_version, write_version_copy
    from segval.io import atomic_dir, write_json

    root, output, manifest_path = Path(root), Path(output), Path(manifest_path)
    if output.exists():
        raise DatasetError("the output folder already exists; a new version never overwrites a package: "
                           "choose another output folder", path=output)
    r, o, m = root.resolve(), output.resolve(), manifest_path.resolve()
    if o == r or o.is_relative_to(r) or r.is_relative_to(o):
        raise ConfigError(f"output {output} must lie outside the clean package {root} (and not contain it)")
    if m.is_relative_to(r) or m.is_relative_to(o):
        raise ConfigError(f"manifest {manifest_path} must lie outside both packages: the loop must not see it")
    pkg = DatasetPackage.open(root)
    split = pkg.split(cfg.split)
    tax = pkg.taxonomy
    version = new_version(pkg.version, version)

    corruptions, shortfall = plan_corruptions(split, tax, cfg)

    from segval.dataset.coco import load_json

    coco = load_json(split.annotation_path)
    pos = {int(a["id"]): i for i, a in enumerate(coco["annotations"])}
    dropped: list[int] = []
    label_maps: dict[Path, np.ndarray] = {}
    by_image = {c.image_id: c for c in corruptions}
    for c in corruptions:
        ann = dict(coco["annotations"][pos[c.annotation_id]])
        if c.new_mask is None:
            ann["deprecated_in"] = version
            coco.setdefault("deprecated_annotations", []).append(ann)
            coco["annotations"][pos[c.annotation_id]] = None
            dropped.append(c.annotation_id)
        else:
            if c.new_category_id is not None:
                ann["category_id"] = int(c.new_category_id)
            else:
                ann["segmentation"], ann["area"], ann["bbox"] = encode_coco_rle(c.new_mask)
            coco["annotations"][pos[c.annotation_id]] = ann
    coco["annotations"] = [a for a in coco["annotations"] if a is not None]
    if isinstance(coco.get("info"), dict):
        coco["info"] = {**coco["info"], "version": version}
    if split.has_label_maps:
        for rec in split.images:
            c = by_image.get(rec.id)
            if c is None:
                continue
            insts = []
            for inst in split.instances(rec):
                if inst.annotation_id != c.annotation_id:
                    insts.append((inst.category_id, inst.mask, inst.annotation_id))
                elif c.new_mask is not None:
                    insts.append((c.new_category_id if c.new_category_id is not None else inst.category_id,
                                  c.new_mask, inst.annotation_id))
            label_maps[split.label_map_path(rec).relative_to(root)] = _semantic(
                rec.height, rec.width, insts, tax.background_id)

    today = _dt.date.today().isoformat()
    entry = (f"## {version} ({today})\n\nDerived from version {pkg.version} with `segval demo inject`: synthetic "
             f"label errors in the {cfg.split} split for the segval demo (what was changed is recorded outside "
             "the package). Image and annotation ids unchanged.\n")
    with atomic_dir(output) as tmp:
        write_version_copy(root, tmp, version=version, annotations={cfg.split: coco},
                           label_maps={cfg.split: label_maps}, deprecated={cfg.split: dropped}, changelog=entry)
        new_pkg = DatasetPackage.open(tmp)
        new_hash = new_pkg.content_hash()

    names = {c.id: c.name for c in tax}
    counts: dict[str, int] = {}
    for c in corruptions:
        counts[c.kind] = counts.get(c.kind, 0) + 1
    manifest = {
        "schema_version": MANIFEST_SCHEMA_VERSION,
        "clean": {"root": str(root.resolve()), "name": pkg.name, "version": pkg.version,
                  "content_hash": pkg.content_hash()},
        "corrupted": {"root": str(output.resolve()), "name": pkg.name, "version": version, "content_hash": new_hash},
        "split": cfg.split,
        "config": {"rate": float(cfg.rate), "mix": {k: float(v) for k, v in cfg.mix.items()},
                   "swap_pairs": [list(p) for p in cfg.swap_pairs], "boundary_px": int(cfg.boundary_px),
                   "simplify_tolerance": float(cfg.simplify_tolerance), "shift_px": int(cfg.shift_px),
                   "min_pixels": int(cfg.min_pixels), "seed": int(cfg.seed)},
        "images": len(split.images),
        "corrupted_images": len(corruptions),
        "counts": {k: counts.get(k, 0) for k in KINDS},
        "shortfall": shortfall,
        "items": [
            {"image_id": c.image_id, "file_name": c.file_name, "kind": c.kind, "annotation_id": c.annotation_id,
             "category_id": c.category_id, "class": names[c.category_id], "new_category_id": c.new_category_id,
             "new_class": None if c.new_category_id is None else names[c.new_category_id],
             "pixels_changed": c.pixels_changed, "mask_pixels_changed": c.mask_pixels_changed, "params": c.params}
            for c in corruptions
        ],
    }
    write_json(manifest_path, manifest)
    return manifest


def load_manifest(path: str | os.PathLike, *, package: DatasetPackage | None = None,
                  role: str = "corrupted") -> dict[str, Any]:
    """Read errors.json; with ``package``, check it describes that package (name and version of its
    ``role``: ``"corrupted"`` or ``"clean"``).

    Raises:
        DatasetError: missing / unreadable file, wrong schema, or a manifest of another dataset version.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError("errors manifest not found; `segval demo inject` writes it (manifest=...)", path=path)
    data = load_json(path)
    if not isinstance(data, dict) or data.get("schema_version") != MANIFEST_SCHEMA_VERSION \
            or not isinstance(data.get("items"), list):
        raise DatasetError(f"not an errors manifest of schema_version {MANIFEST_SCHEMA_VERSION} "
                           "(keys schema_version, clean, corrupted, split, items)", path=path)
    if package is not None:
        want = data.get(role) or {}
        if (want.get("name"), str(want.get("version"))) != (package.name, str(package.version)):
            raise DatasetError(
                f"this manifest describes {role} dataset {want.get('name')!r} version {want.get('version')}, "
                f"but the dataset given is {package.name!r} version {package.version} at {package.root}; "
                "pass the manifest written by `segval demo inject` for this version", path=path)
    return data
