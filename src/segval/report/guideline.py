"""``guideline.md`` and a self-contained ``guideline.html`` from the guideline document of
:func:`segval.qa.guideline.build_guideline`.

Each example is drawn as its image crop with the outlines of the instances it shows, in the class colours
(:func:`segval.report.mosaic.outline`), scaled to ``side`` px. The Markdown links the PNGs under
``images/``; the HTML embeds them as ``data:`` URIs and refers to nothing outside itself. Every string that
comes from the dataset (class names, descriptions, file names, reasons) is HTML-escaped in the HTML and
Markdown-escaped in the Markdown.

Example:
    >>> doc = {"dataset": {"name": "d", "version": "1.0.0", "content_hash": "ab"}, "classes": [], "notes": [],
    ...        "general_rules": [], "min_size": {"size": [20, 20], "examples": [], "below": {}}, "pairs": [],
    ...        "hard_examples": False}
    >>> "Annotation guideline: d 1.0.0" in render_markdown(doc)
    True
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from segval.io import atomic_dir, write_json, write_text
from segval.report.markdown_safe import md_escape
from segval.report.mosaic import fit, outline

__all__ = ["Crop", "draw_crop", "render_html", "render_markdown", "swatch", "write_guideline"]

#: images of the Markdown, beside it
IMAGE_DIR = "images"


@dataclass
class Crop:
    """The pixels of one example: ``image`` uint8[h, w, 3] and the outlines to draw on it (bool[h, w], RGB)."""

    image: np.ndarray
    outlines: list[tuple[np.ndarray, tuple[int, int, int]]] = field(default_factory=list)
    caption: str = ""


def _png(arr: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(arr, dtype=np.uint8)).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _contrast(color: Sequence[int]) -> tuple[int, int, int]:
    r, g, b = (int(v) for v in color)
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 140 else (255, 255, 255)


def draw_crop(crop: Crop, *, side: int = 160, thickness: int = 2) -> bytes:
    """PNG of a crop scaled so its longest side is ``side`` px, outlines drawn at that scale: ``thickness`` px
    in the class colour inside a 1 px line in black or white (whichever contrasts with it), so an outline stays
    visible on an object of its own colour."""
    img = fit(np.asarray(crop.image, dtype=np.uint8), side, nearest=False)
    for mask, color in crop.outlines:
        m = fit(np.asarray(mask, dtype=bool), side, nearest=True)
        if m.shape != img.shape[:2]:  # the two scalings round alike; guard against a 1 px difference
            m = m[: img.shape[0], : img.shape[1]]
            m = np.pad(m, ((0, img.shape[0] - m.shape[0]), (0, img.shape[1] - m.shape[1])))
        img = outline(img, m, color, thickness=thickness + 1)
        img = outline(img, m, _contrast(color), thickness=1)
    return _png(img)


def swatch(color: Sequence[int], size: int = 14) -> bytes:
    """PNG of a square of ``color`` with a grey border (the class colour in the Markdown table)."""
    arr = np.full((size, size, 3), 128, np.uint8)
    arr[1:-1, 1:-1] = np.asarray(color, dtype=np.uint8)
    return _png(arr)


def _hex(color: Sequence[int]) -> str:
    r, g, b = (int(v) for v in color)
    return f"#{r:02x}{g:02x}{b:02x}"


def _pct(x: Any) -> str:
    return "–" if x is None else f"{100 * float(x):.2f}"


# ---------------------------------------------------------------------------------------- shared content
def _header(doc: Mapping[str, Any]) -> list[tuple[str, str]]:
    ds = doc["dataset"]
    rows = [("dataset", f"{ds.get('name')} {ds.get('version')}"), ("content hash", str(ds.get("content_hash"))),
            ("package", str(ds.get("root", "")))]
    sc = doc.get("scanned") or {}
    if sc:
        rows.append(("examples from", f"splits {', '.join(sc['splits'])}: {sc['images']} images, "
                                      f"{sc['instances']} instances"))
    for k, v in (doc.get("inputs") or {}).items():
        if v:
            rows.append((k, str(v)))
    return rows


def _class_row(c: Mapping[str, Any]) -> list[str]:
    ag = c.get("agreement")
    agree = "–" if not ag or ag.get("IoU") is None else f"{_pct(ag['IoU'])}" + (
        f" (target {_pct(ag['target'])})" if ag.get("target") is not None else "") + (" below" if ag.get("flagged")
                                                                                       else "")
    return [str(c["id"]), c["name"], _hex(c["color"]), c["group"], "thing" if c["isthing"] else "stuff",
            c.get("description") or "", _pct(c["pixel_share"]), str(c["instances"]), agree]


CLASS_COLUMNS = ["id", "class", "colour", "group", "thing / stuff", "description", "pixel share %", "instances",
                 "annotator agreement IoU %"]


def _pair_counts(p: Mapping[str, Any]) -> list[str]:
    """Sentences with the counts behind a pair."""
    out = []
    if p.get("annotations"):
        dirs = ", ".join(f"{k}: {v}" for k, v in (p.get("directions") or {}).items())
        out.append(f"{p['annotations']} annotations have the other class in neighbouring frames of the same object "
                   f"({dirs}; {len(p.get('images') or [])} images)")
    for m in p.get("model") or []:
        share = "" if m.get("share") is None else f" ({_pct(m['share'])} % of its pixels)"
        out.append(f"the model labels {m['pixels']:,} px of {m['class']} as {m['partner']}{share}, "
                   + ("symmetric: a guideline question" if m.get("symmetric") else "one-way"))
    return out


# ---------------------------------------------------------------------------------------- Markdown
def _md_img(key: str, caption: str) -> str:
    return f"![{md_escape(caption)}]({IMAGE_DIR}/{key}.png)"


def _md_examples(items: Sequence[Mapping[str, Any]]) -> list[str]:
    if not items:
        return []
    return [" ".join(_md_img(e["key"], e["caption"]) for e in items), ""] + \
        [f"{k + 1}. {md_escape(e['caption'])}" for k, e in enumerate(items)] + [""]


def _md_class(c: Mapping[str, Any], hard_available: bool) -> list[str]:
    lines = [f'<a id="{c["anchor"]}"></a>', "", f"### Class {c['id']}: {md_escape(c['name'])}", ""]
    lines.append(md_escape(c["description"]) if c.get("description") else
                 "*No description yet: add `description:` to this class in dataset.yaml.*")
    lines.append("")
    ag = c.get("agreement")
    if ag and ag.get("flagged"):
        lines += [f"**Annotators agree on {_pct(ag['IoU'])} % IoU, below the target {_pct(ag.get('target'))} %: "
                  "this class needs a clearer rule.**", ""]
    lines += [f"- {md_escape(r['text'])}" for r in c["rules"]] + ([""] if c["rules"] else [])
    if c["background"]:
        return lines
    lines += ["#### Positive examples", ""]
    if c["no_examples"]:
        lines += [f"No examples yet: the package has no instance of {md_escape(c['name'])}.", ""]
    lines += _md_examples(c["examples"])
    if hard_available:
        lines += ["#### Hard examples", ""]
        lines += _md_examples(c["hard"]) if c["hard"] else ["The run and the queue flag no image of this class.", ""]
    return lines


def render_markdown(doc: Mapping[str, Any]) -> str:
    """``guideline.md`` (images under ``images/``)."""
    ds = doc["dataset"]
    lines = [f"# Annotation guideline: {md_escape(ds['name'])} {md_escape(ds['version'])}", ""]
    lines += [f"- {k}: {md_escape(v)}" for k, v in _header(doc)] + [""]
    lines += [f"> {md_escape(n)}" for n in doc.get("notes") or []] + ([""] if doc.get("notes") else [])
    lines += ["## Classes", "", "| " + " | ".join(CLASS_COLUMNS) + " |", "|" + "---|" * len(CLASS_COLUMNS)]
    for c in doc["classes"]:
        cells = [md_escape(v) for v in _class_row(c)]
        cells[1] = f"[{cells[1]}](#{c['anchor']})"
        cells[2] = f"![{cells[2]}]({IMAGE_DIR}/swatch_{c['id']}.png) {cells[2]}"
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## Rules for every class", ""] + [f"- {md_escape(r['text'])}" for r in doc["general_rules"]]
    ms = doc["min_size"]
    lines += ["", f"## Minimum size: {ms['size'][0]} x {ms['size'][1]} px", "",
              "The smallest instances in the data:", ""] + _md_examples(ms["examples"])
    if ms["below"]:
        lines += ["Instances under the minimum now in the package: "
                  + ", ".join(f"{md_escape(k)} {v}" for k, v in ms["below"].items()), ""]
    lines += ["## Pairs to clarify", ""]
    if not doc["pairs"]:
        lines += ["No class pair is confused by the annotations (queue) or the model (run)"
                  + ("" if doc.get("hard_examples") else ": no run or queue was given") + ".", ""]
    for p in doc["pairs"]:
        a, b = p["pair"]
        lines += [f"### {md_escape(a)} vs {md_escape(b)}", ""] + [f"- {md_escape(s)}" for s in _pair_counts(p)] + [""]
        for name in (a, b):
            keys = p["crops"].get(name) or []
            lines += [f"{md_escape(name)}: " + (" ".join(_md_img(k, name) for k in keys) or "no example yet"), ""]
    lines += ["## Classes in detail", ""]
    if not doc.get("hard_examples"):
        lines += ["Hard examples are left out: no run or relabel queue was given.", ""]
    for c in doc["classes"]:
        lines += _md_class(c, bool(doc.get("hard_examples")))
    return "\n".join(lines).rstrip() + "\n"


# ---------------------------------------------------------------------------------------- HTML
_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left;
vertical-align:top}td.num{text-align:right}.sw{display:inline-block;width:1em;height:1em;border:1px solid #888;
vertical-align:middle}figure{display:inline-block;margin:.3em;width:170px;vertical-align:top}figure img{display:block}
figcaption{font-size:.75em;color:#444;word-wrap:break-word}.notes{background:#fff8e0;padding:.5em 1em}
.warn{color:#a00;font-weight:bold}ul.meta{list-style:none;padding:0;color:#555}code{background:#f5f5f5}"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _fig(key: str, caption: str, pngs: Mapping[str, bytes]) -> str:
    data = base64.b64encode(pngs[key]).decode("ascii")
    return (f'<figure><img alt="{_e(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def _html_class(c: Mapping[str, Any], hard_available: bool, pngs: Mapping[str, bytes]) -> list[str]:
    out = [f'<h3 id="{_e(c["anchor"])}"><span class="sw" style="background:{_hex(c["color"])}"></span> '
           f"Class {int(c['id'])}: {_e(c['name'])}</h3>",
           f"<p>{_e(c['description'])}</p>" if c.get("description") else
           "<p><em>No description yet: add <code>description:</code> to this class in dataset.yaml.</em></p>"]
    ag = c.get("agreement")
    if ag and ag.get("flagged"):
        out.append(f'<p class="warn">Annotators agree on {_pct(ag["IoU"])} % IoU, below the target '
                   f"{_pct(ag.get('target'))} %: this class needs a clearer rule.</p>")
    if c["rules"]:
        out.append("<ul>" + "".join(f"<li>{_e(r['text'])}</li>" for r in c["rules"]) + "</ul>")
    if c["background"]:
        return out
    out.append("<h4>Positive examples</h4>")
    if c["no_examples"]:
        out.append(f"<p>No examples yet: the package has no instance of {_e(c['name'])}.</p>")
    out.append("<div>" + "".join(_fig(e["key"], e["caption"], pngs) for e in c["examples"]) + "</div>")
    if hard_available:
        out.append("<h4>Hard examples</h4>")
        out.append("<div>" + "".join(_fig(e["key"], e["caption"], pngs) for e in c["hard"]) + "</div>" if c["hard"]
                   else "<p>The run and the queue flag no image of this class.</p>")
    return out


def _html_table(doc: Mapping[str, Any]) -> str:
    rows = ["<table>", "<tr>" + "".join(f"<th>{_e(h)}</th>" for h in CLASS_COLUMNS) + "</tr>"]
    for c in doc["classes"]:
        cells = _class_row(c)
        tds = [f"<td class=\"num\">{_e(cells[0])}</td>", f'<td><a href="#{_e(c["anchor"])}">{_e(cells[1])}</a></td>',
               f'<td><span class="sw" style="background:{_hex(c["color"])}"></span> {_e(cells[2])}</td>']
        tds += [f"<td>{_e(v)}</td>" for v in cells[3:6]] + [f'<td class="num">{_e(v)}</td>' for v in cells[6:]]
        rows.append("<tr>" + "".join(tds) + "</tr>")
    return "\n".join(rows + ["</table>"])


def render_html(doc: Mapping[str, Any], pngs: Mapping[str, bytes]) -> str:
    """``guideline.html``: one page, images as ``data:`` URIs, inline CSS, every dataset string escaped."""
    ds = doc["dataset"]
    title = f"Annotation guideline: {ds['name']} {ds['version']}"
    parts = ["<!DOCTYPE html>", '<html lang="en">', '<head><meta charset="utf-8">', f"<title>{_e(title)}</title>",
             f"<style>{_CSS}</style></head>", "<body>", f"<h1>{_e(title)}</h1>",
             '<ul class="meta">' + "".join(f"<li>{_e(k)}: <code>{_e(v)}</code></li>" for k, v in _header(doc))
             + "</ul>"]
    if doc.get("notes"):
        parts.append('<div class="notes"><ul>' + "".join(f"<li>{_e(n)}</li>" for n in doc["notes"]) + "</ul></div>")
    parts += ["<h2>Classes</h2>", _html_table(doc), "<h2>Rules for every class</h2>",
              "<ul>" + "".join(f"<li>{_e(r['text'])}</li>" for r in doc["general_rules"]) + "</ul>"]
    ms = doc["min_size"]
    parts += [f"<h2>Minimum size: {int(ms['size'][0])} x {int(ms['size'][1])} px</h2>",
              "<p>The smallest instances in the data:</p>",
              "<div>" + "".join(_fig(e["key"], e["caption"], pngs) for e in ms["examples"]) + "</div>"]
    if ms["below"]:
        parts.append("<p>Instances under the minimum now in the package: "
                     + _e(", ".join(f"{k} {v}" for k, v in ms["below"].items())) + "</p>")
    parts.append("<h2>Pairs to clarify</h2>")
    if not doc["pairs"]:
        parts.append("<p>No class pair is confused by the annotations (queue) or the model (run)"
                     + ("" if doc.get("hard_examples") else ": no run or queue was given") + ".</p>")
    for p in doc["pairs"]:
        a, b = p["pair"]
        parts += [f"<h3>{_e(a)} vs {_e(b)}</h3>", "<ul>" + "".join(f"<li>{_e(s)}</li>" for s in _pair_counts(p))
                  + "</ul>", "<table><tr>" + "".join(f"<th>{_e(n)}</th>" for n in (a, b)) + "</tr><tr>"
                  + "".join("<td>" + ("".join(_fig(k, n, pngs) for k in p["crops"].get(n) or []) or "no example yet")
                            + "</td>" for n in (a, b)) + "</tr></table>"]
    parts.append("<h2>Classes in detail</h2>")
    if not doc.get("hard_examples"):
        parts.append("<p>Hard examples are left out: no run or relabel queue was given.</p>")
    for c in doc["classes"]:
        parts += _html_class(c, bool(doc.get("hard_examples")), pngs)
    parts += ["</body>", "</html>"]
    return "\n".join(parts) + "\n"


# ---------------------------------------------------------------------------------------- files
def write_guideline(out_dir: str | Path, doc: Mapping[str, Any], crops: Mapping[str, Crop], *,
                    side: int = 160) -> dict[str, Path]:
    """Write ``guideline.md``, ``guideline.html``, ``guideline.json`` and ``images/*.png`` into ``out_dir``
    (images as one atomic folder, each document atomically; an existing guideline there is replaced).

    Returns:
        ``{"markdown", "html", "json", "images"}`` paths.
    """
    out = Path(out_dir)
    pngs = {k: draw_crop(c, side=side) for k, c in crops.items()}
    swatches = {f"swatch_{c['id']}": swatch(c["color"]) for c in doc["classes"]}
    wanted = ({e["key"] for c in doc["classes"] for e in [*c["examples"], *(c["hard"] or [])]}
              | {e["key"] for e in doc["min_size"]["examples"]}
              | {k for p in doc["pairs"] for keys in p["crops"].values() for k in keys})
    missing = sorted(wanted - set(pngs))
    if missing:
        raise ValueError(f"the guideline refers to crops that were not drawn: {missing[:5]}")
    page = render_html(doc, pngs)
    md = render_markdown(doc)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_dir(out / IMAGE_DIR, overwrite=True) as tmp:
        for key, png in {**pngs, **swatches}.items():
            (tmp / f"{key}.png").write_bytes(png)
    return {"markdown": write_text(out / "guideline.md", md), "html": write_text(out / "guideline.html", page),
            "json": write_json(out / "guideline.json", json.loads(json.dumps(doc, default=str))),
            "images": out / IMAGE_DIR}
