"""`segval dataset clean root=<package> output=<new package>`: mask clean-up as a new version.

Per instance (see :mod:`segval.qa.cleanup`): 3x3 opening + closing, edge-aware refinement guided
by the image, removal of small connected components. The result is a new package (the source is
only read; an existing output is refused) with the same image and annotation ids, the new version
in dataset.yaml, a CHANGELOG.md entry, regenerated label maps for changed images, and an
annotation that became empty listed under ``deprecated_annotations`` of its split's COCO file (with its data)
and its id under ``deprecated: {<split>: {annotations: [...]}}`` in dataset.yaml
(its id is never reused). changes.json in the run directory lists every change.
"""

from __future__ import annotations

import datetime as _dt
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from segval.app import segval_app
from segval.errors import ConfigError, DatasetError


def _params_for(steps: DictConfig, group: str):
    from segval.qa.cleanup import CleanParams

    mo, rf, cc = steps.morphology, steps.refine, steps.components
    return CleanParams(
        morphology=bool(mo.enabled) and group not in list(mo.skip_groups or []),
        morph_iterations=int(mo.iterations), morph_open=bool(mo.open), morph_close=bool(mo.close),
        refine=bool(rf.enabled) and group not in list(rf.skip_groups or []),
        refine_radius=int(rf.radius), refine_band=int(rf.band), refine_sigma_spatial=float(rf.sigma_spatial),
        refine_sigma_color=float(rf.sigma_color), refine_iterations=int(rf.iterations),
        components=bool(cc.enabled) and group not in list(cc.skip_groups or []),
        min_pixels=int(cc.min_pixels),
    )


def _check_cfg(cfg: DictConfig) -> tuple[Path, Path]:
    if not cfg.root:
        raise ConfigError("missing root=<source dataset package folder> on the command line")
    if not cfg.output:
        raise ConfigError("missing output=<new package folder> on the command line (it must not exist)")
    root, out = Path(cfg.root), Path(cfg.output)
    if out.exists():
        raise DatasetError("the output folder already exists; a new version never overwrites a package: "
                           "choose another output folder", path=out)
    r, o = root.resolve(), out.resolve()
    if o == r or o.is_relative_to(r):
        raise ConfigError(f"output {out} must lie outside the source package {root}")
    s = cfg.steps
    if int(s.morphology.iterations) < 0:
        raise ConfigError(f"steps.morphology.iterations must be >= 0, got {s.morphology.iterations}")
    for key in ("radius", "band", "iterations"):
        if int(s.refine[key]) < 1:
            raise ConfigError(f"steps.refine.{key} must be >= 1, got {s.refine[key]}")
    if float(s.refine.sigma_color) <= 0:
        raise ConfigError(f"steps.refine.sigma_color must be > 0, got {s.refine.sigma_color}")
    if int(s.components.min_pixels) < 0:
        raise ConfigError(f"steps.components.min_pixels must be >= 0, got {s.components.min_pixels}")
    return root, out


def _encode(mask: np.ndarray) -> tuple[dict[str, Any], int, list[float]]:
    from pycocotools import mask as mask_utils

    h, w = mask.shape
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return ({"size": [int(h), int(w)], "counts": rle["counts"].decode("ascii")}, int(mask_utils.area(rle)),
            [float(v) for v in mask_utils.toBbox(rle)])


def _steps_text(steps: DictConfig) -> str:
    parts = []
    mo, rf, cc = steps.morphology, steps.refine, steps.components
    if mo.enabled and (mo.open or mo.close):
        ops = " + ".join(n for n, on in (("opening", mo.open), ("closing", mo.close)) if on)
        parts.append(f"3x3 {ops} x{int(mo.iterations)}" + (f" (not for groups {list(mo.skip_groups)})"
                                                           if mo.skip_groups else ""))
    if rf.enabled:
        parts.append(f"image-guided joint-bilateral edge refinement (radius {int(rf.radius)}, band {int(rf.band)} px)"
                     + (f" (not for groups {list(rf.skip_groups)})" if rf.skip_groups else ""))
    if cc.enabled:
        parts.append(f"components under {int(cc.min_pixels)} px removed, largest kept"
                     + (f" (not for groups {list(cc.skip_groups)})" if cc.skip_groups else ""))
    return "; ".join(parts) or "no step enabled"


@segval_app("dataset_clean")
def main(cfg: DictConfig) -> dict:
    from tqdm import tqdm

    from segval.dataset.coco import load_json
    from segval.dataset.package import DatasetPackage
    from segval.dataset.semantic import rasterize_semantic
    from segval.dataset.versions import bump_version, version_core, write_version_copy
    from segval.dataset.writer import SEMVER
    from segval.io import atomic_dir, write_json
    from segval.qa.cleanup import clean_mask

    root, out = _check_cfg(cfg)
    pkg = DatasetPackage.open(root)
    version = str(cfg.version) if cfg.version is not None else bump_version(pkg.version, "minor")
    if not SEMVER.match(version):
        raise ConfigError(f"version must be a semver string such as '1.1.0', got {version!r}")
    src_core, new_core = version_core(pkg.version), version_core(version)
    if src_core is not None and new_core <= src_core:
        raise ConfigError(f"version {version} must be higher than the source version {pkg.version}")
    tax = pkg.taxonomy
    params = {c.id: _params_for(cfg.steps, c.group) for c in tax}
    needs_image = any(p.refine for p in params.values())

    changes: dict[str, Any] = {"splits": {}}
    pix_added: dict[str, int] = defaultdict(int)
    pix_removed: dict[str, int] = defaultdict(int)
    new_coco: dict[str, dict] = {}
    new_label_maps: dict[str, dict[Path, np.ndarray]] = {}
    total_anns = total_changed = 0
    deprecated_all: list[int] = []
    for s in pkg.splits:
        split = pkg.split(s)
        coco = load_json(split.annotation_path)
        pos = {int(a["id"]): i for i, a in enumerate(coco["annotations"])}
        changed: list[dict[str, Any]] = []
        deprecated: list[int] = []
        label_maps: dict[Path, np.ndarray] = {}
        for rec in tqdm(split.images, desc=f"clean {s}", unit="img", disable=None):
            insts = split.instances(rec)
            total_anns += len(insts)
            image = split.read_image(rec) if needs_image and insts else None
            final: list[tuple[int, np.ndarray, int]] = []  # (category id, mask, ann id) after cleaning
            image_changed = False
            for inst in insts:
                p = params[inst.category_id]
                if (inst.iscrowd and cfg.skip_crowd) or not (p.morphology or p.refine or p.components):
                    final.append((inst.category_id, inst.mask, inst.annotation_id))
                    continue
                new = clean_mask(inst.mask, image, p)
                if np.array_equal(new, inst.mask):
                    final.append((inst.category_id, inst.mask, inst.annotation_id))
                    continue
                image_changed = True
                name = tax.category(inst.category_id).name
                added = int((new & ~inst.mask).sum())
                removed = int((inst.mask & ~new).sum())
                pix_added[name] += added
                pix_removed[name] += removed
                entry = {"id": inst.annotation_id, "image_id": rec.id, "file_name": rec.file_name,
                         "category": name, "area_before": int(inst.mask.sum()), "area_after": int(new.sum()),
                         "pixels_added": added, "pixels_removed": removed}
                ann = dict(coco["annotations"][pos[inst.annotation_id]])
                if not new.any():
                    deprecated.append(inst.annotation_id)
                    entry["deprecated"] = True
                    ann["deprecated_in"] = version
                    ann["deprecated_reason"] = "empty after `segval dataset clean`"
                    coco.setdefault("deprecated_annotations", []).append(ann)
                    coco["annotations"][pos[inst.annotation_id]] = None
                else:
                    ann["segmentation"], ann["area"], ann["bbox"] = _encode(new)
                    coco["annotations"][pos[inst.annotation_id]] = ann
                    final.append((inst.category_id, new, inst.annotation_id))
                changed.append(entry)
            if image_changed and split.has_label_maps:
                rel = split.label_map_path(rec).relative_to(root)
                label_maps[rel] = rasterize_semantic(
                    rec.height, rec.width, [(c, m, int(m.sum()), a) for c, m, a in final], tax.background_id)
        if changed:
            coco["annotations"] = [a for a in coco["annotations"] if a is not None]
            if isinstance(coco.get("info"), dict):
                coco["info"] = {**coco["info"], "version": version}
            new_coco[s] = coco
            new_label_maps[s] = label_maps
        total_changed += len(changed)
        deprecated_all += deprecated
        changes["splits"][s] = {"annotations": split.num_annotations, "changed": changed, "deprecated_ids": deprecated}

    classes = sorted(set(pix_added) | set(pix_removed), key=lambda n: tax.names.index(n))
    per_class = {n: {"pixels_added": pix_added[n], "pixels_removed": pix_removed[n]} for n in classes}
    steps_text = _steps_text(cfg.steps)
    today = _dt.date.today().isoformat()
    lines = [f"## {version} ({today})", "",
             f"Masks cleaned from version {pkg.version} with `segval dataset clean`: {steps_text}. "
             "Image and annotation ids unchanged.", "",
             f"- annotations changed: {total_changed} of {total_anns}"
             + (" (" + ", ".join(f"{s}: {len(v['changed'])}" for s, v in changes["splits"].items()) + ")"
                if total_anns else ""),
             "- pixels changed per class: "
             + (", ".join(f"{n} +{v['pixels_added']} / -{v['pixels_removed']}" for n, v in per_class.items())
                or "none"),
             "- deprecated annotation ids (empty after cleaning): "
             + (", ".join(str(i) for i in deprecated_all) if deprecated_all else "none"), ""]
    entry_text = "\n".join(lines) + "\n"

    with atomic_dir(out) as tmp:
        # ids are never deleted: the emptied annotations are recorded where `segval dataset release` / `diff` look
        write_version_copy(root, tmp, version=version, annotations=new_coco, label_maps=new_label_maps,
                           deprecated={s: c["deprecated_ids"] for s, c in changes["splits"].items()},
                           changelog=entry_text)
        new_hash = DatasetPackage.open(tmp).content_hash()  # the written package opens

    changes.update({
        "source": {"root": str(root), "name": pkg.name, "version": pkg.version, "content_hash": pkg.content_hash()},
        "output": {"root": str(out), "version": version, "content_hash": new_hash},
        "steps": OmegaConf.to_container(cfg.steps, resolve=True),
        "skip_crowd": bool(cfg.skip_crowd),
        "annotations": total_anns, "annotations_changed": total_changed,
        "pixels_changed_per_class": per_class, "deprecated_ids": deprecated_all,
    })
    run_dir = Path(cfg.paths.output_dir)
    changes_path = write_json(run_dir / "changes.json", changes)
    print(f"steps: {steps_text}")
    print(f"annotations changed: {total_changed} of {total_anns}; pixels changed per class: "
          + (", ".join(f"{n} +{v['pixels_added']}/-{v['pixels_removed']}" for n, v in per_class.items()) or "none"))
    print("deprecated annotation ids (empty after cleaning): "
          + (", ".join(map(str, deprecated_all)) if deprecated_all else "none"))
    print(f"new package: {out} (version {version}, from {pkg.version} at {root}, which is unchanged)")
    print(f"changes: {changes_path}")
    if (root / "panoptic").exists():
        print("warning: panoptic/ was copied unchanged; regenerate it from the new annotations")
    return changes


if __name__ == "__main__":
    main()
