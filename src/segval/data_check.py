"""`segval data check`: load and validate a dataset package or COCO export, print a summary."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from segval.app import segval_app
from segval.io import write_json
from segval.runtime import build_datamodule


@segval_app("check")
def main(cfg: DictConfig) -> None:
    from segval.dataset.summary import format_summary, summarize
    from segval.dataset.validate import validate_package

    dm = build_datamodule(cfg)
    pkg = dm.load()
    splits = list(cfg.splits) if cfg.splits else list(pkg.splits)
    validate_package(pkg, splits=splits)
    summary = summarize(pkg, splits=splits)
    print(format_summary(summary))
    print(f"\n{pkg.name} {pkg.version}: OK, no problems found in {', '.join(splits)}")
    if cfg.save_summary:
        path = write_json(Path(cfg.paths.output_dir) / "summary.json", summary)
        print(f"summary: {path}")


if __name__ == "__main__":
    main()
