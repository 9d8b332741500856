"""`segval dataset stats root=<package>`: per-split class statistics, PNG plots and a mosaic.

Writes stats.json, stats.md, <split>_*.png and mosaic.png into the run directory.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from segval.app import segval_app
from segval.errors import ConfigError


@segval_app("dataset_stats")
def main(cfg: DictConfig) -> dict:
    from tqdm import tqdm

    from segval.dataset.package import DatasetPackage
    from segval.qa.stats import compute_stats, write_report

    if not cfg.root:
        raise ConfigError("missing root=<dataset package folder> on the command line")
    pkg = DatasetPackage.open(cfg.root)
    stats = compute_stats(pkg, list(cfg.splits) if cfg.splits else None, size_bins=list(cfg.size_bins),
                          progress=lambda it: tqdm(it, desc="stats", unit="img", disable=None))
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


if __name__ == "__main__":
    main()
