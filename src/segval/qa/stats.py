"""Dataset statistics per split: pixel share, instances, sizes, co-occurrence; plots and a mosaic.

Definitions (per split):

* ``pixel_share[c]``: pixels whose semantic label (the rasterisation rule of
  :mod:`segval.dataset.semantic`) is class ``c``, over all pixels of the split; ``void_share`` is
  the rest (label 255).
* ``instances[c]``: annotations of class ``c`` (``crowd[c]``: of them with ``iscrowd=1``).
* ``size_histogram[c]``: counts of annotation areas (mask pixels) in the bins ``size_bins``
  (edges in pixels; the last bin is open-ended).
* an image *contains* class ``c`` when ``c`` has at least one pixel in its semantic label map
  (so a fully hidden instance does not count; the background counts where it is visible).
* ``cooccurrence[i][j]``: images containing both class i and class j; its diagonal is
  ``images_per_class``.

Example:
    >>> stats = compute_stats(pkg, splits=["train"])            # doctest: +SKIP
    >>> write_report(stats, pkg, out_dir, mosaic_n=20, seed=0)  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from segval.dataset.package import DatasetPackage
from segval.dataset.semantic import rasterize_semantic
from segval.errors import ConfigError
from segval.io import atomic_path, write_json, write_text

#: default size-histogram bin edges in pixels (COCO small < 32^2 <= medium < 96^2 <= large lie on them)
DEFAULT_SIZE_BINS = (0, 16, 64, 256, 1024, 4096, 9216, 16384, 65536, 262144)


def _label_map(sd: Any, rec: Any, background_id: int | None) -> tuple[np.ndarray, list[Any]]:
    insts = sd.masks(rec)
    items = [(int(a["category_id"]), rl, rl.area, int(a["id"])) for a, rl in insts]
    return rasterize_semantic(rec.height, rec.width, items, background_id), insts


def compute_split_stats(
    pkg: DatasetPackage,
    split: str,
    *,
    size_bins: Sequence[int] = DEFAULT_SIZE_BINS,
    progress: Callable[[Any], Any] | None = None,
) -> dict[str, Any]:
    """Statistics of one split (see the module doc); keys are class names."""
    tax = pkg.taxonomy
    sd = pkg.split(split)
    edges = np.asarray(sorted(int(b) for b in size_bins), dtype=np.int64)
    if len(edges) < 2 or edges[0] < 0:
        raise ConfigError(f"size_bins must be >= 2 non-negative edges, got {list(size_bins)}")
    ids = tax.ids
    col = {cid: k for k, cid in enumerate(ids)}
    n = len(ids)
    pixels = np.zeros(256, dtype=np.int64)
    inst = np.zeros(n, dtype=np.int64)
    crowd = np.zeros(n, dtype=np.int64)
    hist = np.zeros((n, len(edges)), dtype=np.int64)
    cooc = np.zeros((n, n), dtype=np.int64)
    recs = progress(sd.images) if progress else sd.images
    for rec in recs:
        lm, insts = _label_map(sd, rec, tax.background_id)
        counts = np.bincount(lm.ravel(), minlength=256)
        pixels += counts
        present = np.array([counts[c] > 0 for c in ids])
        cooc += np.outer(present, present).astype(np.int64)
        for a, rl in insts:
            k = col[int(a["category_id"])]
            inst[k] += 1
            crowd[k] += int(a.get("iscrowd", 0) or 0)
            hist[k, int(np.searchsorted(edges, rl.area, side="right")) - 1] += 1
    total = int(pixels.sum())
    names = tax.names
    labels = [f"{edges[i]}-{edges[i + 1]}" for i in range(len(edges) - 1)] + [f">={edges[-1]}"]
    return {
        "split": split,
        "images": len(sd.images),
        "pixels": total,
        "classes": names,
        "pixel_share": {nm: (float(pixels[c] / total) if total else 0.0) for nm, c in zip(names, ids)},
        "void_share": float(pixels[255] / total) if total else 0.0,
        "instances": {nm: int(inst[k]) for k, nm in enumerate(names)},
        "crowd": {nm: int(crowd[k]) for k, nm in enumerate(names)},
        "size_bins": labels,
        "size_bin_edges": [int(e) for e in edges],
        "size_histogram": {nm: [int(v) for v in hist[k]] for k, nm in enumerate(names)},
        "images_per_class": {nm: int(cooc[k, k]) for k, nm in enumerate(names)},
        "cooccurrence": [[int(v) for v in row] for row in cooc],
    }


def compute_stats(
    pkg: DatasetPackage,
    splits: Sequence[str] | None = None,
    *,
    size_bins: Sequence[int] = DEFAULT_SIZE_BINS,
    progress: Callable[[Any], Any] | None = None,
) -> dict[str, Any]:
    """``{"dataset", "version", "splits": {split: compute_split_stats(...)}}``."""
    splits = list(splits) if splits else list(pkg.splits)
    for s in splits:
        if s not in pkg.splits:
            raise ConfigError(f"split {s!r} is not in the package (splits: {list(pkg.splits)})")
    return {
        "dataset": pkg.name,
        "version": pkg.version,
        "splits": {s: compute_split_stats(pkg, s, size_bins=size_bins, progress=progress) for s in splits},
    }


# ---------------------------------------------------------------------- report
def format_markdown(stats: dict[str, Any]) -> str:
    """stats.md: one table per split."""
    lines = [f"# Dataset statistics: {stats['dataset']} {stats['version']}", ""]
    for s, st in stats["splits"].items():
        lines += [f"## {s}: {st['images']} images, {st['pixels']} pixels, void {100 * st['void_share']:.2f}%", "",
                  "| class | pixel share % | instances | crowd | images |", "|---|---:|---:|---:|---:|"]
        for nm in st["classes"]:
            lines.append(f"| {nm} | {100 * st['pixel_share'][nm]:.2f} | {st['instances'][nm]} | {st['crowd'][nm]} "
                         f"| {st['images_per_class'][nm]} |")
        lines += ["", "Instance sizes (pixels):", "", "| class | " + " | ".join(st["size_bins"]) + " |",
                  "|---|" + "---:|" * len(st["size_bins"])]
        for nm in st["classes"]:
            lines.append(f"| {nm} | " + " | ".join(str(v) for v in st["size_histogram"][nm]) + " |")
        lines += ["", "Co-occurrence (images containing both):", "", "| | " + " | ".join(st["classes"]) + " |",
                  "|---|" + "---:|" * len(st["classes"])]
        for nm, row in zip(st["classes"], st["cooccurrence"]):
            lines.append(f"| {nm} | " + " | ".join(str(v) for v in row) + " |")
        lines.append("")
    return "\n".join(lines)


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    return path


def plot_split(st: dict[str, Any], colors: Sequence[tuple[int, int, int]], out_dir: Path) -> list[Path]:
    """PNG plots of one split: pixel share, instance counts, size histograms, co-occurrence."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s, names = st["split"], st["classes"]
    cols = [tuple(c / 255 for c in rgb) for rgb in colors]
    x = np.arange(len(names))
    out = []
    w = max(6.0, 0.5 * len(names) + 2)
    for key, title, fname in (("pixel_share", "pixel share", "pixel_share"),
                              ("instances", "instances", "instances"),
                              ("images_per_class", "images containing the class", "images_per_class")):
        fig, ax = plt.subplots(figsize=(w, 4))
        vals = [st[key][nm] * (100 if key == "pixel_share" else 1) for nm in names]
        ax.bar(x, vals, color=cols, edgecolor="black", linewidth=0.5)
        ax.set_xticks(x, names, rotation=45, ha="right", fontsize=8)
        ax.set_ylabel("%" if key == "pixel_share" else "count")
        ax.set_title(f"{s}: {title}")
        fig.tight_layout()
        out.append(_save(fig, out_dir / f"{s}_{fname}.png"))
    fig, ax = plt.subplots(figsize=(8, 4))
    bx = np.arange(len(st["size_bins"]))
    for nm, c in zip(names, cols):
        h = st["size_histogram"][nm]
        if sum(h):
            ax.plot(bx, h, marker="o", color=c if sum(c) < 2.9 else (0.5, 0.5, 0.5), label=nm)
    ax.set_xticks(bx, st["size_bins"], rotation=45, ha="right", fontsize=8)
    ax.set_xlabel("instance area (pixels)")
    ax.set_ylabel("instances")
    ax.set_title(f"{s}: instance size histogram per class")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    fig.tight_layout()
    out.append(_save(fig, out_dir / f"{s}_size_histogram.png"))
    fig, ax = plt.subplots(figsize=(w, w * 0.8))
    m = np.asarray(st["cooccurrence"])
    im = ax.imshow(m, cmap="viridis")
    ax.set_xticks(x, names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(x, names, fontsize=8)
    if len(names) <= 20:
        for i in range(len(names)):
            for j in range(len(names)):
                ax.text(j, i, str(m[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if m[i, j] < m.max() / 2 else "black")
    fig.colorbar(im, ax=ax, label="images containing both")
    ax.set_title(f"{s}: class co-occurrence")
    fig.tight_layout()
    out.append(_save(fig, out_dir / f"{s}_cooccurrence.png"))
    return out


def mosaic(
    pkg: DatasetPackage,
    path: str | os.PathLike,
    *,
    n: int = 20,
    seed: int = 0,
    splits: Sequence[str] | None = None,
    alpha: float = 0.5,
    tile: int = 256,
    columns: int = 5,
) -> dict[str, Any]:
    """A grid of ``n`` random images (seeded) with class colours overlaid and a legend.

    Returns:
        ``{"path", "images": ["split/file_name", ...]}`` (the picked images, in grid order).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch
    from PIL import Image

    if n < 1 or not 0 <= alpha <= 1:
        raise ConfigError(f"mosaic needs n >= 1 and 0 <= alpha <= 1, got n={n}, alpha={alpha}")
    tax = pkg.taxonomy
    splits = list(splits) if splits else list(pkg.splits)
    pool = [(s, rec) for s in splits for rec in pkg.split(s).images]
    if not pool:
        raise ConfigError(f"no images in splits {splits} to draw a mosaic from")
    rng = np.random.default_rng(seed)
    pick = sorted(rng.choice(len(pool), size=min(n, len(pool)), replace=False).tolist())
    lut = np.zeros((256, 3), dtype=np.float32)
    show = np.zeros(256, dtype=bool)
    for c in tax:
        lut[c.id] = c.color
        show[c.id] = c.id != tax.background_id
    cols = min(columns, len(pick))
    rows = (len(pick) + cols - 1) // cols
    width = max(2.6 * cols, 6.0)
    longest = max(len(c.name) for c in tax)
    ncol = max(1, min(len(tax), int(width * 100 // (6 * longest + 40))))
    legend_rows = (len(tax) + ncol - 1) // ncol
    legend_h = 0.2 * legend_rows + 0.2
    height = 2.6 * rows + 0.5 + legend_h
    fig, axes = plt.subplots(rows, cols, figsize=(width, height), squeeze=False)
    seen: set[int] = set()
    names = []
    for ax in axes.ravel():
        ax.axis("off")
    for ax, k in zip(axes.ravel(), pick):
        s, rec = pool[k]
        sd = pkg.split(s)
        img = sd.read_image(rec).astype(np.float32)
        lm, _ = _label_map(sd, rec, tax.background_id)
        m = show[lm]
        img[m] = (1 - alpha) * img[m] + alpha * lut[lm[m]]
        out = Image.fromarray(img.clip(0, 255).astype(np.uint8))
        out.thumbnail((tile, tile))
        ax.imshow(np.asarray(out))
        ax.set_title(f"{s}/{rec.file_name}", fontsize=6)
        seen.update(int(v) for v in np.unique(lm[m]))
        names.append(f"{s}/{rec.file_name}")
    handles = [Patch(facecolor=tuple(v / 255 for v in c.color), edgecolor="black", label=c.name)
               for c in tax if c.id in seen]
    if handles:
        fig.legend(handles=handles, loc="lower center", ncol=min(ncol, len(handles)), fontsize=7, frameon=False)
    fig.suptitle(f"{pkg.name} {pkg.version}: {len(pick)} random images (seed {seed})", fontsize=9)
    fig.tight_layout(rect=(0, legend_h / height, 1, 1 - 0.35 / height))
    _save(fig, Path(path))
    return {"path": str(path), "images": names}


def write_report(
    stats: dict[str, Any],
    pkg: DatasetPackage,
    out_dir: str | os.PathLike,
    *,
    mosaic_n: int = 20,
    seed: int = 0,
    alpha: float = 0.5,
) -> dict[str, Any]:
    """Write stats.json, stats.md, per-split PNG plots and mosaic.png into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plots = []
    for st in stats["splits"].values():
        plots += [str(p) for p in plot_split(st, pkg.taxonomy.colors, out_dir)]
    files: dict[str, Any] = {"plots": plots}
    if mosaic_n > 0:
        m = mosaic(pkg, out_dir / "mosaic.png", n=mosaic_n, seed=seed, splits=list(stats["splits"]), alpha=alpha)
        files["mosaic"] = m["path"]
        stats = {**stats, "mosaic_images": m["images"]}
    files["json"] = str(write_json(out_dir / "stats.json", stats))
    files["markdown"] = str(write_text(out_dir / "stats.md", format_markdown(stats)))
    return files
