"""`segval data render` / `segval data check`: the demo tabletop package, and checking any dataset.

    segval data render render.videos.train=20 render.root=data/demo_big
    segval data check data=coco data.annotations=<export.json> data.images=<folder>
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from segval.commands._common import build_datamodule, dispatch, segval_app
from segval.errors import ConfigError, SegvalError
from segval.io import write_json


def run_render(cfg: DictConfig) -> Path | None:
    """Render the demo package (pybullet, the `demo` extra) unless it exists; its root, or None when kept."""
    try:
        from segval.demo.render import render_dataset
    except ImportError as err:
        raise SegvalError(f"rendering needs pybullet: pip install 'segval[demo]' ({err})") from err
    r = cfg.render
    root = Path(r.root)
    if root.exists() and not r.overwrite:
        print(f"demo data already at {root} (render.overwrite=true to render it again)")
        return None
    start = time.perf_counter()
    variant = str(r.get("variant") or "standard")
    if variant == "standard":
        out = render_dataset(root, videos=OmegaConf.to_container(r.videos), frames_per_video=r.frames_per_video,
                             width=r.width, height=r.height, seed=r.seed, name=r.name, version=str(r.version),
                             overwrite=r.overwrite)
    else:
        from segval.demo.scene_variants import VARIANTS, render_variant

        if variant not in VARIANTS:
            raise ConfigError(f"render.variant must be one of {list(VARIANTS)}, got {variant!r}")
        out = render_variant(root, variant=variant, videos=OmegaConf.to_container(r.videos),
                             frames_per_video=r.frames_per_video, width=r.width, height=r.height, seed=r.seed,
                             version=str(r.version), overwrite=r.overwrite)
    frames = sum(r.videos.values()) * r.frames_per_video
    print(f"rendered {frames} frames in {time.perf_counter() - start:.1f} s -> {out}")
    return out


def run_check(cfg: DictConfig) -> dict[str, Any]:
    """Load and validate every image and annotation of the chosen splits; print and return the summary."""
    from segval.dataset.summary import format_summary, summarize
    from segval.dataset.validate import validate_package

    dm = build_datamodule(cfg)
    pkg = dm.load()
    splits = list(cfg.splits) if cfg.splits else list(pkg.splits)
    validate_package(pkg, splits=splits)
    summary = summarize(pkg, splits=splits)
    summary["warnings"] = list(pkg.warnings)
    print(format_summary(summary))
    # how the export's COCO dialect was read: logged by the data module when it opened the file (one line per kind)
    note = (f" ({len(pkg.warnings)} warning(s) logged above: what was coerced or recomputed; also in summary.json)"
            if pkg.warnings else "")
    print(f"\n{pkg.name} {pkg.version}: OK, no problems found in {', '.join(splits)}{note}")
    if cfg.save_summary:
        path = write_json(Path(cfg.paths.output_dir) / "summary.json", summary)
        print(f"summary: {path}")
    return summary


main_render = segval_app("data_render")(run_render)
main_check = segval_app("data_check")(run_check)

if __name__ == "__main__":
    dispatch("segval.commands.data", {"render": main_render, "check": main_check})
