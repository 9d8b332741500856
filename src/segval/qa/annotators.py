"""Per-annotator quality: QA flag rates, agreement and correction rates per annotator.

**Where the annotator comes from.** An annotation's annotator is ``attributes.annotator`` (what a
CVAT "COCO 1.0" export writes for a track/shape attribute named ``annotator``) or, if that is
absent, a top-level ``annotator`` key (Label Studio converters and home-made tools). When both are
present **``attributes.annotator`` wins** (it is the value the annotation tool recorded); a value
is used as a string, stripped; an empty string counts as missing.

**Missing on some annotations.** When no annotation of the checked splits names an annotator,
per-annotator quality is simply not reported. When some do and others do not, the default
(``missing="error"``) is a :class:`DatasetError` naming the file, how many annotations lack it
and the first ids, raised before anything is written; ``missing="unknown"`` counts those
annotations in an explicit bucket named :data:`UNKNOWN` instead (shown like any annotator).

**Definitions.**

* flag rate: annotations of the annotator carrying at least one QA flag (``small_mask``,
  ``fragmented``, ``jagged``, ``temporal_iou``, ``overlap`` or ``format`` naming the annotation) /
  annotations of the annotator; image flag rate: images holding an annotation of the annotator
  that carry any flag / those images;
* agreement: for each annotation set of a ``segval agreement`` result (one set per annotator,
  named by the set's file stem), the mean over the pairs it belongs to of the pair's mean class
  IoU (classes with a defined IoU);
* correction rate (after a relabel round, from :func:`segval.release.versions.diff_packages` of
  version a -> b): annotations of the annotator in a that b changed, deprecated or removed /
  annotations of the annotator in a.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from segval.report.markdown_safe import md_escape
from segval.errors import ConfigError, DatasetError

UNKNOWN = "unknown"
MISSING = ("error", "unknown")
ANNOTATION_CHECKS = ("small_mask", "fragmented", "jagged", "temporal_iou", "overlap", "format")


def annotator_of(ann: Mapping[str, Any]) -> str | None:
    """The annotator of a COCO annotation (``attributes.annotator`` wins over a top-level ``annotator``)."""
    attrs = ann.get("attributes")
    for value in ((attrs or {}).get("annotator") if isinstance(attrs, Mapping) else None, ann.get("annotator")):
        if value is not None and str(value).strip():
            return str(value).strip()
    return None


def annotator_index(pkg: Any, splits: Sequence[str] | None = None, *, missing: str = "error") -> dict[str, dict[int, str]]:
    """``{split: {annotation id: annotator}}``; empty dicts when no annotation names an annotator.

    Raises:
        ConfigError: ``missing`` is not error | unknown.
        DatasetError: some annotations name an annotator and others do not, with ``missing="error"``.
    """
    if missing not in MISSING:
        raise ConfigError(f"annotators missing= must be one of {list(MISSING)}, got {missing!r}")
    splits = list(splits or pkg.splits)
    found: dict[str, dict[int, str | None]] = {}
    for s in splits:
        sd = pkg.split(s)
        found[s] = {int(a["id"]): annotator_of(a) for rec in sd.images for a in sd.annotations_for(rec.id)}
    named = sum(v is not None for d in found.values() for v in d.values())
    if named == 0:
        return {s: {} for s in splits}
    for s in splits:
        lacking = sorted(i for i, v in found[s].items() if v is None)
        if lacking and missing == "error":
            raise DatasetError(
                f"{len(lacking)} of {len(found[s])} annotations name no annotator (first ids: {lacking[:10]}) while "
                "others do; add attributes.annotator (or a top-level 'annotator') to them, or count them in an "
                f"'{UNKNOWN}' bucket with qa.annotator_missing=unknown",
                path=pkg.split(s).annotation_path)
    return {s: {i: (v if v is not None else UNKNOWN) for i, v in found[s].items()} for s in splits}


def _flagged_annotations(flags: Iterable[Mapping[str, Any]]) -> set[int]:
    out: set[int] = set()
    for f in flags:
        if f.get("check") not in ANNOTATION_CHECKS:
            continue
        if f.get("annotation_id") is not None:
            out.add(int(f["annotation_id"]))
        out.update(int(a) for a in f.get("annotation_ids") or [])
    return out


def flag_rates(report: Mapping[str, Any], pkg: Any, index: Mapping[str, Mapping[int, str]]) -> dict[str, Any]:
    """Per-annotator QA flag rates from a qa.json ``report`` (see the module doc).

    Returns:
        ``{annotator: {annotations, flagged_annotations, flag_rate, images, flagged_images,
        image_flag_rate, checks: {check: annotations flagged by it}}}``, annotators sorted by name.
    """
    flags_by_image: dict[tuple[str, int], list[Mapping[str, Any]]] = {
        (item["split"], int(item["image_id"])): item["flags"] for item in report.get("images", [])}
    rows: dict[str, dict[str, Any]] = defaultdict(lambda: {"annotations": 0, "flagged_annotations": 0, "images": 0,
                                                            "flagged_images": 0, "checks": Counter()})
    for s, ann_to in index.items():
        if not ann_to:
            continue
        sd = pkg.split(s)
        for rec in sd.images:
            flags = flags_by_image.get((s, rec.id), [])
            flagged = _flagged_annotations(flags)
            who_here = set()
            for a in sd.annotations_for(rec.id):
                aid = int(a["id"])
                who = ann_to[aid]
                who_here.add(who)
                rows[who]["annotations"] += 1
                if aid in flagged:
                    rows[who]["flagged_annotations"] += 1
                    for f in flags:
                        if f.get("check") in ANNOTATION_CHECKS and (
                                f.get("annotation_id") == aid or aid in (f.get("annotation_ids") or [])):
                            rows[who]["checks"][f["check"]] += 1
            for who in who_here:
                rows[who]["images"] += 1
                rows[who]["flagged_images"] += bool(flags)
    out = {}
    for who in sorted(rows):
        r = rows[who]
        out[who] = {"annotations": r["annotations"], "flagged_annotations": r["flagged_annotations"],
                    "flag_rate": r["flagged_annotations"] / r["annotations"] if r["annotations"] else None,
                    "images": r["images"], "flagged_images": r["flagged_images"],
                    "image_flag_rate": r["flagged_images"] / r["images"] if r["images"] else None,
                    "checks": {c: r["checks"].get(c, 0) for c in ANNOTATION_CHECKS}}
    return out


def agreement_by_annotator(agreement: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Per annotation set of a ``segval agreement`` result: mean pair mIoU over the pairs it is in.

    Returns:
        ``{annotator (set file stem): {"agreement": float | None, "pairs": n}}``.
    """
    if not isinstance(agreement, Mapping) or "pairs" not in agreement or "sets" not in agreement:
        raise DatasetError("not a `segval agreement` result (agreement.json with 'sets' and 'pairs')")
    names = {s: Path(str(s)).stem for s in agreement["sets"]}
    if len(set(names.values())) != len(names):
        names = {s: str(s) for s in agreement["sets"]}
    vals: dict[str, list[float]] = {n: [] for n in names.values()}
    for pair in agreement["pairs"]:
        defined = [v for v in (pair.get("per_class") or {}).values() if v is not None]
        if not defined:
            continue
        miou = sum(defined) / len(defined)
        for s in pair["sets"]:
            vals[names[s]].append(miou)
    return {n: {"agreement": sum(v) / len(v) if v else None, "pairs": len(v)} for n, v in sorted(vals.items())}


def correction_rates(a: Any, diff: Mapping[str, Any], *, missing: str = "error") -> dict[str, dict[str, Any]]:
    """Per-annotator correction rates of package ``a`` given ``diff = diff_packages(a, b)`` (module doc).

    Returns:
        ``{annotator: {annotations, changed, deprecated, removed, corrected, correction_rate}}``; empty
        when ``a`` names no annotator.
    """
    index = annotator_index(a, [s for s in a.splits if s in diff["splits"]], missing=missing)
    rows: dict[str, Counter] = defaultdict(Counter)
    for s, ann_to in index.items():
        entry = diff["splits"][s]["annotations"]
        kinds = {k: set(entry[k]) for k in ("changed", "deprecated", "removed")}
        for aid, who in ann_to.items():
            rows[who]["annotations"] += 1
            hit = False
            for k, ids in kinds.items():
                if aid in ids:
                    rows[who][k] += 1
                    hit = True
            rows[who]["corrected"] += hit
    return {who: {"annotations": r["annotations"], "changed": r["changed"], "deprecated": r["deprecated"],
                  "removed": r["removed"], "corrected": r["corrected"],
                  "correction_rate": r["corrected"] / r["annotations"] if r["annotations"] else None}
            for who, r in sorted(rows.items())}


def annotator_report(report: Mapping[str, Any], pkg: Any, index: Mapping[str, Mapping[int, str]], *,
                     agreement: Mapping[str, Any] | None = None,
                     corrections: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """The qa.json ``annotators`` block (None when no annotation names an annotator)."""
    if not any(index.values()):
        return None
    rates = flag_rates(report, pkg, index)
    agree = agreement_by_annotator(agreement) if agreement is not None else None
    rows = []
    for who in sorted(set(rates) | set(agree or {}) | set(corrections or {})):
        r = rates.get(who, {})
        rows.append({"annotator": who, "annotations": r.get("annotations", 0),
                     "flagged_annotations": r.get("flagged_annotations", 0), "flag_rate": r.get("flag_rate"),
                     "images": r.get("images", 0), "image_flag_rate": r.get("image_flag_rate"),
                     "agreement": (agree or {}).get(who, {}).get("agreement"),
                     "corrected": (corrections or {}).get(who, {}).get("corrected"),
                     "correction_rate": (corrections or {}).get(who, {}).get("correction_rate")})
    valid = [r["flag_rate"] for r in rows if r["flag_rate"] is not None and r["annotations"]]
    spread = max(valid) / min(valid) if valid and min(valid) > 0 else None
    return {"source": "attributes.annotator, else a top-level 'annotator' key (attributes wins)",
            "unknown_bucket": UNKNOWN, "rows": rows, "flag_rates": rates, "agreement": agree,
            "corrections": dict(corrections) if corrections is not None else None,
            "flag_rate_spread": spread}


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def format_annotators(block: Mapping[str, Any]) -> str:
    """The Markdown table of the qa.md ``Annotators`` section."""
    lines = ["## Annotators", "",
             f"Annotator of an annotation: {md_escape(block['source'])}; flag rate = flagged annotations / annotations "
             "(annotation-level checks); agreement = mean pair mIoU in `segval agreement`; corrected / correction rate = "
             "the annotator's annotations of the previous version (`annotators.previous`) that this version changed, "
             "deprecated or removed, and their share of that version's annotations by the annotator.", "",
             "| annotator | annotations | flagged | flag rate | images | image flag rate | agreement | corrected | "
             "correction rate |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in block["rows"]:
        lines.append(f"| {md_escape(r['annotator'])} | {r['annotations']} | {r['flagged_annotations']} | {_pct(r['flag_rate'])} | "
                     f"{r['images']} | {_pct(r['image_flag_rate'])} | {_pct(r['agreement'])} | "
                     f"{'n/a' if r['corrected'] is None else r['corrected']} | {_pct(r['correction_rate'])} |")
    if block.get("flag_rate_spread"):
        lines += ["", f"Highest / lowest flag rate: {block['flag_rate_spread']:.2f}x."]
    return "\n".join(lines) + "\n"


def annotators_csv(block: Mapping[str, Any]) -> str:
    """The table as CSV (annotators.csv)."""
    import csv
    import io

    cols = ["annotator", "annotations", "flagged_annotations", "flag_rate", "images", "image_flag_rate", "agreement",
            "corrected", "correction_rate"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for r in block["rows"]:
        w.writerow({c: ("" if r[c] is None else r[c]) for c in cols})
    return buf.getvalue()
