"""`segval dataset import | export | split | stats | clean | release | diff | publish`: the dataset tools.

    segval dataset import format=labelme source=<labelme folder> output=<package> name=apc version=1.0.0
    segval dataset import format=coco source=<file.json | COCO / Roboflow / mmdet folder> [images=...] output=<package>
    segval dataset import format=coco_panoptic|cvat|cvat_masks|labelstudio|voc source=... [images=...] output=...
    segval dataset export root=<package> format=coco|label_maps|panoptic output=<folder>
    segval dataset split source=<package> output=<new package> fractions=[0.7,0.15,0.15]
    segval dataset stats root=<package>
    segval dataset clean root=<package> output=<new version>
    segval dataset release source=<working package> releases=<folder of versions> bump=minor notes="..."
    segval dataset diff a=<package> b=<package>
    segval dataset publish releases=<folder of versions> repo_id=<org>/<name> [publish.dry_run=true]
    segval dataset guideline data.root=<package> [run_dir=<analyze run>] [queue=<queue.json>] [into_package=true]

Each function composes, calls the library and prints what it decided and where it wrote it; the work is in
:mod:`segval.dataset.formats` (import), :mod:`segval.dataset.export`, :mod:`segval.qa.resplit`, :mod:`segval.qa.stats`,
:mod:`segval.qa.cleanup`, :mod:`segval.qa.guideline` + :mod:`segval.report.guideline` and :mod:`segval.release`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from segval.commands._common import dispatch, open_package, output_dir, progress, require, segval_app
from segval.errors import ConfigError, DatasetError
from segval.io import write_json, write_text

IMPORT_FORMATS = ("coco", "coco_panoptic", "cvat", "cvat_masks", "labelstudio", "voc", "labelme", "label_maps")


# ---------------------------------------------------------------------------------------- import / export
def run_import(cfg: DictConfig) -> dict[str, Any]:
    """Another tool's export -> a new package: read and check everything (:func:`segval.dataset.formats.read_export`),
    print the report (warnings, skipped kinds with counts), then write it (:func:`segval.dataset.formats.write_imported`).
    """
    from segval.dataset.writer import SEMVER

    require(cfg, "source", "output")
    fmt = str(cfg.format)
    if fmt not in IMPORT_FORMATS:
        raise ConfigError(f"format must be one of {list(IMPORT_FORMATS)}, got {fmt!r}")
    output = Path(cfg.output)
    if output.exists():
        raise ConfigError(f"{output} already exists; refusing to overwrite it (choose another output)")
    if cfg.version is not None and not SEMVER.match(str(cfg.version)):
        raise ConfigError(f"version must be a semver string such as 1.0.0, got {cfg.version!r}")
    source = Path(cfg.source)
    if fmt == "label_maps" or (fmt == "coco" and (source / "export.yaml").is_file()):
        return _import_segval_export(cfg, fmt, output)
    from segval.dataset.formats import read_export, write_imported

    images = cfg.get("images") or (cfg.coco.images if fmt == "coco" else None)
    background = cfg.get("background") or (cfg.coco.background if fmt == "coco" else None)
    options = OmegaConf.to_container(cfg[fmt], resolve=True) if fmt in cfg else {}
    options = {k: v for k, v in (options or {}).items() if k not in ("images", "background")}
    result = read_export(fmt, source, images=images, split=str(cfg.split), background=background, options=options,
                         max_pixels=int(cfg.max_pixels), progress=progress(f"reading {fmt}"))
    for line in result.report():
        print(line)
    print(f"read {result.num_images} images, {result.num_instances} instances "
          f"({', '.join(f'{s}: {len(v)}' for s, v in result.splits.items())}); classes: {result.taxonomy.names}")
    res = write_imported(result, output, name=cfg.name, version=str(cfg.version or "1.0.0"), license=cfg.license,
                         progress=progress("writing"))
    for line in res["warnings"][len(result.warnings):]:  # the licence and ignore-region notes of the writer
        print(f"warning: {line}")
    extra = res["annotations"] - result.num_instances
    print(f"imported {res['images']} images, {result.num_instances} instances from {fmt} {cfg.source}"
          + (f" (+ {extra} background annotations around the ignore regions)" if extra else "")
          + f"\npackage written: {output} (license: {res['license']})")
    return res


def _import_segval_export(cfg: DictConfig, fmt: str, output: Path) -> dict[str, Any]:
    """A folder written by `segval dataset export` (coco: byte-stable round trip) or label-map PNGs + taxonomy."""
    from segval.dataset.export import import_coco_export, import_label_maps

    if fmt == "coco":
        res = import_coco_export(cfg.source, output, name=cfg.name, version=cfg.version, split=cfg.split,
                                 background=cfg.get("background") or cfg.coco.background, license=cfg.license,
                                 progress=progress("coco"))
    else:
        res = import_label_maps(cfg.source, output, name=cfg.name, version=cfg.version,
                                images=cfg.get("images") or cfg.label_maps.images, taxonomy=cfg.label_maps.taxonomy,
                                split=cfg.split, license=cfg.license, progress=progress("label maps"))
        if res.get("void_kept"):
            print("label maps hold void (255): the package has no background id, background is an annotation")
    if res["license"] == "unknown":
        print("warning: no licence given and the export names none: dataset.yaml says `license: unknown`; pass "
              "license=<SPDX id> (e.g. CC-BY-4.0) when you know it")
    print(f"imported {res['images']} images, {res['annotations']} annotations from {fmt} {cfg.source}\n"
          f"package written: {output} (license: {res['license']})")
    return res


def run_export(cfg: DictConfig) -> dict[str, Any]:
    """A package -> COCO RLE / label maps / COCO panoptic in a new folder."""
    from segval.dataset.export import FORMATS, export_package
    from segval.dataset.package import DatasetPackage

    require(cfg, "root", "output")
    if cfg.format not in FORMATS:
        raise ConfigError(f"format must be one of {list(FORMATS)}, got {cfg.format!r}")
    pkg = DatasetPackage.open(cfg.root)
    res = export_package(pkg, cfg.output, cfg.format, splits=list(cfg.splits) if cfg.splits else None,
                         overwrite=bool(cfg.overwrite), progress=progress("export"))
    print(f"exported {pkg.name} {pkg.version} ({', '.join(res['splits'])}): {res['images']} images, "
          f"{res['annotations']} {'segments' if cfg.format == 'panoptic' else 'annotations'} as {cfg.format}\n"
          f"written: {res['output']}")
    return res


# ---------------------------------------------------------------------------------------- split / stats
def run_split(cfg: DictConfig) -> dict[str, Any]:
    """Re-split a package into a new one (whole videos per split, class shares balanced); split_report.json
    goes into the run directory, also when the criteria cannot be met (then nothing is written unless allow)."""
    from segval.dataset.package import DatasetPackage
    from segval.qa.resplit import format_report, plan_resplit, write_resplit
    from segval.qa.splitting import SplitInfeasibleError, check_fractions, explain_failure

    require(cfg, "source", "output", hint="(source=<package to re-split>, output=<new package folder>)")
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
    plan, pooled = plan_resplit(pkg, src_splits, names, fractions, tolerance=float(cfg.tolerance),
                                min_share=float(cfg.min_share), fraction_tolerance=float(cfg.fraction_tolerance),
                                seed=int(cfg.seed), trials=int(cfg.trials), progress=progress("class pixels"))
    report = {"source": str(pkg.root), "source_splits": src_splits, "output": str(out_root), "seed": int(cfg.seed),
              "written": False, **plan.report}
    report_path = Path(cfg.paths.output_dir) / "split_report.json"
    print(format_report(plan.report))
    if not plan.ok and not cfg.allow:
        write_json(report_path, report)
        raise SplitInfeasibleError(f"{explain_failure(plan.report)} (achieved numbers: {report_path})")
    meta = yaml.safe_load((pkg.root / "dataset.yaml").read_text(encoding="utf-8"))
    meta["splits"] = names
    if cfg.name:
        meta["name"] = str(cfg.name)
    if cfg.version:
        meta["version"] = str(cfg.version)
    meta["split"] = {"source": f"{pkg.name} {pkg.version}", "source_splits": src_splits,
                     "fractions": [float(x) for x in fractions],
                     "seed": int(cfg.seed), "tolerance": float(cfg.tolerance), "criteria_met": bool(plan.ok)}
    sizes = write_resplit(pkg, out_root, names, pooled, meta, progress=progress("copying"))
    report["written"] = True
    write_json(report_path, report)
    verdict = "criteria met" if plan.ok else "CRITERIA NOT MET (allow=true)"
    print(f"{len(pooled['entries'])} images in {pooled['units']} videos/units -> "
          f"{', '.join(f'{n} {sizes[n]}' for n in names)} ({verdict})")
    print(f"package: {out_root}\nreport: {report_path}")
    return report


def run_stats(cfg: DictConfig) -> dict[str, Any]:
    """Per-split class statistics, PNG plots and a mosaic (stats.json, stats.md) in the run directory."""
    from segval.dataset.package import DatasetPackage
    from segval.qa.stats import compute_stats, write_report

    require(cfg, "root", hint="(root=<dataset package folder>)")
    pkg = DatasetPackage.open(cfg.root)
    stats = compute_stats(pkg, list(cfg.splits) if cfg.splits else None, size_bins=list(cfg.size_bins),
                          progress=progress("stats"))
    out = Path(cfg.paths.output_dir)
    files = write_report(stats, pkg, out, mosaic_n=int(cfg.mosaic.n), seed=int(cfg.mosaic.seed),
                         alpha=float(cfg.mosaic.alpha))
    for s, st in stats["splits"].items():
        top = sorted(st["pixel_share"].items(), key=lambda kv: -kv[1])[:3]
        rare = [nm for nm, v in st["images_per_class"].items() if v == 0]
        print(f"{s}: {st['images']} images, {sum(st['instances'].values())} instances; largest pixel shares: "
              + ", ".join(f"{nm} {100 * v:.1f}%" for nm, v in top)
              + (f"; classes in no image: {rare}" if rare else ""))
    print(f"stats: {files['json']}\nreport: {files['markdown']}\nplots: {len(files['plots'])} PNGs in {out}"
          + (f"\nmosaic: {files['mosaic']}" if "mosaic" in files else ""))
    return files


# ---------------------------------------------------------------------------------------- clean
def run_clean(cfg: DictConfig) -> dict[str, Any]:
    """Clean every instance mask (:mod:`segval.qa.cleanup`) into a new package version; changes.json goes into
    the run directory."""
    from segval.dataset.package import DatasetPackage
    from segval.dataset.versioning import new_version
    from segval.qa.cleanup import clean_package

    root, out = _check_clean_config(cfg)
    pkg = DatasetPackage.open(root)
    version = new_version(pkg.version, None if cfg.version is None else str(cfg.version))
    params = {c.id: _clean_params(cfg.steps, c.group) for c in pkg.taxonomy}
    steps_text = _steps_text(cfg.steps)
    changes = clean_package(root, out, version=version, params=params, skip_crowd=bool(cfg.skip_crowd),
                            steps_text=steps_text, steps=OmegaConf.to_container(cfg.steps, resolve=True),
                            progress=lambda it, desc: progress(desc)(it))
    changes_path = write_json(Path(cfg.paths.output_dir) / "changes.json", changes)
    per_class = changes["pixels_changed_per_class"]
    deprecated = changes["deprecated_ids"]
    print(f"steps: {steps_text}")
    print(f"annotations changed: {changes['annotations_changed']} of {changes['annotations']}; pixels changed per "
          "class: " + (", ".join(f"{n} +{v['pixels_added']}/-{v['pixels_removed']}" for n, v in per_class.items())
                       or "none"))
    print("deprecated annotation ids (empty after cleaning): " + (", ".join(map(str, deprecated)) or "none"))
    print(f"new package: {out} (version {version}, from {pkg.version} at {root}, which is unchanged)")
    print(f"changes: {changes_path}")
    if (root / "panoptic").exists():
        print("warning: panoptic/ was copied unchanged; regenerate it from the new annotations")
    return changes


def _check_clean_config(cfg: DictConfig) -> tuple[Path, Path]:
    require(cfg, "root", "output", hint="(root=<source package>, output=<new package folder, must not exist>)")
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


def _clean_params(steps: DictConfig, group: str) -> Any:
    """The :class:`~segval.qa.cleanup.CleanParams` of a class of ``group`` (steps skipped for its group off)."""
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


def _steps_text(steps: DictConfig) -> str:
    """The enabled steps in words (for the CHANGELOG and the console)."""
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


# ---------------------------------------------------------------------------------------- versions
def run_release(cfg: DictConfig) -> dict[str, Any]:
    """Release a package as ``<releases>/<X.Y.Z>/`` (read-only, never overwritten; see :mod:`segval.release.versions`)."""
    from segval.dataset.versioning import BUMPS
    from segval.release.versions import release

    require(cfg, "source", "releases")
    if not cfg.version and cfg.bump not in BUMPS:
        raise ConfigError(f"bump must be one of {list(BUMPS)} (or give version=X.Y.Z), got {cfg.bump!r}")
    res = release(cfg.source, cfg.releases, bump=cfg.bump, version=str(cfg.version) if cfg.version else None,
                  notes=str(cfg.notes or ""), progress=progress("diff"), baseline=cfg.get("baseline") or None,
                  domain_gap=cfg.get("domain_gap") or None, loaders=bool(cfg.get("loaders", True)))
    if res["diff"] is not None:
        t = res["diff"]["totals"]
        print(f"changes since {res['previous']}: images " + ", ".join(f"{v} {k}" for k, v in t["images"].items())
              + "; annotations " + ", ".join(f"{v} {k}" for k, v in t["annotations"].items()))
    else:
        print(f"first release (version from {Path(cfg.source) / 'dataset.yaml'}"
              f"{' overridden by version=' if cfg.version else ''})")
    if res.get("baseline"):
        s = res["baseline"]["summary"]
        miou = s["summary"].get("mIoU")
        print(f"baseline: {s['model']} step {s['step']}, {s['split']} mIoU "
              f"{'n/a' if miou is None else f'{100 * miou:.2f}%'} -> {Path(res['path']) / 'baseline'} "
              f"({', '.join(res['baseline']['files'])})")
    if res.get("loaders"):
        print(f"loaders: {Path(res['path']) / 'loaders'} ({', '.join(res['loaders'])})")
    print(f"released {res['version']} (read-only): {res['path']}\ncard: {Path(res['path']) / 'README.md'}\n"
          f"changelog: {Path(cfg.releases) / 'CHANGELOG.md'}")
    return res


def run_diff(cfg: DictConfig) -> dict[str, Any]:
    """Ids added / changed / deprecated / removed and pixels per class between two packages (diff.json, diff.md)."""
    from segval.dataset.package import DatasetPackage
    from segval.release.versions import diff_packages, format_diff

    require(cfg, "a", "b")
    diff = diff_packages(DatasetPackage.open(cfg.a), DatasetPackage.open(cfg.b), progress=progress("diff"))
    out = Path(cfg.paths.output_dir)
    md = format_diff(diff)
    write_json(out / "diff.json", diff)
    write_text(out / "diff.md", md)
    print(md.rstrip())
    print(f"diff: {out / 'diff.json'}\nreport: {out / 'diff.md'}")
    return diff


def run_publish(cfg: DictConfig) -> dict[str, Any]:
    """Upload a released version to the Hugging Face Hub (``publish.dry_run=true`` lists the files)."""
    from segval.release.publish import format_plan, publish
    from segval.dataset.versioning import parse_version
    from segval.release.versions import list_releases

    if not cfg.repo_id:
        raise ConfigError("missing repo_id=<user or organisation>/<name> (the Hub dataset repository)")
    if cfg.root and cfg.releases:
        raise ConfigError("give root=<releases>/<X.Y.Z> or releases=<folder> [version=X.Y.Z], not both")
    if cfg.root:
        root = Path(cfg.root)
    elif cfg.releases:
        released = list_releases(cfg.releases)
        if not released:
            raise DatasetError("no released version here; run `segval dataset release` first", path=cfg.releases)
        version = ".".join(map(str, parse_version(str(cfg.version)))) if cfg.version else released[-1]
        if version not in released:
            raise ConfigError(f"version {version} is not released in {cfg.releases} (released: {released})")
        root = Path(cfg.releases) / version
    else:
        raise ConfigError("missing root=<releases>/<X.Y.Z> (or releases=<folder> [version=X.Y.Z])")
    res = publish(root, str(cfg.repo_id), token=None, private=bool(cfg.publish.private),  # HF_TOKEN / login
                  dry_run=bool(cfg.publish.dry_run))
    out = Path(cfg.paths.output_dir) / "publish.json"
    write_json(out, res)
    print(format_plan(res))
    if res["dry_run"]:
        print("dry run: nothing was uploaded (publish.dry_run=false uploads)")
    else:
        print(f"published {res['name']} {res['version']} as commit {res['commit']} + tag {res['tag']}: {res['url']}")
    print(f"plan: {out}")
    return res


# ---------------------------------------------------------------------------------------- guideline
def _guideline_inputs(cfg: DictConfig) -> dict[str, Any]:
    """findings / metrics, per_image rows and their split from ``run_dir``; the queue; the agreement file."""
    import json

    from segval.analysis.run_files import load_agreement
    from segval.metrics.per_image_csv import read_per_image_csv
    from segval.relabel.queue import read_queue

    out: dict[str, Any] = {"findings": None, "per_image": None, "run_split": None, "queue": None, "agreement": None,
                           "sources": {}}
    if cfg.run_dir:
        run = Path(str(cfg.run_dir))
        files = {n: run / n for n in ("findings.json", "metrics.json", "per_image.csv") if (run / n).is_file()}
        if not run.is_dir() or not files:
            raise ConfigError(f"run_dir={run} holds no findings.json, metrics.json or per_image.csv; give a "
                              "`segval analyze` run directory (or a train / eval run)")
        doc_path = files.get("findings.json") or files.get("metrics.json")
        if doc_path is not None:
            try:
                out["findings"] = json.loads(doc_path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as err:
                raise DatasetError(f"cannot read it as JSON ({err})", path=doc_path) from None
            out["run_split"] = out["findings"].get("split")
            out["sources"]["findings" if doc_path.name == "findings.json" else "metrics"] = doc_path
        if "per_image.csv" in files:
            out["per_image"] = read_per_image_csv(files["per_image.csv"])
            out["sources"]["per_image"] = files["per_image.csv"]
    if cfg.queue:
        out["queue"] = read_queue(str(cfg.queue))
        out["sources"]["queue"] = out["queue"].pop("_path")
    if cfg.agreement:
        path = Path(str(cfg.agreement))
        path = path / "agreement.json" if path.is_dir() else path
        out["agreement"] = load_agreement(str(path))
        out["sources"]["agreement"] = path
    return out


def run_guideline(cfg: DictConfig) -> dict[str, Any]:
    """The annotation guideline of a package (:mod:`segval.qa.guideline`, drawn by :mod:`segval.report.guideline`):
    into the run directory, or with ``into_package=true`` into ``<package>/guideline/`` + a CHANGELOG entry."""
    from segval.dataset.versioning import prepend_changelog
    from segval.qa.guideline import GuidelineConfig, build_guideline, changelog_entry, check_into_package
    from segval.report.guideline import write_guideline

    pkg = open_package(cfg)
    into = bool(cfg.get("into_package"))
    if into:
        check_into_package(pkg)  # before the scan: a read-only release is refused at once
    g = OmegaConf.to_container(cfg.guideline, resolve=True)
    side = int(g.pop("side", 160))
    gcfg = GuidelineConfig(**{**g, "min_size": tuple(g["min_size"]), "visible_only_groups": tuple(g["visible_only_groups"])})
    inputs = _guideline_inputs(cfg)
    content = build_guideline(pkg, findings=inputs["findings"], per_image=inputs["per_image"], queue=inputs["queue"],
                              agreement=inputs["agreement"], run_split=inputs["run_split"], config=gcfg,
                              sources=inputs["sources"], progress=progress("guideline"))
    doc = content.doc
    out = pkg.root / "guideline" if into else output_dir(cfg)
    paths = write_guideline(out, doc, content.crops, side=side)
    if into:
        prepend_changelog(pkg.root, changelog_entry(doc))
    empty = [c["name"] for c in doc["classes"] if c["no_examples"]]
    n_hard = sum(len(c["hard"] or []) for c in doc["classes"])
    print(f"guideline of {pkg.name} {pkg.version} (content hash {doc['dataset']['content_hash'][:12]}): "
          f"{len(doc['classes'])} classes, {sum(len(c['examples']) for c in doc['classes'])} positive examples, "
          + (f"{n_hard} hard examples, " if doc["hard_examples"] else "no hard examples (no run / queue), ")
          + f"{len(doc['pairs'])} pair(s) to clarify")
    if empty:
        print(f"classes with no example yet: {', '.join(empty)}")
    for p in doc["pairs"]:
        print(f"pair to clarify: {p['pair'][0]} vs {p['pair'][1]}")
    for n in doc["notes"]:
        print(f"note: {n}")
    if into:
        print(f"written into the package: {out} (CHANGELOG: {pkg.root / 'CHANGELOG.md'})")
    print(f"guideline: {paths['html']}\n           {paths['markdown']}\n           {paths['json']}")
    return {"doc": doc, "paths": {k: str(v) for k, v in paths.items()}}


main_import = segval_app("dataset_import")(run_import)
main_export = segval_app("dataset_export")(run_export)
main_split = segval_app("dataset_split")(run_split)
main_stats = segval_app("dataset_stats")(run_stats)
main_clean = segval_app("dataset_clean")(run_clean)
main_release = segval_app("dataset_release")(run_release)
main_diff = segval_app("dataset_diff")(run_diff)
main_publish = segval_app("dataset_publish")(run_publish)
main_guideline = segval_app("dataset_guideline")(run_guideline)

if __name__ == "__main__":
    dispatch("segval.commands.dataset", {"import": main_import, "export": main_export, "split": main_split,
                                         "stats": main_stats, "clean": main_clean, "release": main_release,
                                         "diff": main_diff, "publish": main_publish,
                                         "guideline": main_guideline})
