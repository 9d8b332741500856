"""``report.md`` and a self-contained ``report.html`` from findings, metrics and the plots.

Both documents carry the same content, built once by :func:`report_content`: summary figures, the
per-class table (IoU / Acc / Dice / boundary IoU / threshold / status), the weak classes with their
ranked causes and actions, the worst images, and the plots. The HTML embeds every plot as a base64
PNG with inline CSS (no external asset), and every piece of text in it is HTML-escaped; the
Markdown escapes Markdown syntax in names and sentences. An undefined figure of a class absent from
ground truth and prediction is written "absent", never 0.

Example:
    >>> findings = {"split": "val", "summary": {"mIoU": 0.5, "weak_classes": [], "absent_classes": []},
    ...             "classes": [{"name": "mug", "status": "ok", "IoU": 0.5}]}
    >>> "mug" in render_markdown(ReportInputs(findings))
    True
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segval.report.markdown_safe import md_escape
from segval.report.mosaic import select_worst_images
from segval.report.plots import PLOT_TITLES
from segval.io import optional_float
from segval.io import atomic_dir

__all__ = ["ReportInputs", "render_html", "render_markdown", "report_content", "write_report"]

MOSAIC_STEM = "worst_images"
#: the most rows of the worst-images table and causes / images listed per weak class
MAX_WORST_ROWS = 12
MAX_WORST_PER_CLASS = 5


@dataclass
class ReportInputs:
    """What a report is made of.

    Attributes:
        findings: the ``findings.json`` document (schema_version 1).
        metrics: the ``metrics.json`` document, for Dice, pixel counts and the summary figures.
        per_image: rows of ``per_image.csv`` (numbers parsed), or None.
        plots: ``{file stem: PNG bytes}`` (see :func:`segval.report.plots.report_plots`).
        mosaic: PNG bytes of the worst-images mosaic, or None.
        notes: sentences about what was missing or assumed (shown near the top).
        source: the run directory analysed (shown in the header).
    """

    findings: Mapping[str, Any]
    metrics: Mapping[str, Any] | None = None
    per_image: Sequence[Mapping[str, Any]] | None = None
    plots: Mapping[str, bytes] = field(default_factory=dict)
    mosaic: bytes | None = None
    notes: Sequence[str] = ()
    source: str | None = None


# ---------------------------------------------------------------------------------------- formatting


def _pct(x: Any, *, absent: bool = False) -> str:
    """0..1 -> "12.34"; undefined -> "absent" for an absent class, else "–"."""
    v = optional_float(x)
    if v is None:
        return "absent" if absent else "–"
    return f"{100 * v:.2f}"


def _esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


# ---------------------------------------------------------------------------------------- content
def _worst_label(name: str | None, w: Mapping[str, Any]) -> str:
    """"disc (160 px missed)": the class and the image's score (pixels of the class predicted as another class)."""
    score = optional_float(w.get("score"))
    detail = f"{score:,.0f} px missed" if score is not None else str(w.get("reason") or "")
    if name is None:
        return detail
    return f"{name} ({detail})" if detail else name


def report_content(inputs: ReportInputs) -> dict[str, Any]:
    """The report as plain data (strings, unescaped): title, header lines, notes, summary rows,
    the class table, weak-class sections, the worst-images table and the plots in order."""
    f, m = inputs.findings, inputs.metrics or {}
    ds = f.get("dataset") or m.get("dataset") or {}
    split = f.get("split") or m.get("split") or "?"
    title = f"segval report: {ds.get('name') or 'dataset'} {ds.get('version') or ''} / {split}".replace("  ", " ")
    header = []
    if inputs.source:
        header.append(("run", str(inputs.source)))
    if m.get("checkpoint"):
        header.append(("checkpoint", str(m["checkpoint"])))
    step = f.get("step", m.get("step"))
    if step is not None:
        header.append(("step", str(step)))
    if ds.get("source"):
        header.append(("dataset", str(ds["source"])))

    classes = list(f.get("classes") or [])
    metric_rows = {r["name"]: r for r in m.get("per_class") or []}
    total_gt = sum(int(r.get("gt_pixels") or 0) for r in metric_rows.values())

    # summary figures
    fsum, msum = f.get("summary") or {}, m.get("summary") or {}
    summary: list[tuple[str, str]] = []
    miou = fsum.get("mIoU", msum.get("mIoU"))
    summary.append(("mIoU (%)", _pct(miou)))
    for key in ("mAcc", "aAcc", "fwIoU", "mDice"):
        if key in msum:
            summary.append((f"{key} (%)", _pct(msum[key])))
    weak = list(fsum.get("weak_classes") or [c["name"] for c in classes if c.get("status") == "weak"])
    absent = list(fsum.get("absent_classes") or [c["name"] for c in classes if c.get("status") == "absent"])
    summary.append(("classes", str(len(classes))))
    summary.append(("weak classes", f"{len(weak)}: {', '.join(weak)}" if weak else "none"))
    summary.append(("absent classes (no GT, no prediction)", ", ".join(absent) if absent else "none"))
    if fsum.get("never_in_training"):
        summary.append(("never in the training split", ", ".join(fsum["never_in_training"])))
    thr = f.get("thresholds") or {}
    if thr:
        by_group = ", ".join(f"{g} {_pct(v)}" for g, v in (thr.get("by_group") or {}).items()
                             if optional_float(v) != optional_float(thr.get("default")))
        by_group = f" (by group: {by_group})" if by_group else ""
        summary.append(("weak threshold (IoU %)", _pct(thr.get("default")) + by_group))

    # per-class table
    cols = ["class", "id", "group", "IoU", "Acc", "Dice", "boundary IoU", "threshold", "GT pixels", "status"]
    table = []
    for c in classes:
        mr = metric_rows.get(c["name"], {})
        is_absent = c.get("status") == "absent"
        gt = mr.get("gt_pixels")
        share = f"{100 * int(gt) / total_gt:.2f}%" if gt is not None and total_gt else "–"
        table.append({
            "cells": [
                c["name"], "" if c.get("id") is None else str(c["id"]), c.get("group") or "",
                _pct(c.get("IoU", mr.get("IoU")), absent=is_absent),
                _pct(c.get("Acc", mr.get("Acc")), absent=is_absent),
                _pct(mr.get("Dice"), absent=is_absent), _pct(c.get("boundary_IoU"), absent=is_absent),
                _pct(c.get("threshold")), share, str(c.get("status") or mr.get("status") or ""),
            ],
            "status": c.get("status") or "",
        })

    # weak classes
    weak_sections = []
    weak_rows = [c for c in classes if c.get("status") == "weak"]
    weak_rows.sort(key=lambda c: optional_float(c.get("IoU")) if optional_float(c.get("IoU")) is not None else 2.0)
    for c in weak_rows:
        causes = sorted(c.get("causes") or [], key=lambda x: -(optional_float(x.get("strength")) or 0.0))
        weak_sections.append({
            "name": c["name"],
            "headline": f"IoU {_pct(c.get('IoU'))} % < threshold {_pct(c.get('threshold'))} %"
            + (f", group {c['group']}" if c.get("group") else ""),
            "causes": [(str(x.get("cause", "?")), optional_float(x.get("strength")), str(x.get("summary") or ""))
                       for x in causes],
            "actions": [str(a) for a in c.get("actions") or []],
            "images": [(int(w["image_id"]), _worst_label(None, w)) for w in (c.get("worst_images") or [])
                       [:MAX_WORST_PER_CLASS] if w.get("image_id") is not None],
        })

    # worst images
    per_image = {int(r["image_id"]): r for r in inputs.per_image or [] if r.get("image_id") is not None}
    why: dict[int, list[str]] = {}
    quality: dict[int, float] = {}
    for c in classes:
        for w in c.get("worst_images") or []:
            if w.get("image_id") is not None:
                iid = int(w["image_id"])
                why.setdefault(iid, []).append(_worst_label(c["name"], w))
                if optional_float(w.get("label_quality")) is not None:
                    quality[iid] = optional_float(w["label_quality"])
    worst_cols = ["image id", "worst for", "image mIoU", "label quality", "most confused (GT → pred, pixels)"]
    worst = []
    for pick in select_worst_images(f, inputs.per_image, k=MAX_WORST_ROWS):
        iid = pick["image_id"]
        r = per_image.get(iid, {})
        conf = ""
        if r.get("top_confused_gt") not in (None, ""):
            conf = f"{r['top_confused_gt']} → {r.get('top_confused_pred')} ({r.get('top_confused_pixels')})"
        lq = optional_float(r.get("label_quality"))
        lq = quality.get(iid) if lq is None else lq
        worst.append([str(iid), ", ".join(why.get(iid, [pick["reason"]])), _pct(r.get("mIoU")),
                      "–" if lq is None else f"{lq:.3f}", conf])

    plots = [(stem, PLOT_TITLES.get(stem, stem), png) for stem, png in inputs.plots.items()]
    return {
        "title": title, "header": header, "notes": list(inputs.notes), "summary": summary,
        "class_columns": cols, "class_rows": table, "weak": weak_sections, "absent": absent,
        "worst_columns": worst_cols, "worst_rows": worst, "plots": plots, "mosaic": inputs.mosaic,
    }


# ---------------------------------------------------------------------------------------- markdown
def _md_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(md_escape(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    out += ["| " + " | ".join(md_escape(v) for v in row) + " |" for row in rows]
    return out


def render_markdown(inputs: ReportInputs, *, plot_dir: str = "plots") -> str:
    """The report as Markdown; plots are linked as ``<plot_dir>/<stem>.png`` (written by :func:`write_report`)."""
    c = report_content(inputs)
    lines = [f"# {md_escape(c['title'])}", ""]
    lines += [f"- {md_escape(k)}: `{v.replace('`', '')}`" for k, v in c["header"]]
    lines.append("")
    if c["notes"]:
        lines += ["## Notes", ""] + [f"- {md_escape(n)}" for n in c["notes"]] + [""]
    lines += ["## Summary", ""] + _md_table(["figure", "value"], c["summary"]) + [""]
    lines += ["## Per-class results", "",
              "IoU, Acc, Dice, boundary IoU and threshold in %; MMSegmentation definitions. "
              "*absent*: the class has neither ground truth nor prediction in this split (undefined, not 0).", ""]
    lines += _md_table(c["class_columns"], [r["cells"] for r in c["class_rows"]]) + [""]
    lines += ["## Weak classes", ""]
    if not c["weak"]:
        lines += ["No class is below its threshold.", ""]
    for w in c["weak"]:
        lines += [f"### {md_escape(w['name'])}", "", md_escape(w["headline"]), ""]
        if w["causes"]:
            lines.append("Causes, strongest first:")
            lines.append("")
            for i, (cause, strength, summ) in enumerate(w["causes"], 1):
                s = "" if strength is None else f" ({strength:.2f})"
                lines.append(f"{i}. **{md_escape(cause)}**{s}: {md_escape(summ)}")
            lines.append("")
        else:
            lines += ["No cause found in the evidence at hand.", ""]
        if w["actions"]:
            lines += ["Actions:", ""] + [f"- {md_escape(a)}" for a in w["actions"]] + [""]
        if w["images"]:
            lines.append("Worst images: " + ", ".join(
                f"{iid}" + (f" ({md_escape(reason)})" if reason else "") for iid, reason in w["images"]))
            lines.append("")
    if c["absent"]:
        lines += ["Absent from this split (no ground truth, no prediction): "
                  + ", ".join(md_escape(a) for a in c["absent"]) + ".", ""]
    lines += ["## Worst images", ""]
    if c["worst_rows"]:
        lines += _md_table(c["worst_columns"], c["worst_rows"]) + [""]
    else:
        lines += ["No per-image scores (per_image.csv) and no worst images in the findings.", ""]
    if c["mosaic"] is not None:
        lines += [f"![worst images]({plot_dir}/{MOSAIC_STEM}.png)", ""]
    if c["plots"]:
        lines += ["## Plots", ""]
        for stem, title, _ in c["plots"]:
            lines += [f"### {md_escape(title)}", "", f"![{md_escape(title)}]({plot_dir}/{stem}.png)", ""]
    return "\n".join(lines).rstrip() + "\n"


# ---------------------------------------------------------------------------------------- html
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1100px;
color:#222;padding:0 1em;line-height:1.45}
h1{font-size:1.5em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.weak td{background:#fde8e8}tr.absent td{color:#777;font-style:italic}
.notes{background:#fff8e1;border-left:4px solid #f0b400;padding:.4em 1em}
.cause{margin:.2em 0}.strength{color:#666}img{max-width:100%;border:1px solid #eee}
ul.meta{list-style:none;padding:0;color:#555}code{background:#f5f5f5;padding:0 .2em}
"""


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{_esc(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


def _html_table(columns: Sequence[str], rows: Sequence[Sequence[str]], *, row_classes: Sequence[str] | None = None,
                numeric: Sequence[int] = ()) -> str:
    out = ["<table>", "<tr>" + "".join(f"<th>{_esc(c)}</th>" for c in columns) + "</tr>"]
    for i, row in enumerate(rows):
        cls = f' class="{_esc(row_classes[i])}"' if row_classes and row_classes[i] else ""
        cells = "".join(f'<td class="num">{_esc(v)}</td>' if j in numeric else f"<td>{_esc(v)}</td>"
                        for j, v in enumerate(row))
        out.append(f"<tr{cls}>{cells}</tr>")
    out.append("</table>")
    return "\n".join(out)


def render_html(inputs: ReportInputs) -> str:
    """The report as one self-contained HTML page (plots embedded as base64 PNG, inline CSS, all text escaped)."""
    c = report_content(inputs)
    parts = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
             f"<title>{_esc(c['title'])}</title>", f"<style>{_CSS}</style>", "</head>", "<body>",
             f"<h1>{_esc(c['title'])}</h1>"]
    if c["header"]:
        parts.append('<ul class="meta">' + "".join(f"<li>{_esc(k)}: <code>{_esc(v)}</code></li>"
                                                  for k, v in c["header"]) + "</ul>")
    if c["notes"]:
        parts.append('<div class="notes"><ul>' + "".join(f"<li>{_esc(n)}</li>" for n in c["notes"]) + "</ul></div>")
    parts += ["<h2>Summary</h2>", _html_table(["figure", "value"], c["summary"])]
    parts += ["<h2>Per-class results</h2>",
              "<p>IoU, Acc, Dice, boundary IoU and threshold in %; MMSegmentation definitions. <em>absent</em>: the "
              "class has neither ground truth nor prediction in this split (undefined, not 0).</p>",
              _html_table(c["class_columns"], [r["cells"] for r in c["class_rows"]],
                          row_classes=[r["status"] for r in c["class_rows"]], numeric=(1, 3, 4, 5, 6, 7, 8))]
    parts.append("<h2>Weak classes</h2>")
    if not c["weak"]:
        parts.append("<p>No class is below its threshold.</p>")
    for w in c["weak"]:
        parts += [f"<h3>{_esc(w['name'])}</h3>", f"<p>{_esc(w['headline'])}</p>"]
        if w["causes"]:
            items = "".join(
                f'<li class="cause"><strong>{_esc(cause)}</strong>'
                + ("" if strength is None else f' <span class="strength">({strength:.2f})</span>')
                + f": {_esc(summ)}</li>" for cause, strength, summ in w["causes"])
            parts.append(f"<p>Causes, strongest first:</p><ol>{items}</ol>")
        else:
            parts.append("<p>No cause found in the evidence at hand.</p>")
        if w["actions"]:
            parts.append("<p>Actions:</p><ul>" + "".join(f"<li>{_esc(a)}</li>" for a in w["actions"]) + "</ul>")
        if w["images"]:
            parts.append("<p>Worst images: " + ", ".join(
                f"{iid}" + (f" ({_esc(r)})" if r else "") for iid, r in w["images"]) + "</p>")
    if c["absent"]:
        parts.append("<p>Absent from this split (no ground truth, no prediction): "
                     + ", ".join(_esc(a) for a in c["absent"]) + ".</p>")
    parts.append("<h2>Worst images</h2>")
    if c["worst_rows"]:
        parts.append(_html_table(c["worst_columns"], c["worst_rows"], numeric=(0, 2, 3)))
    else:
        parts.append("<p>No per-image scores (per_image.csv) and no worst images in the findings.</p>")
    if c["mosaic"] is not None:
        parts.append(f"<figure>{_img(c['mosaic'], 'worst images')}</figure>")
    if c["plots"]:
        parts.append("<h2>Plots</h2>")
        for _, title, png in c["plots"]:
            parts += [f"<h3>{_esc(title)}</h3>", f"<figure>{_img(png, title)}</figure>"]
    parts += ["</body>", "</html>"]
    return "\n".join(parts) + "\n"


# ---------------------------------------------------------------------------------------- files
def write_report(report_dir: str | Path, inputs: ReportInputs) -> dict[str, Path]:
    """Write ``report.md``, ``report.html`` and ``plots/*.png`` into ``report_dir`` as one atomic folder.

    The folder is built beside ``report_dir`` and renamed into place (an existing report is
    replaced), so a failure never leaves a half-written report.

    Returns:
        ``{"markdown": path, "html": path, "plots": [paths]}`` (final locations).
    """
    report_dir = Path(report_dir)
    md = render_markdown(inputs)
    page = render_html(inputs)
    stems = list(inputs.plots) + ([MOSAIC_STEM] if inputs.mosaic is not None else [])
    with atomic_dir(report_dir, overwrite=True) as tmp:
        (tmp / "plots").mkdir()
        for stem, png in inputs.plots.items():
            (tmp / "plots" / f"{stem}.png").write_bytes(png)
        if inputs.mosaic is not None:
            (tmp / "plots" / f"{MOSAIC_STEM}.png").write_bytes(inputs.mosaic)
        (tmp / "report.md").write_text(md, encoding="utf-8")
        (tmp / "report.html").write_text(page, encoding="utf-8")
    return {
        "markdown": report_dir / "report.md",
        "html": report_dir / "report.html",
        "plots": [report_dir / "plots" / f"{s}.png" for s in stems],
    }
