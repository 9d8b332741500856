"""`segval dataset split`: re-split a dataset package, keeping videos whole and class pixel shares balanced.

Pools the chosen splits of ``source``, assigns whole videos (an image without ``video_id`` is its own
unit) to the new splits with :func:`segval.qa.splitting.plan_split` (criteria in that module), and
writes a NEW package at ``output`` with image and annotation ids unchanged (images, label maps and
COCO entries copied as they are). ``split_report.json`` (what was achieved, per class per split) goes
into the run directory, also when the criteria cannot be met (then nothing is written unless
``allow=true``).
"""

from __future__ import annotations

import shutil
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import yaml
from omegaconf import DictConfig

from segval.app import segval_app
from segval.errors import ConfigError, DatasetError
from segval.io import atomic_dir, write_json


def format_report(report: dict[str, Any]) -> str:
    lines = [f"{'split':<10} {'images':>7} {'fraction':>9} {'target':>7} {'videos':>7}  worst class (relative deviation)"]
    for sp in report["splits"]:
        worst = max(sp["classes"].items(), key=lambda kv: abs(kv[1]["relative_deviation"]), default=None)
        w = f"{worst[0]} {worst[1]['relative_deviation']:+.1%}" if worst else "-"
        lines.append(f"{sp['name']:<10} {sp['images']:>7} {sp['fraction']:>9.1%} {sp['fraction_target']:>7.1%} "
                     f"{len(sp['videos']):>7}  {w}")
    lines.append(f"criterion: {report['criterion']}")
    return "\n".join(lines)


@segval_app("split")
def main(cfg: DictConfig) -> None:
    from tqdm import tqdm

    from segval.dataset.coco import load_json
    from segval.dataset.package import DatasetPackage
    from segval.qa.splitting import SplitInfeasibleError, check_fractions, explain_failure, group_images, plan_split

    if not cfg.source:
        raise ConfigError("give the package to re-split: source=<package folder>")
    if not cfg.output:
        raise ConfigError("give the folder of the new package: output=<new folder>")
    out_root = Path(cfg.output)
    if out_root.exists():
        raise DatasetError("the output package folder already exists; choose another folder or delete it", path=out_root)
    names = [str(n) for n in cfg.names]
    fractions = check_fractions([float(x) for x in cfg.fractions], names)
    for n in names:
        if not n or not all(ch.isalnum() or ch in "_.-" for ch in n) or not n[0].isalnum():
            raise ConfigError(f"split name {n!r} must be letters, digits, '_', '-', '.' (it is a folder name)")
    if not 0 < float(cfg.tolerance) < 1 or not 0 < float(cfg.fraction_tolerance) < 1:
        raise ConfigError("tolerance and fraction_tolerance must be in (0, 1)")

    pkg = DatasetPackage.open(cfg.source)
    src_splits = [str(s) for s in cfg.source_splits] if cfg.source_splits else list(pkg.splits)
    datas = [pkg.split(s) for s in src_splits]  # ConfigError naming the splits if one is absent
    tax = pkg.taxonomy
    k = tax.num_classes

    # raw COCO entries, so every key (video_id, frame_index, extra fields) is copied unchanged
    entries: list[tuple[str, dict[str, Any]]] = []
    anns_by_image: dict[int, list[dict[str, Any]]] = {}
    seen_img: dict[int, str] = {}
    seen_ann: dict[int, str] = {}
    categories = None
    for s, d in zip(src_splits, datas, strict=True):
        coco = load_json(d.annotation_path)
        categories = categories if categories is not None else coco.get("categories")
        for im in coco.get("images", []):
            iid = int(im["id"])
            if iid in seen_img:
                raise DatasetError(f"image id {iid} is used in split {seen_img[iid]!r} and split {s!r}; pooled splits "
                                   "need unique image ids (the new package keeps them)", path=d.annotation_path)
            seen_img[iid] = s
            entries.append((s, im))
        for a in coco.get("annotations", []):
            aid = int(a["id"])
            if aid in seen_ann:
                raise DatasetError(f"annotation id {aid} is used in split {seen_ann[aid]!r} and split {s!r}; pooled "
                                   "splits need unique annotation ids", path=d.annotation_path)
            seen_ann[aid] = s
            anns_by_image.setdefault(int(a["image_id"]), []).append(a)
    if not entries:
        raise DatasetError(f"splits {src_splits} hold no images; nothing to split", path=pkg.root)

    by_split = dict(zip(src_splits, datas, strict=True))
    counts = np.zeros((len(entries), k), dtype=np.int64)
    for n, (s, im) in enumerate(tqdm(entries, desc="class pixels", unit="img", mininterval=1.0)):
        d = by_split[s]
        t = d.semantic_target(d.image(int(im["id"])))
        counts[n] = np.bincount(t[t != 255].ravel(), minlength=k)[:k]
    recs = [by_split[s].image(int(im["id"])) for s, im in entries]
    keys, gidx = group_images([r.id for r in recs], [r.video_id for r in recs])
    g_counts = np.zeros((len(keys), k), dtype=np.int64)
    np.add.at(g_counts, gidx, counts)
    g_sizes = np.bincount(gidx, minlength=len(keys))

    plan = plan_split(g_counts, g_sizes, fractions, names, class_names=tax.names, group_keys=keys,
                      tolerance=float(cfg.tolerance), min_share=float(cfg.min_share),
                      fraction_tolerance=float(cfg.fraction_tolerance), seed=int(cfg.seed), trials=int(cfg.trials))
    report = {"source": str(pkg.root), "source_splits": src_splits, "output": str(out_root), "seed": int(cfg.seed),
              "written": False, **plan.report}
    run_dir = Path(cfg.paths.output_dir)
    report_path = run_dir / "split_report.json"
    print(format_report(plan.report))
    if not plan.ok and not cfg.allow:
        write_json(report_path, report)
        raise SplitInfeasibleError(f"{explain_failure(plan.report)} (achieved numbers: {report_path})")

    split_of_group = plan.assignment
    dest = [names[split_of_group[g]] for g in gidx]
    copy_label_maps = all(d.has_label_maps for d in datas)
    meta = yaml.safe_load((pkg.root / "dataset.yaml").read_text(encoding="utf-8"))
    meta["splits"] = names
    if cfg.name:
        meta["name"] = str(cfg.name)
    if cfg.version:
        meta["version"] = str(cfg.version)
    meta["split"] = {"source": f"{pkg.name} {pkg.version}", "source_splits": src_splits,
                     "fractions": [float(x) for x in fractions],
                     "seed": int(cfg.seed), "tolerance": float(cfg.tolerance), "criteria_met": bool(plan.ok)}
    with atomic_dir(out_root) as tmp:
        used: dict[str, set[str]] = {n: set() for n in names}
        images_out: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
        anns_out: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
        for n in names:
            (tmp / "images" / n).mkdir(parents=True, exist_ok=True)
            if copy_label_maps:
                (tmp / "label_maps" / n).mkdir(parents=True, exist_ok=True)
        for (s, im), rec, new in tqdm(list(zip(entries, recs, dest, strict=True)), desc="copying", unit="img",
                                      mininterval=1.0):
            d = by_split[s]
            if rec.file_name in used[new]:
                raise DatasetError(f"file_name {rec.file_name!r} occurs in more than one pooled split and both land in "
                                   f"new split {new!r}; rename one", image_id=rec.id, path=d.annotation_path)
            used[new].add(rec.file_name)
            dst = tmp / "images" / new / rec.file_name
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(d.image_path(rec), dst)
            if copy_label_maps:
                lm = d.label_map_path(rec)
                if lm.is_file():
                    lm_dst = tmp / "label_maps" / new / PurePosixPath(rec.file_name).with_suffix(".png")
                    lm_dst.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(lm, lm_dst)
            images_out[new].append(im)
            anns_out[new].extend(anns_by_image.get(rec.id, []))
        (tmp / "annotations").mkdir()
        for n in names:
            coco = {"info": {"description": str(meta.get("name")), "version": str(meta.get("version"))},
                    "images": images_out[n], "annotations": anns_out[n], "categories": categories or tax.coco_categories()}
            write_json(tmp / "annotations" / f"{n}.json", coco, indent=None)
        (tmp / "dataset.yaml").write_text(yaml.safe_dump(meta, sort_keys=False, allow_unicode=True), encoding="utf-8")
        DatasetPackage.open(tmp)  # the cheap checks, before the package is renamed into place
    report["written"] = True
    write_json(report_path, report)
    verdict = "criteria met" if plan.ok else "CRITERIA NOT MET (allow=true)"
    print(f"{len(entries)} images in {len(keys)} videos/units -> {', '.join(f'{n} {len(images_out[n])}' for n in names)}"
          f" ({verdict})")
    print(f"package: {out_root}\nreport: {report_path}")


if __name__ == "__main__":
    main()
