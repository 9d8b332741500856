"""`segval compare`: figures per group of runs (dataset version, split or dataset) as mean ± std over seeds,
per-class deltas against a baseline group and whether each exceeds seed noise, and the findings that appeared
or disappeared.

Definitions (also written into ``compare.json`` under ``definitions``):

* **statistic per group**: for each figure (summary metric, per-class IoU) the values of the group's runs
  that define it (a class absent from ground truth and prediction in a run has no IoU there and is left
  out, never counted as 0); ``mean``, ``std`` = sample standard deviation (``ddof = 1``; None with one
  value), ``n`` = number of values.
* **delta** of group G against the baseline group B: ``mean_G - mean_B``.
* **seed noise**: the standard error of that difference, ``se = sqrt(std_G^2 / n_G + std_B^2 / n_B)``
  (Welch). A delta **exceeds seed noise** when ``|delta| > k * se`` (``k`` = ``noise_k``, 2 by default,
  roughly a two-sided 95 % band for a handful of seeds or more). When either side has fewer than two
  values the noise is unknown and so is the answer (``beyond_noise: null``, shown as "unknown"). With two
  or more identical values on each side ``se = 0`` and any non-zero delta exceeds it.
* **findings of a group**: a class is *weak* in a group when it is weak in at least half of the group's
  runs that have findings; a cause (class, cause) likewise. ``appeared`` = in G but not in B,
  ``disappeared`` = in B but not in G.

Errors (:class:`CompareError`, exit 2): runs of different taxonomies (class names / ids); two runs that claim
the same dataset name and version with different content hashes; a group that mixes what another grouping
would separate (versions, splits); no run with metrics.

Example:
    >>> runs = discover_runs(["outputs/train/multiruns/<sweep>"])              # doctest: +SKIP
    >>> result = compare_runs(runs, baseline_version="1.0.0")                  # doctest: +SKIP
    >>> write_compare(result, "outputs/compare")   # segval.report.compare  # doctest: +SKIP
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from segval.dataset.versioning import version_core
from segval.errors import SegvalError
from segval.experiments.runs import RunRecord, discover_runs
from segval.io import optional_float

__all__ = ["CompareError", "GROUP_BY", "METRIC_KEYS", "compare_groups", "compare_runs", "delta_stat",
           "group_key", "stat", "check_content_hashes", "check_taxonomy"]

SCHEMA_VERSION = 1
#: summary figures compared (those a run lacks are left out for it)
METRIC_KEYS = ("mIoU", "mAcc", "fwIoU", "aAcc")
INSTANCE_KEYS = ("AP", "AP50", "AP75")
PANOPTIC_KEYS = ("PQ", "SQ", "RQ")
GROUP_BY = ("version", "split", "dataset")

DEFINITIONS = {
    "statistic": "per group: mean and sample std (ddof=1, null with one value) over the runs that define the "
                 "figure; a class absent from ground truth and prediction in a run is left out, never 0",
    "delta": "mean of the group minus mean of the baseline group",
    "noise": "se = sqrt(std_g^2/n_g + std_b^2/n_b) (Welch standard error of the difference); unknown when a side "
             "has fewer than 2 values",
    "beyond_noise": "|delta| > k * se; null (unknown) when se is unknown",
    "weak_in_group": "weak (findings status 'weak') in at least half of the group's runs that have findings; "
                     "causes likewise",
}


class CompareError(SegvalError):
    """Runs that cannot be compared (different taxonomies, conflicting content hashes, mixed groups)."""


# ------------------------------------------------------------------------------------------ statistics
def stat(values: Sequence[float | None]) -> dict[str, Any]:
    """``{"mean", "std", "n", "values"}`` over the defined values (None / NaN dropped).

    >>> stat([0.5, 0.7, None])
    {'mean': 0.6, 'std': 0.14142135623730948, 'n': 2, 'values': [0.5, 0.7]}
    """
    vals = [v for v in (optional_float(x) for x in values) if v is not None]
    if not vals:
        return {"mean": None, "std": None, "n": 0, "values": []}
    return {"mean": statistics.fmean(vals), "std": statistics.stdev(vals) if len(vals) > 1 else None,
            "n": len(vals), "values": vals}


def delta_stat(group: Mapping[str, Any], baseline: Mapping[str, Any], k: float) -> dict[str, Any]:
    """The delta of ``group`` against ``baseline`` (two :func:`stat` results) and whether it exceeds seed noise.

    Returns ``{"delta", "noise", "threshold" (= k * noise), "beyond_noise", "status"}``; status is one of
    ``regression`` / ``improvement`` (beyond noise), ``within_noise``, ``unknown`` (noise unknown),
    ``undefined`` (a side has no value).

    >>> delta_stat(stat([0.5, 0.52]), stat([0.6, 0.62]), 2.0)["status"]
    'regression'
    >>> delta_stat(stat([0.5]), stat([0.6, 0.62]), 2.0)["beyond_noise"] is None
    True
    """
    g, b = group.get("mean"), baseline.get("mean")
    if g is None or b is None:
        return {"delta": None, "noise": None, "threshold": None, "beyond_noise": None, "status": "undefined"}
    delta = g - b
    if group["n"] >= 2 and baseline["n"] >= 2:
        noise = math.sqrt(group["std"] ** 2 / group["n"] + baseline["std"] ** 2 / baseline["n"])
        beyond = abs(delta) > k * noise
        status = ("regression" if delta < 0 else "improvement") if beyond else "within_noise"
        return {"delta": delta, "noise": noise, "threshold": k * noise, "beyond_noise": beyond, "status": status}
    return {"delta": delta, "noise": None, "threshold": None, "beyond_noise": None, "status": "unknown"}


def run_figures(run: RunRecord) -> dict[str, float | None]:
    """The summary figures of a run: ``METRIC_KEYS`` plus AP (``instance``) and PQ (``panoptic``) when present."""
    m = run.metrics or {}
    out = {k: optional_float((m.get("summary") or {}).get(k)) for k in METRIC_KEYS if k in (m.get("summary") or {})}
    for block, keys in (("instance", INSTANCE_KEYS), ("panoptic", PANOPTIC_KEYS)):
        if isinstance(m.get(block), Mapping):
            out.update({k: optional_float(m[block].get(k)) for k in keys if k in m[block]})
    return out


def run_class_iou(run: RunRecord) -> dict[str, float | None]:
    return {str(r.get("name")): optional_float(r.get("IoU")) for r in (run.metrics or {}).get("per_class") or []}


# ------------------------------------------------------------------------------------------ checks
def check_taxonomy(runs: Sequence[RunRecord]) -> list[str]:
    """The common class names of ``runs`` (those with metrics).

    Raises:
        CompareError: two runs differ in class names, their order or their taxonomy ids (names both runs).
    """
    ref: RunRecord | None = None
    for r in runs:
        if r.metrics is None:
            continue
        if ref is None:
            ref = r
            continue
        a, b = ref.class_names or [], r.class_names or []
        ids_a, ids_b = ref.taxonomy_ids, r.taxonomy_ids
        if a != b or (ids_a is not None and ids_b is not None and ids_a != ids_b):
            only_a, only_b = [n for n in a if n not in b], [n for n in b if n not in a]
            what = []
            if only_a:
                what.append(f"only {ref.label} has {only_a}")
            if only_b:
                what.append(f"only {r.label} has {only_b}")
            if not what:
                what.append(f"the same names in another order or with other ids: {list(zip(ids_a or [], a))} vs "
                            f"{list(zip(ids_b or [], b))}")
            raise CompareError(
                f"runs of different taxonomies cannot be compared: {ref.label} ({ref.dataset['name']} "
                f"{ref.version}) and {r.label} ({r.dataset['name']} {r.version}): {'; '.join(what)}. Compare runs "
                "of datasets with the same categories, or evaluate the checkpoints on one taxonomy first")
    return list(ref.class_names or []) if ref is not None else []


def check_content_hashes(runs: Sequence[RunRecord]) -> None:
    """Raises :class:`CompareError` when runs claim the same dataset name and version with different content
    hashes (the data changed without a new version); runs without a hash are not checked."""
    seen: dict[tuple[Any, Any], dict[str, RunRecord]] = {}
    for r in runs:
        ds = r.dataset
        if ds.get("content_hash") is None or ds.get("version") is None:
            continue
        hashes = seen.setdefault((ds.get("name"), ds["version"]), {})
        hashes.setdefault(str(ds["content_hash"]), r)
        if len(hashes) > 1:
            (h1, r1), (h2, r2) = list(hashes.items())[:2]
            raise CompareError(
                f"two runs claim dataset {ds.get('name')} version {ds['version']} with different content hashes: "
                f"{r1.label} has {h1}, {r2.label} has {h2}. The package changed without a new version; release "
                "the changed data as a new version (segval dataset release) and re-run, or compare only the runs "
                "of one of them")


def group_key(run: RunRecord, group_by: str, *, several_datasets: bool = False) -> str:
    """The group label of a run: its dataset version (``name version`` when the runs span several datasets),
    its split, or its dataset (``name version``); ``config:<dotted.key>`` groups by a config value."""
    ds = run.dataset
    if group_by == "version":
        v = ds.get("version") or "unknown version"
        return f"{ds.get('name')} {v}" if several_datasets else str(v)
    if group_by == "split":
        return str(run.split or "unknown split")
    if group_by == "dataset":
        return f"{ds.get('name') or 'unknown dataset'} {ds.get('version') or '?'}".strip()
    if group_by.startswith("config:"):
        value = run.config_value(group_by.split(":", 1)[1])
        return f"{group_by.split(':', 1)[1]}={value}"
    raise CompareError(f"group_by must be one of {list(GROUP_BY)} or config:<dotted.key>, got {group_by!r}")


def _check_uniform(label: str, runs: Sequence[RunRecord], group_by: str) -> None:
    """A group must not mix what the other groupings separate (e.g. the val and test split under one version)."""
    checks: list[tuple[str, Callable[[RunRecord], Any]]] = []
    if group_by != "split":
        checks.append(("splits", lambda r: r.split))
    if group_by not in ("version", "dataset"):
        checks.append(("dataset versions", lambda r: (r.dataset.get("name"), r.version)))
    for what, fn in checks:
        values = {}
        for r in runs:
            values.setdefault(fn(r), r)
        if len(values) > 1:
            shown = ", ".join(f"{v} ({r.label})" for v, r in values.items())
            raise CompareError(f"group {label!r} mixes {what}: {shown}; choose group_by= that separates them or "
                               "pass only the runs of one")


# ------------------------------------------------------------------------------------------ groups
def _findings(runs: Sequence[RunRecord]) -> dict[str, Any]:
    with_f = [r for r in runs if r.findings]
    weak: dict[str, int] = {}
    causes: dict[tuple[str, str], int] = {}
    for r in with_f:
        for c in r.findings.get("classes") or []:
            if c.get("status") != "weak":
                continue
            weak[str(c["name"])] = weak.get(str(c["name"]), 0) + 1
            for cause in {str(x.get("cause")) for x in c.get("causes") or []}:
                causes[(str(c["name"]), cause)] = causes.get((str(c["name"]), cause), 0) + 1
    n = len(with_f)
    return {
        "runs_with_findings": n,
        "sources": sorted({str(r.findings_source) for r in with_f}),
        "weak": sorted(k for k, v in weak.items() if 2 * v >= n),
        "causes": [{"class": c, "cause": k} for (c, k), v in sorted(causes.items()) if 2 * v >= n],
    }


def group_stats(label: str, runs: Sequence[RunRecord], class_names: Sequence[str],
                failed: Sequence[RunRecord] = ()) -> dict[str, Any]:
    """Mean ± std of every figure over the ``ok`` runs of one group (``failed``: its crashed / missing runs)."""
    ok = [r for r in runs if r.ok]
    figures = [run_figures(r) for r in ok]
    keys = [k for k in (*METRIC_KEYS, *INSTANCE_KEYS, *PANOPTIC_KEYS) if any(k in f for f in figures)]
    ious = [run_class_iou(r) for r in ok]
    first = ok[0].dataset if ok else (failed[0].dataset if failed else {})
    return {
        "label": label,
        "dataset": {k: first.get(k) for k in ("name", "version", "content_hash", "source")},
        "split": ok[0].split if ok else None,
        "tasks": sorted({r.task for r in ok}),
        "runs": [str(r.path) for r in ok],
        "seeds": [r.seed for r in ok],
        "n_runs": len(ok),
        "failed_runs": [r.summary() for r in failed],
        "metrics": {k: stat([f.get(k) for f in figures]) for k in keys},
        "classes": {n: stat([i.get(n) for i in ious]) for n in class_names},
        "findings": _findings(ok),
    }


def _diff_findings(g: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    known = g["findings"]["runs_with_findings"] > 0 and b["findings"]["runs_with_findings"] > 0
    if not known:
        return {"known": False, "appeared": {"weak": [], "causes": []}, "disappeared": {"weak": [], "causes": []},
                "persisting": {"weak": []}}
    gw, bw = set(g["findings"]["weak"]), set(b["findings"]["weak"])
    gc = {(c["class"], c["cause"]) for c in g["findings"]["causes"]}
    bc = {(c["class"], c["cause"]) for c in b["findings"]["causes"]}
    as_list = lambda s: [{"class": c, "cause": k} for c, k in sorted(s)]  # noqa: E731
    return {"known": True,
            "appeared": {"weak": sorted(gw - bw), "causes": as_list(gc - bc)},
            "disappeared": {"weak": sorted(bw - gw), "causes": as_list(bc - gc)},
            "persisting": {"weak": sorted(gw & bw)}}


def compare_groups(groups: Mapping[str, Sequence[RunRecord]], baseline: str, *, k: float = 2.0,
                   class_names: Sequence[str] | None = None) -> dict[str, Any]:
    """Statistics of each group and deltas of every other group against ``groups[baseline]``.

    Used by :func:`compare_runs` and by the gate (candidate vs baseline). Runs that are not ``ok`` are counted
    per group under ``failed_runs`` and left out of the statistics.
    """
    if baseline not in groups:
        raise CompareError(f"baseline group {baseline!r} is not among the groups {list(groups)}")
    if class_names is None:
        class_names = check_taxonomy([r for rs in groups.values() for r in rs])
    stats = {label: group_stats(label, [r for r in rs if r.ok], class_names, [r for r in rs if not r.ok])
             for label, rs in groups.items()}
    b = stats[baseline]
    deltas = []
    for label, g in stats.items():
        if label == baseline:
            continue
        metrics = {m: delta_stat(g["metrics"][m], b["metrics"][m], k) for m in g["metrics"] if m in b["metrics"]}
        classes = {n: delta_stat(g["classes"][n], b["classes"][n], k) for n in class_names}
        deltas.append({
            "group": label, "baseline": baseline, "metrics": metrics, "classes": classes,
            "regressions": [n for n, d in classes.items() if d["status"] == "regression"],
            "improvements": [n for n, d in classes.items() if d["status"] == "improvement"],
            "unknown": [n for n, d in classes.items() if d["status"] == "unknown"],
            "findings": _diff_findings(g, b),
        })
    return {"groups": list(stats.values()), "deltas": deltas}


def _order(labels: Sequence[str], group_by: str) -> list[str]:
    if group_by != "version":
        return list(labels)

    def key(label: str) -> tuple:
        core = version_core(label.rsplit(" ", 1)[-1])
        return (label.rsplit(" ", 1)[0] if " " in label else "", core is None, core or (0, 0, 0), label)

    return sorted(labels, key=key)


def compare_runs(runs: Sequence[RunRecord | str | Path], baseline_version: str | None = None,
                 group_by: str = "version", *, k: float = 2.0) -> dict[str, Any]:
    """Compare runs per group; the ``compare.json`` document.

    Args:
        runs: :class:`RunRecord` s (see :func:`~segval.experiments.runs.discover_runs`) or run / multirun paths.
        baseline_version: the baseline group's label (a version with ``group_by="version"``, a split name, or
            ``"<dataset> <version>"``); None: the oldest version (semver order), or the first group given.
        group_by: ``version`` | ``split`` | ``dataset`` | ``config:<dotted.key>``.
        k: a delta exceeds seed noise when ``|delta| > k * se`` (see the module docstring).

    Raises:
        CompareError: different taxonomies, conflicting content hashes, mixed groups, no run with metrics,
            an unknown baseline.
    """
    if not (isinstance(k, (int, float)) and k > 0):
        raise CompareError(f"noise_k must be a positive number, got {k!r}")
    records = [r for r in runs if isinstance(r, RunRecord)]
    paths = [r for r in runs if not isinstance(r, RunRecord)]
    if paths:
        records += discover_runs(paths)
    ok = [r for r in records if r.ok]
    if not ok:
        failed = "; ".join(f"{r.label}: {r.status} ({r.reason})" for r in records) or "no runs given"
        raise CompareError(f"no run with a metrics.json to compare: {failed}")
    class_names = check_taxonomy(ok)
    check_content_hashes(records)
    several = len({r.dataset.get("name") for r in ok}) > 1
    key = lambda r: group_key(r, group_by, several_datasets=several)  # noqa: E731
    by_label: dict[str, list[RunRecord]] = {}
    for r in records:
        by_label.setdefault(key(r), []).append(r)
    labels = _order([lb for lb, rs in by_label.items() if any(r.ok for r in rs)], group_by)
    for lb in labels:
        _check_uniform(lb, [r for r in by_label[lb] if r.ok], group_by)
    baseline = labels[0] if baseline_version is None else str(baseline_version)
    if baseline not in labels:
        raise CompareError(f"baseline {baseline!r} has no run with metrics; the groups ({group_by}) are {labels}")
    groups = {lb: by_label[lb] for lb in labels}
    result = compare_groups(groups, baseline, k=float(k), class_names=class_names)
    orphans = [r for lb, rs in by_label.items() if lb not in labels for r in rs]
    failed = [r for r in records if not r.ok]
    notes = []
    for g in result["groups"]:
        if g["n_runs"] < 2:
            notes.append(f"group {g['label']} has {g['n_runs']} run(s): its std and seed noise are unknown")
        seeds = [s for s in g["seeds"] if s is not None]
        dup = sorted({s for s in seeds if seeds.count(s) > 1})
        if dup:
            notes.append(f"group {g['label']} has several runs with seed(s) {dup}")
    for r in orphans:
        notes.append(f"{r.label} ({r.status}) belongs to group {key(r)!r}, which has no run with metrics")
    unhashed = [r for r in ok if r.dataset.get("content_hash") is None]
    if unhashed:
        notes.append(f"{len(unhashed)} of {len(ok)} runs carry no dataset content hash: that their data is the "
                     "same for the same version was not checked for them")
    return {
        "schema_version": SCHEMA_VERSION,
        "group_by": group_by,
        "baseline": baseline,
        "noise": {"k": float(k), "definition": DEFINITIONS["beyond_noise"]},
        "definitions": dict(DEFINITIONS),
        "class_names": class_names,
        **result,
        "runs": [r.summary() for r in records],
        "crashed": [r.summary() for r in failed],
        "notes": notes,
    }
