"""`segval data render`: the demo tabletop package (pybullet, the `demo` extra)."""

from __future__ import annotations

import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from segval.app import segval_app
from segval.errors import SegvalError


@segval_app("render")
def main(cfg: DictConfig) -> None:
    try:
        from segval.demo.render import render_dataset
    except ImportError as err:
        raise SegvalError(f"rendering needs pybullet: pip install 'segval[demo]' ({err})") from err
    r = cfg.render
    root = Path(r.root)
    if root.exists() and not r.overwrite:
        print(f"demo data already at {root} (render.overwrite=true to render it again)")
        return
    start = time.perf_counter()
    out = render_dataset(
        root,
        videos=OmegaConf.to_container(r.videos),
        frames_per_video=r.frames_per_video,
        width=r.width,
        height=r.height,
        seed=r.seed,
        name=r.name,
        version=str(r.version),
        overwrite=r.overwrite,
    )
    frames = sum(r.videos.values()) * r.frames_per_video
    print(f"rendered {frames} frames in {time.perf_counter() - start:.1f} s -> {out}")


if __name__ == "__main__":
    main()
