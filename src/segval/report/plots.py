"""The report's plots as PNG bytes (matplotlib, Agg; no pyplot global state, safe in any process).

Every plot takes the per-class rows of ``findings.json`` (``name``, ``group``, ``status``, ``IoU``,
``boundary_IoU``, ``threshold``). A class whose IoU is undefined (``status == "absent"``: no ground
truth and no prediction) is drawn as "absent", never as 0.

Example:
    >>> rows = [{"name": "mug", "group": "rigid", "status": "weak", "IoU": 0.2, "threshold": 0.4},
    ...         {"name": "cable", "group": "thin", "status": "absent", "IoU": None, "threshold": 0.3}]
    >>> iou_bars(rows)[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
    True
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, NullFormatter

from segval.io import optional_float

__all__ = [
    "GROUP_COLORS",
    "PLOT_TITLES",
    "boundary_scatter",
    "boundary_scatter_figure",
    "confusion_heatmap",
    "confusion_heatmap_figure",
    "frequency_scatter",
    "frequency_scatter_figure",
    "iou_bars",
    "iou_bars_figure",
    "mpl_text",
    "report_plots",
]

#: bar / marker colour per taxonomy group (anything else: "other")
GROUP_COLORS: dict[str, str] = {
    "rigid": "#1f77b4",
    "deformable": "#ff7f0e",
    "thin": "#2ca02c",
    "stuff": "#7f7f7f",
    "other": "#9467bd",
}
ABSENT_COLOR = "#bbbbbb"
DPI = 100


def mpl_text(text: Any) -> str:
    """``text`` safe for matplotlib: ``$`` would start mathtext (``a$b$`` rendered as maths)."""
    return str(text).replace("$", r"\$")




def _group(row: Mapping[str, Any]) -> str:
    g = row.get("group")
    return g if g in GROUP_COLORS else "other"


def _is_absent(row: Mapping[str, Any]) -> bool:
    return row.get("status") == "absent" or optional_float(row.get("IoU")) is None


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", facecolor="white")
    return buf.getvalue()


def _font_size(n: int) -> float:
    """Tick-label font size that stays readable up to ~30 classes."""
    return 9.0 if n <= 12 else 8.0 if n <= 20 else 7.0


def _group_legend(groups: Sequence[str]) -> list[Patch]:
    return [Patch(facecolor=GROUP_COLORS[g], label=g) for g in GROUP_COLORS if g in set(groups)]


# ---------------------------------------------------------------------------------------- IoU bars
def iou_bars(rows: Sequence[Mapping[str, Any]], *, title: str = "Per-class IoU") -> bytes:
    """PNG of :func:`iou_bars_figure`."""
    return _png(iou_bars_figure(rows, title=title))


def iou_bars_figure(rows: Sequence[Mapping[str, Any]], *, title: str = "Per-class IoU") -> Figure:
    """Horizontal bars of per-class IoU coloured by taxonomy group, each class's threshold as a black tick.

    Args:
        rows: per-class dicts with ``name``, ``IoU`` (0..1 or None), ``group``, ``threshold``
            (0..1 or None) and ``status`` (``weak`` labels are drawn bold red, ``absent`` rows say
            "absent" instead of a bar).

    Returns:
        the figure (one bar patch per class, in order; absent classes: an empty hatched bar).
    """
    n = len(rows)
    fs = _font_size(n)
    fig = Figure(figsize=(7.0, max(2.2, 0.32 * n + 1.3)))
    ax = fig.add_subplot()
    ys = np.arange(n)
    for y, row in zip(ys, rows):
        iou = optional_float(row.get("IoU"))
        if _is_absent(row):
            ax.barh(y, 1.0, color="none", edgecolor=ABSENT_COLOR, hatch="///", linewidth=0.6, height=0.7)
            ax.text(0.02, y, "absent (no GT, no prediction)", va="center", ha="left", fontsize=fs,
                    color="#555555", style="italic")
        else:
            ax.barh(y, iou, color=GROUP_COLORS[_group(row)], height=0.7)
            ax.text(min(iou, 0.86) + 0.01, y, f"{100 * iou:.1f}", va="center", ha="left", fontsize=fs - 1)
        thr = optional_float(row.get("threshold"))
        if thr is not None:
            ax.plot([thr, thr], [y - 0.45, y + 0.45], color="black", linewidth=1.6)
    ax.set_yticks(ys, [mpl_text(r["name"]) for r in rows], fontsize=fs)
    for label, row in zip(ax.get_yticklabels(), rows):
        if row.get("status") == "weak":
            label.set_color("#c00000")
            label.set_fontweight("bold")
    ax.set_ylim(n - 0.5, -0.5)  # first class at the top
    ax.set_xlim(0, 1)
    ax.set_xlabel("IoU (MMSegmentation definition)")
    ax.set_title(mpl_text(title))
    ax.grid(axis="x", alpha=0.3)
    handles: list[Any] = _group_legend([_group(r) for r in rows if not _is_absent(r)])
    handles.append(Line2D([], [], color="black", linewidth=1.6, label="threshold"))
    ax.legend(handles=handles, loc="lower right", fontsize=fs - 1, framealpha=0.9)
    return fig


# ---------------------------------------------------------------------------------------- confusion
def confusion_heatmap(confmat: Any, class_names: Sequence[str], *, title: str = "Confusion (row-normalised)") -> bytes:
    """PNG of :func:`confusion_heatmap_figure`."""
    return _png(confusion_heatmap_figure(confmat, class_names, title=title))


def confusion_heatmap_figure(confmat: Any, class_names: Sequence[str], *,
                             title: str = "Confusion (row-normalised)") -> Figure:
    """Row-normalised confusion matrix ``conf[gt, pred]`` as a heatmap with the class names on both axes.

    Each row is divided by the ground-truth pixels of its class; a class without ground truth has
    an empty grey row ("no GT"). Cells carry percentages when there are 15 classes or fewer.

    Args:
        confmat: int[C, C] pixel counts, rows ground truth, columns prediction.
        class_names: C names.

    Returns:
        the figure (its image holds the row-normalised matrix, rows without GT masked).

    Raises:
        ValueError: ``confmat`` is not C x C for the C names given.
    """
    conf = np.asarray(confmat, dtype=np.float64)
    n = len(class_names)
    if conf.shape != (n, n):
        raise ValueError(f"confmat must be {n}x{n} for {n} class names, got shape {conf.shape}")
    gt = conf.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        norm = np.where(gt > 0, conf / np.where(gt > 0, gt, 1), np.nan)
    fs = _font_size(n)
    side = max(4.0, 0.38 * n + 2.2)
    fig = Figure(figsize=(side + 1.0, side))
    ax = fig.add_subplot()
    cmap = ListedColormap(_blues(256))
    cmap.set_bad("#e0e0e0")
    im = ax.imshow(np.ma.masked_invalid(norm), cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of the row's GT pixels")
    ylabels = [mpl_text(c) + ("  (no GT)" if gt[i, 0] == 0 else "") for i, c in enumerate(class_names)]
    ax.set_xticks(range(n), [mpl_text(c) for c in class_names], rotation=90, fontsize=fs)
    ax.set_yticks(range(n), ylabels, fontsize=fs)
    ax.set_xlabel("prediction")
    ax.set_ylabel("ground truth")
    ax.set_title(mpl_text(title))
    if n <= 15:
        for i in range(n):
            for j in range(n):
                v = norm[i, j]
                if not np.isnan(v) and v >= 0.005:
                    ax.text(j, i, f"{100 * v:.0f}", ha="center", va="center", fontsize=fs - 1,
                            color="white" if v > 0.6 else "black")
    return fig


def _blues(n: int) -> np.ndarray:
    """White -> dark blue, RGBA[n, 4] (a fixed ramp, independent of the matplotlib version's maps)."""
    t = np.linspace(0.0, 1.0, n)[:, None]
    lo, hi = np.array([1.0, 1.0, 1.0]), np.array([0.03, 0.19, 0.42])
    return np.concatenate([lo + (hi - lo) * t, np.ones((n, 1))], axis=1)


# ---------------------------------------------------------------------------------------- scatters
def _annotate_points(ax: Any, xs: Sequence[float], ys: Sequence[float], names: Sequence[str], fs: float) -> None:
    for x, y, name in zip(xs, ys, names):
        ax.annotate(mpl_text(name), (x, y), xytext=(4, 3), textcoords="offset points", fontsize=fs - 1)


def _note(fig: Figure, lines: Sequence[str]) -> None:
    if lines:
        fig.text(0.01, -0.02, "\n".join(lines), ha="left", va="top", fontsize=8, color="#444444", wrap=True)


def frequency_scatter(
    rows: Sequence[Mapping[str, Any]],
    train_stats: Mapping[str, Mapping[str, Any]],
    *,
    measure: str = "auto",
    threshold: float | None = None,
    title: str = "Training examples vs IoU",
) -> bytes | None:
    """PNG of :func:`frequency_scatter_figure` (None when it has no data)."""
    fig = frequency_scatter_figure(rows, train_stats, measure=measure, threshold=threshold, title=title)
    return None if fig is None else _png(fig)


def frequency_scatter_figure(
    rows: Sequence[Mapping[str, Any]],
    train_stats: Mapping[str, Mapping[str, Any]],
    *,
    measure: str = "auto",
    threshold: float | None = None,
    title: str = "Training examples vs IoU",
) -> Figure | None:
    """Class frequency in the TRAIN split (log x) against validation IoU, one labelled point per class.

    Args:
        rows: per-class findings rows (``name``, ``IoU``, ``group``, ``status``).
        train_stats: ``class_statistics(...)`` output: ``{name: {images, instances, pixels, ...}}``.
        measure: ``"pixels"`` (x = share of the train split's labelled pixels), ``"instances"``, or
            ``"auto"`` (pixels when any class has pixels, else instances).
        threshold: the default weak-class threshold, drawn as a dashed line.

    Returns:
        the figure (one scatter collection, one point per drawn class), or None when
        ``train_stats`` is empty. Absent classes and classes never seen in
        the train split are listed under the plot rather than drawn.
    """
    if not train_stats:
        return None
    if measure == "auto":
        measure = "pixels" if any((optional_float(s.get("pixels")) or 0) > 0 for s in train_stats.values()) else "instances"
    if measure not in ("pixels", "instances"):
        raise ValueError(f"measure must be 'pixels', 'instances' or 'auto', got {measure!r}")
    total = sum((optional_float(s.get(measure)) or 0.0) for s in train_stats.values()) or 1.0
    xs, ys, names, colors, absent, unseen = [], [], [], [], [], []
    for row in rows:
        name = row["name"]
        value = optional_float((train_stats.get(name) or {}).get(measure)) or 0.0
        if _is_absent(row):
            absent.append(name)
        elif value <= 0:
            unseen.append(name)
        else:
            xs.append(value / total if measure == "pixels" else value)
            ys.append(optional_float(row["IoU"]))
            names.append(name)
            colors.append(GROUP_COLORS[_group(row)])
    fs = _font_size(len(rows))
    fig = Figure(figsize=(7.0, 4.6))
    ax = fig.add_subplot()
    if xs:
        ax.scatter(xs, ys, c=colors, s=36, zorder=3)
        _annotate_points(ax, xs, ys, names, fs)
        ax.set_xscale("log")
        lo, hi = min(xs), max(xs)
        ax.set_xlim(lo / 2, hi * 3)
        scale = 100.0 if measure == "pixels" else 1.0
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{scale * v:g}" + ("%" if scale == 100.0 else "")))
        ax.xaxis.set_minor_formatter(NullFormatter())
    if threshold is not None:
        ax.axhline(threshold, color="black", linestyle="--", linewidth=1, label=f"threshold {threshold:.2f}")
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("share of labelled train pixels (log)" if measure == "pixels" else "train instances (log)")
    ax.set_ylabel("validation IoU")
    ax.set_title(mpl_text(title))
    ax.grid(alpha=0.3, which="both")
    handles: list[Any] = _group_legend([_group(r) for r in rows if r["name"] in set(names)])
    if threshold is not None:
        handles.append(Line2D([], [], color="black", linestyle="--", label="threshold"))
    if handles:
        ax.legend(handles=handles, fontsize=fs - 1, loc="lower right")
    notes = []
    if absent:
        notes.append("absent (no GT, no prediction; not drawn): " + ", ".join(map(mpl_text, absent)))
    if unseen:
        notes.append(f"no {measure} in the train split (cannot go on a log axis): " + ", ".join(map(mpl_text, unseen)))
    _note(fig, notes)
    return fig


def boundary_scatter(rows: Sequence[Mapping[str, Any]], *, title: str = "Boundary IoU vs IoU") -> bytes | None:
    """PNG of :func:`boundary_scatter_figure` (None when no class has a boundary IoU)."""
    fig = boundary_scatter_figure(rows, title=title)
    return None if fig is None else _png(fig)


def boundary_scatter_figure(rows: Sequence[Mapping[str, Any]], *, title: str = "Boundary IoU vs IoU") -> Figure | None:
    """Boundary IoU (y) against IoU (x) per class with the line y = x; points far below it lose their edges.

    Returns:
        the figure (one scatter collection), or None when no class has a boundary IoU.
    """
    xs, ys, names, colors, left_out = [], [], [], [], []
    for row in rows:
        iou, biou = optional_float(row.get("IoU")), optional_float(row.get("boundary_IoU"))
        if _is_absent(row) or biou is None:
            left_out.append(f"{row['name']} ({'absent' if _is_absent(row) else 'no boundary IoU'})")
            continue
        xs.append(iou)
        ys.append(biou)
        names.append(row["name"])
        colors.append(GROUP_COLORS[_group(row)])
    if not xs:
        return None
    fs = _font_size(len(rows))
    fig = Figure(figsize=(5.6, 5.2))
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color="black", linestyle="--", linewidth=1, label="y = x")
    ax.scatter(xs, ys, c=colors, s=36, zorder=3)
    _annotate_points(ax, xs, ys, names, fs)
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_aspect("equal")
    ax.set_xlabel("IoU")
    ax.set_ylabel("boundary IoU")
    ax.set_title(mpl_text(title))
    ax.grid(alpha=0.3)
    handles: list[Any] = _group_legend([_group(r) for r in rows if r["name"] in set(names)])
    handles.append(Line2D([], [], color="black", linestyle="--", label="y = x"))
    ax.legend(handles=handles, fontsize=fs - 1, loc="upper left")
    _note(fig, ["not drawn: " + ", ".join(map(mpl_text, left_out))] if left_out else [])
    return fig


# ---------------------------------------------------------------------------------------- all of them
#: file stem -> title of each report plot, in report order
PLOT_TITLES: dict[str, str] = {
    "iou_per_class": "Per-class IoU and thresholds",
    "confusion_matrix": "Confusion matrix (row-normalised)",
    "frequency_vs_iou": "Training examples vs IoU",
    "boundary_vs_iou": "Boundary IoU vs IoU",
}


def report_plots(
    findings: Mapping[str, Any],
    confmat: Any,
    *,
    train_stats: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, bytes]:
    """Every plot the report shows: ``{file stem: PNG bytes}`` in :data:`PLOT_TITLES` order.

    Plots without data (no train statistics, no boundary IoU) are left out.
    """
    rows = list(findings.get("classes") or [])
    names = [r["name"] for r in rows]
    default = optional_float((findings.get("thresholds") or {}).get("default"))
    out: dict[str, bytes | None] = {
        "iou_per_class": iou_bars(rows, title=PLOT_TITLES["iou_per_class"]),
        "confusion_matrix": confusion_heatmap(confmat, names, title=PLOT_TITLES["confusion_matrix"]),
        "frequency_vs_iou": frequency_scatter(rows, train_stats or {}, threshold=default,
                                              title=PLOT_TITLES["frequency_vs_iou"]),
        "boundary_vs_iou": boundary_scatter(rows, title=PLOT_TITLES["boundary_vs_iou"]),
    }
    return {k: v for k, v in out.items() if v is not None}
