"""``compare.md``, a self-contained ``compare.html`` (plots as embedded PNG) and ``compare.json``.

The HTML reuses the analysis report's page style, table and image helpers
(:mod:`segval.report.analyze`) and its plotting conventions (:mod:`segval.report.plots`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from segval.report.plots import _png, mpl_text
from segval.report.analyze import _CSS, _esc, _html_table, _img, _md_table
from segval.report.markdown_safe import md_escape
from segval.io import atomic_path, write_json, write_text

__all__ = ["compare_plots", "render_compare_html", "render_compare_markdown", "write_compare"]

STATUS_TEXT = {"regression": "regression", "improvement": "improvement", "within_noise": "within noise",
               "unknown": "unknown", "undefined": "–"}
STATUS_COLOR = {"regression": "#d62728", "improvement": "#2ca02c", "within_noise": "#7f7f7f",
                "unknown": "#bbbbbb", "undefined": "#eeeeee"}


def _ms(s: Mapping[str, Any]) -> str:
    """mean ± std in % (``n`` when > 1); "–" when undefined."""
    if s.get("mean") is None:
        return "–"
    out = f"{100 * s['mean']:.2f}"
    if s.get("std") is not None:
        out += f" ± {100 * s['std']:.2f}"
    return out + (f" (n={s['n']})" if s.get("n", 0) != 1 else "")


def _d(d: Mapping[str, Any], k: float) -> str:
    if d.get("delta") is None:
        return "–"
    noise = "" if d.get("noise") is None else f" (k·se {100 * k * d['noise']:.2f})"
    return f"{100 * d['delta']:+.2f}{noise}"


def _content(result: Mapping[str, Any]) -> dict[str, Any]:
    groups = result["groups"]
    k = result["noise"]["k"]
    metric_keys = [m for m in dict.fromkeys(m for g in groups for m in g["metrics"])]
    summary_cols = ["group", "dataset", "split", "runs", "seeds", *metric_keys]
    summary_rows = [[g["label"], f"{g['dataset'].get('name') or '?'} {g['dataset'].get('version') or '?'}",
                     str(g["split"]), f"{g['n_runs']}" + (f" (+{len(g['failed_runs'])} failed)" if g["failed_runs"]
                                                           else ""),
                     ", ".join(str(s) for s in g["seeds"]),
                     *[_ms(g["metrics"].get(m, {})) for m in metric_keys]] for g in groups]
    class_cols = ["class", *[g["label"] for g in groups]]
    class_rows = [[n, *[_ms(g["classes"][n]) for g in groups]] for n in result["class_names"]]
    delta_sections = []
    for d in result["deltas"]:
        rows = [[n, _d(x, k), STATUS_TEXT[x["status"]]] for n, x in d["classes"].items()]
        mrows = [[m, _d(x, k), STATUS_TEXT[x["status"]]] for m, x in d["metrics"].items()]
        f = d["findings"]
        if not f["known"]:
            fl = ["no findings on one side (run segval analyze, or keep confusion_matrix.npy in the run directories)"]
        else:
            fl = [f"weak classes that appeared: {', '.join(f['appeared']['weak']) or 'none'}",
                  f"weak classes that disappeared: {', '.join(f['disappeared']['weak']) or 'none'}",
                  f"still weak: {', '.join(f['persisting']['weak']) or 'none'}",
                  "causes that appeared: " + (", ".join(f"{c['class']}: {c['cause']}" for c in f["appeared"]["causes"])
                                              or "none"),
                  "causes that disappeared: " + (", ".join(f"{c['class']}: {c['cause']}"
                                                          for c in f["disappeared"]["causes"]) or "none")]
        delta_sections.append({"title": f"{d['group']} vs {d['baseline']}", "metric_rows": mrows, "rows": rows,
                               "status": [x["status"] for x in d["classes"].values()], "findings": fl,
                               "regressions": d["regressions"], "improvements": d["improvements"]})
    crashed = [[c.get("job") or "", c["path"], c["status"], str(c.get("reason") or "")] for c in result["crashed"]]
    return {"title": f"segval compare: by {result['group_by']}, baseline {result['baseline']}",
            "summary_cols": summary_cols, "summary_rows": summary_rows, "class_cols": class_cols,
            "class_rows": class_rows, "deltas": delta_sections, "crashed": crashed, "notes": result["notes"], "k": k}


NOISE_TEXT = ("Figures in %, mean ± sample std over seeds. A delta exceeds seed noise when |delta| > k·se, "
              "se = sqrt(s_g²/n_g + s_b²/n_b), k = {k:g}; 'unknown' when a side has a single run.")


def render_compare_markdown(result: Mapping[str, Any], plots: Mapping[str, bytes] | None = None, *,
                            plot_dir: str = "plots") -> str:
    c = _content(result)
    lines = [f"# {md_escape(c['title'])}", "", md_escape(NOISE_TEXT.format(k=c["k"])), ""]
    if c["notes"]:
        lines += ["## Notes", ""] + [f"- {md_escape(n)}" for n in c["notes"]] + [""]
    if c["crashed"]:
        lines += ["## Runs that did not finish", ""] + _md_table(["job", "path", "status", "reason"], c["crashed"])
        lines.append("")
    lines += ["## Summary", ""] + _md_table(c["summary_cols"], c["summary_rows"]) + [""]
    lines += ["## Per-class IoU", ""] + _md_table(c["class_cols"], c["class_rows"]) + [""]
    for s in c["deltas"]:
        lines += [f"## {md_escape(s['title'])}", ""]
        lines += _md_table(["figure", "delta", "seed noise"], s["metric_rows"]) + [""]
        lines += _md_table(["class", "delta", "seed noise"], s["rows"]) + [""]
        lines += [f"- {md_escape(x)}" for x in s["findings"]] + [""]
    if plots:
        lines += ["## Plots", ""] + [f"![{stem}]({plot_dir}/{stem}.png)" for stem in plots] + [""]
    return "\n".join(lines).rstrip() + "\n"


def render_compare_html(result: Mapping[str, Any], plots: Mapping[str, bytes] | None = None) -> str:
    c = _content(result)
    parts = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
             f"<title>{_esc(c['title'])}</title>",
             f"<style>{_CSS}tr.regression td{{background:#fde8e8}}tr.improvement td{{background:#e8f6e8}}</style>",
             "</head>", "<body>", f"<h1>{_esc(c['title'])}</h1>", f"<p>{_esc(NOISE_TEXT.format(k=c['k']))}</p>"]
    if c["notes"]:
        parts.append('<div class="notes"><ul>' + "".join(f"<li>{_esc(n)}</li>" for n in c["notes"]) + "</ul></div>")
    if c["crashed"]:
        parts += ["<h2>Runs that did not finish</h2>", _html_table(["job", "path", "status", "reason"], c["crashed"])]
    n_m = len(c["summary_cols"])
    parts += ["<h2>Summary</h2>", _html_table(c["summary_cols"], c["summary_rows"], numeric=range(5, n_m))]
    parts += ["<h2>Per-class IoU</h2>", _html_table(c["class_cols"], c["class_rows"],
                                                    numeric=range(1, len(c["class_cols"])))]
    for s in c["deltas"]:
        parts += [f"<h2>{_esc(s['title'])}</h2>", _html_table(["figure", "delta", "seed noise"], s["metric_rows"],
                                                               numeric=(1,)),
                  _html_table(["class", "delta", "seed noise"], s["rows"], row_classes=s["status"], numeric=(1,)),
                  "<ul>" + "".join(f"<li>{_esc(x)}</li>" for x in s["findings"]) + "</ul>"]
    if plots:
        parts.append("<h2>Plots</h2>")
        parts += [f"<figure>{_img(png, stem)}</figure>" for stem, png in plots.items()]
    parts += ["</body>", "</html>"]
    return "\n".join(parts) + "\n"


# ------------------------------------------------------------------------------------------ plots
def _bars(ax: Any, labels: Sequence[str], series: Sequence[tuple[str, Sequence[Mapping[str, Any]]]]) -> None:
    x = np.arange(len(labels))
    width = 0.8 / max(1, len(series))
    for i, (name, stats) in enumerate(series):
        means = [np.nan if s.get("mean") is None else s["mean"] for s in stats]
        errs = [0.0 if s.get("std") is None else s["std"] for s in stats]
        ax.bar(x + (i - (len(series) - 1) / 2) * width, means, width, yerr=errs, capsize=2, label=mpl_text(name))
    ax.set_xticks(x, [mpl_text(lb) for lb in labels], rotation=45 if len(labels) > 6 else 0, ha="right"
                  if len(labels) > 6 else "center")
    ax.set_ylim(0, 1)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)


def compare_plots(result: Mapping[str, Any]) -> dict[str, bytes]:
    """``{stem: PNG}``: summary figures per group, per-class IoU per group (error bars: std over seeds) and,
    for each compared group, the per-class delta against the baseline with its ±k·se band."""
    groups = result["groups"]
    out: dict[str, bytes] = {}
    metric_keys = [m for m in dict.fromkeys(m for g in groups for m in g["metrics"])]
    if metric_keys:
        fig = Figure(figsize=(max(5, 1.2 * len(metric_keys) * max(1, len(groups)) / 2 + 3), 3.6))
        ax = fig.subplots()
        _bars(ax, metric_keys, [(g["label"], [g["metrics"].get(m, {}) for m in metric_keys]) for g in groups])
        ax.set_title("Summary figures per group (mean ± std over seeds)")
        out["summary"] = _png(fig)
    names = result["class_names"]
    if names:
        fig = Figure(figsize=(max(6, 0.5 * len(names) * max(1, len(groups)) / 2 + 3), 4))
        ax = fig.subplots()
        _bars(ax, names, [(g["label"], [g["classes"][n] for n in names]) for g in groups])
        ax.set_ylabel("IoU")
        ax.set_title("Per-class IoU per group (mean ± std over seeds)")
        out["class_iou"] = _png(fig)
    k = result["noise"]["k"]
    for i, d in enumerate(result["deltas"]):
        fig = Figure(figsize=(6.5, max(2.5, 0.3 * len(names) + 1)))
        ax = fig.subplots()
        y = np.arange(len(names))
        vals = [d["classes"][n]["delta"] for n in names]
        band = [0.0 if d["classes"][n]["noise"] is None else k * d["classes"][n]["noise"] for n in names]
        colors = [STATUS_COLOR[d["classes"][n]["status"]] for n in names]
        ax.barh(y, [np.nan if v is None else v for v in vals], xerr=band, color=colors, capsize=2)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_yticks(y, [mpl_text(n) for n in names])
        ax.invert_yaxis()
        ax.set_xlabel("IoU delta (error bar: ±k·se)")
        ax.set_title(mpl_text(f"{d['group']} vs {d['baseline']}: red = regression beyond noise, "
                              "green = improvement, grey = within noise, light = unknown"), fontsize=8)
        ax.grid(axis="x", alpha=0.3)
        out[f"delta_{i}"] = _png(fig)
    return out


def write_compare(result: Mapping[str, Any], out_dir: str | Path, *, plots: bool = True) -> dict[str, Path]:
    """Write ``compare.json``, ``compare.md``, ``compare.html`` and ``plots/*.png`` into ``out_dir`` (atomically,
    file by file)."""
    out_dir = Path(out_dir)
    pngs = compare_plots(result) if plots else {}
    for stem, png in pngs.items():
        with atomic_path(out_dir / "plots" / f"{stem}.png", suffix=".png") as tmp:
            tmp.write_bytes(png)
    return {"json": write_json(out_dir / "compare.json", result),
            "markdown": write_text(out_dir / "compare.md", render_compare_markdown(result, pngs)),
            "html": write_text(out_dir / "compare.html", render_compare_html(result, pngs))}
