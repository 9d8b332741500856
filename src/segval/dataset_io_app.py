"""`segval dataset import` / `segval dataset export`: convert datasets to and from packages.

    segval dataset import format=labelme source=<labelme folder> output=<package> name=apc version=1.0.0
    segval dataset import format=coco source=<file.json> coco.images=<folder> output=<package>
    segval dataset import format=label_maps source=<export folder> output=<package>
    segval dataset export root=<package> format=coco|label_maps|panoptic output=<folder>

The first word after `dataset` picks the command (this module's :func:`main` dispatches).
"""

from __future__ import annotations

import sys
from pathlib import Path

from omegaconf import DictConfig

from segval.app import segval_app
from segval.errors import ConfigError

IMPORT_FORMATS = ("labelme", "coco", "label_maps")


def _progress(desc: str):
    from tqdm import tqdm

    return lambda it: tqdm(it, desc=desc, unit="img", disable=None)


def _require(cfg: DictConfig, *keys: str) -> None:
    missing = [k for k in keys if cfg.get(k) in (None, "")]
    if missing:
        raise ConfigError(f"missing {', '.join(f'{k}=...' for k in missing)} on the command line")


@segval_app("dataset_import")
def import_main(cfg: DictConfig) -> dict:
    _require(cfg, "source", "output")
    fmt = cfg.format
    if fmt not in IMPORT_FORMATS:
        raise ConfigError(f"format must be one of {list(IMPORT_FORMATS)}, got {fmt!r}")
    output = Path(cfg.output)
    if output.exists():
        raise ConfigError(f"{output} already exists; refusing to overwrite it (choose another output)")
    if fmt == "labelme":
        from segval.dataset.labelme import import_labelme

        source = Path(cfg.source)
        res = import_labelme(source, output, name=cfg.name or source.resolve().name, version=cfg.version or "1.0.0",
                             split=cfg.split, labels=cfg.labelme.labels,
                             skip_unsupported=bool(cfg.labelme.skip_unsupported), progress=_progress("labelme"))
        for reason in res["skipped"]:
            print(f"skipped: {reason}")
        print(f"taxonomy ({'from ' + res['label_list'] if res['label_list'] else 'first-seen order'}): "
              f"{res['taxonomy']}")
    elif fmt == "coco":
        from segval.dataset.export import import_coco_export

        res = import_coco_export(cfg.source, output, name=cfg.name, version=cfg.version, images=cfg.coco.images,
                                 split=cfg.split, background=cfg.coco.background, progress=_progress("coco"))
    else:
        from segval.dataset.export import import_label_maps

        res = import_label_maps(cfg.source, output, name=cfg.name, version=cfg.version,
                                images=cfg.label_maps.images, taxonomy=cfg.label_maps.taxonomy, split=cfg.split,
                                progress=_progress("label maps"))
        if res.get("void_kept"):
            print("label maps hold void (255): the package has no background id, background is an annotation")
    print(f"imported {res['images']} images, {res.get('instances', res.get('annotations'))} instances "
          f"from {fmt} {cfg.source}\npackage written: {output}")
    return res


@segval_app("dataset_export")
def export_main(cfg: DictConfig) -> dict:
    from segval.dataset.export import FORMATS, export_package
    from segval.dataset.package import DatasetPackage

    _require(cfg, "root", "output")
    if cfg.format not in FORMATS:
        raise ConfigError(f"format must be one of {list(FORMATS)}, got {cfg.format!r}")
    pkg = DatasetPackage.open(cfg.root)
    res = export_package(pkg, cfg.output, cfg.format, splits=list(cfg.splits) if cfg.splits else None,
                         overwrite=bool(cfg.overwrite), progress=_progress("export"))
    print(f"exported {pkg.name} {pkg.version} ({', '.join(res['splits'])}): {res['images']} images, "
          f"{res['annotations']} {'segments' if cfg.format == 'panoptic' else 'annotations'} as {cfg.format}\n"
          f"written: {res['output']}")
    return res


def main() -> None:
    """Dispatch ``import`` / ``export`` (the first argument)."""
    args = sys.argv[1:]
    if not args or args[0] not in ("import", "export"):
        print("usage: segval dataset import|export [overrides]  (stats: segval dataset stats)", file=sys.stderr)
        sys.exit(2)
    sys.argv = [sys.argv[0], *args[1:]]
    (import_main if args[0] == "import" else export_main)()


if __name__ == "__main__":
    main()
