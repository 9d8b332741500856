"""`segval gate`: a release verdict from a policy (``conf/gate/*.yaml``), for CI.

The verdict is a list of rules, each ``pass`` or ``fail`` with its reason; the gate passes only when every
rule passes (and there is at least one). It **fails closed**: a missing metric, class, run or file is a
failing rule that says what is missing, never a pass. Rules (each enabled by its policy key):

==================================== =====================================================================
rule                                  fails when
==================================== =====================================================================
``runs/candidate``                     no candidate run, fewer than ``min_seeds`` finished runs, a run that
                                       crashed / never started / cannot be read, runs of several dataset
                                       versions or taxonomies
``runs/baseline``                      (with regression rules) the same for the baseline runs, or no baseline
``runs/content_hash``                  two runs claim the same dataset version with different content hashes
``metric/<figure>``                    (``min_metrics``) the candidate's figure (mIoU, mAcc, fwIoU, aAcc, AP,
                                       PQ, ...) is below its floor, or a run lacks it
``class/<name>``                       (``class_floors`` / ``group_floors`` / ``default_class_floor``) the
                                       class's IoU is below its floor: its own, else its taxonomy group's,
                                       else the default. A class with no IoU (absent from ground truth and
                                       prediction) fails unless ``absent: skip``. **A class the policy names
                                       but the dataset lacks fails** (with the classes it has and the closest
                                       name): the policy demands a class the release does not measure.
``group/<group>``                      (``group_floors``) the taxonomy groups of the classes are unknown
                                       (no findings.json with groups, no readable dataset.yaml)
``regression/metric/<figure>``,        (``max_regression``) candidate mean is more than the allowed drop
``regression/class/<name>``            below the baseline mean; with ``regression_beyond_noise: true`` only a
                                       drop that exceeds seed noise (|delta| > k·se, see
                                       :mod:`segval.experiments.compare`) fails, and an unknown noise (one
                                       seed on a side) fails too
``qa``                                 (``qa.required`` or a qa.json given) no readable qa.json, its dataset
                                       version is not the candidate's, or its decision is ``findings`` (or,
                                       with ``qa.fail_on``, a finding at or above that severity)
``agreement/<group>``,                 (``agreement.required`` or an agreement.json given) no readable
``agreement/class/<name>``             agreement.json, a group / class IoU below its target (the policy's
                                       ``agreement.targets``, else the file's), or undefined
``pilot``                              (``pilot.required`` or a pilot.json given) no readable pilot.json of
                                       ``segval qa pilot``, a pilot planned but not scored, a failed pilot
                                       (a class under its threshold), or a pilot of another dataset
==================================== =====================================================================

Exit codes: 0 pass, 1 fail, 2 cannot decide (an unreadable or invalid policy or configuration:
:class:`~segval.errors.ConfigError`). Outputs: ``verdict.json``, ``verdict.md`` and ``junit.xml`` (one
testcase per rule; a failing rule's ``<failure>`` carries its reason).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from segval.dataset.taxonomy import GROUPS
from segval.errors import ConfigError, SegvalError
from segval.experiments.compare import CompareError, check_content_hashes, compare_groups, run_figures
from segval.experiments.runs import RunRecord, discover_runs
from segval.io import optional_float
from segval.io import write_json, write_text

__all__ = ["GatePolicy", "evaluate_gate", "load_policy", "render_junit", "render_markdown", "write_verdict"]

SCHEMA_VERSION = 1
SEVERITIES = ("info", "warning", "error")


# ------------------------------------------------------------------------------------------ policy
@dataclass
class GatePolicy:
    """A release policy (``conf/gate/<name>.yaml``); every rule is off when its key is empty / null.

    Attributes:
        name, description: shown in the verdict.
        aggregate: how the candidate's seeds are summarised for floors: ``mean`` or ``min`` (worst seed).
        min_seeds: finished candidate (and baseline) runs needed.
        min_metrics: ``{figure: floor}`` on summary figures (mIoU, mAcc, fwIoU, aAcc; AP, AP50, AP75; PQ, ...).
        class_floors: ``{class: IoU floor}``.
        group_floors: ``{group: IoU floor}`` for every class of a taxonomy group (rigid, deformable, thin, stuff).
        default_class_floor: IoU floor for every other class (None: none).
        absent: a class with a floor but no IoU in the candidate (absent from its split): ``fail`` or ``skip``.
        max_regression: ``{"default": drop, "classes": {class: drop}, "metrics": {figure: drop}}``: largest
            allowed drop of the mean against the baseline (IoU / figure units, 0.02 = 2 points).
        regression_beyond_noise: a drop fails only when it also exceeds seed noise (unknown noise fails).
        noise_k: the k of the seed-noise rule.
        qa: ``{"required": bool, "fail_on": None | info | warning | error}``.
        agreement: ``{"required": bool, "targets": {group: IoU}, "classes": bool}`` (``classes``: also each
            class against its group's target).
        pilot: ``{"required": bool}``: a scored, passed guideline pilot (``segval qa pilot``) must be given.
    """

    name: str = "default"
    description: str = ""
    aggregate: str = "mean"
    min_seeds: int = 1
    min_metrics: dict[str, float] = field(default_factory=dict)
    class_floors: dict[str, float] = field(default_factory=dict)
    group_floors: dict[str, float] = field(default_factory=dict)
    default_class_floor: float | None = None
    absent: str = "fail"
    max_regression: dict[str, Any] = field(default_factory=dict)
    regression_beyond_noise: bool = False
    noise_k: float = 2.0
    qa: dict[str, Any] = field(default_factory=lambda: {"required": False, "fail_on": None})
    agreement: dict[str, Any] = field(default_factory=lambda: {"required": False, "targets": {}, "classes": False})
    pilot: dict[str, Any] = field(default_factory=lambda: {"required": False})

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None, *, source: str = "policy") -> GatePolicy:
        """Build and check a policy; :class:`ConfigError` (exit 2) names the bad key and what is allowed."""
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ConfigError(f"{source}: a gate policy must be a mapping of rules, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown policy key(s) {unknown}; allowed: {sorted(known)}")
        p = cls(**{k: v for k, v in data.items() if v is not None or k == "default_class_floor"})

        def floor(where: str, v: Any) -> float:
            f = optional_float(v)
            if f is None or not 0.0 <= f <= 1.0:
                raise ConfigError(f"{source}: {where} must be a number in [0, 1], got {v!r}")
            return f

        def floors(where: str, m: Any) -> dict[str, float]:
            if m is None:
                return {}
            if not isinstance(m, Mapping):
                raise ConfigError(f"{source}: {where} must be a mapping {{name: value}}, got {m!r}")
            return {str(k): floor(f"{where}.{k}", v) for k, v in m.items() if v is not None}

        p.name, p.description = str(p.name), str(p.description or "")
        if p.aggregate not in ("mean", "min"):
            raise ConfigError(f"{source}: aggregate must be 'mean' or 'min', got {p.aggregate!r}")
        if not isinstance(p.min_seeds, int) or isinstance(p.min_seeds, bool) or p.min_seeds < 1:
            raise ConfigError(f"{source}: min_seeds must be an integer >= 1, got {p.min_seeds!r}")
        p.min_metrics = floors("min_metrics", p.min_metrics)
        p.class_floors = floors("class_floors", p.class_floors)
        p.group_floors = floors("group_floors", p.group_floors)
        bad = sorted(set(p.group_floors) - set(GROUPS))
        if bad:
            raise ConfigError(f"{source}: group_floors names unknown group(s) {bad}; groups are {list(GROUPS)}")
        if p.default_class_floor is not None:
            p.default_class_floor = floor("default_class_floor", p.default_class_floor)
        if p.absent not in ("fail", "skip"):
            raise ConfigError(f"{source}: absent must be 'fail' or 'skip', got {p.absent!r}")
        mr = dict(p.max_regression or {})
        bad = sorted(set(mr) - {"default", "classes", "metrics"})
        if bad:
            raise ConfigError(f"{source}: max_regression has unknown key(s) {bad}; allowed: default, classes, metrics")
        p.max_regression = {"default": None if mr.get("default") is None else floor("max_regression.default",
                                                                                       mr["default"]),
                            "classes": floors("max_regression.classes", mr.get("classes")),
                            "metrics": floors("max_regression.metrics", mr.get("metrics"))}
        if not isinstance(p.regression_beyond_noise, bool):
            raise ConfigError(f"{source}: regression_beyond_noise must be true or false, "
                              f"got {p.regression_beyond_noise!r}")
        k = optional_float(p.noise_k)
        if k is None or k <= 0:
            raise ConfigError(f"{source}: noise_k must be a positive number, got {p.noise_k!r}")
        p.noise_k = k
        qa = dict(p.qa or {})
        if set(qa) - {"required", "fail_on"}:
            raise ConfigError(f"{source}: qa allows the keys required, fail_on; got {sorted(qa)}")
        if qa.get("fail_on") not in (None, *SEVERITIES):
            raise ConfigError(f"{source}: qa.fail_on must be null or one of {list(SEVERITIES)}, got {qa['fail_on']!r}")
        p.qa = {"required": bool(qa.get("required", False)), "fail_on": qa.get("fail_on")}
        ag = dict(p.agreement or {})
        if set(ag) - {"required", "targets", "classes"}:
            raise ConfigError(f"{source}: agreement allows the keys required, targets, classes; got {sorted(ag)}")
        p.agreement = {"required": bool(ag.get("required", False)),
                       "targets": floors("agreement.targets", ag.get("targets")),
                       "classes": bool(ag.get("classes", False))}
        pi = dict(p.pilot or {})
        if set(pi) - {"required"}:
            raise ConfigError(f"{source}: pilot allows the key required; got {sorted(pi)}")
        if not isinstance(pi.get("required", False), bool):
            raise ConfigError(f"{source}: pilot.required must be true or false, got {pi['required']!r}")
        p.pilot = {"required": bool(pi.get("required", False))}
        return p

    @property
    def has_regression_rules(self) -> bool:
        mr = self.max_regression
        return mr.get("default") is not None or bool(mr.get("classes")) or bool(mr.get("metrics"))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_policy(path: str | Path) -> GatePolicy:
    """A policy from a YAML file (``ConfigError`` naming the file when it is missing or unreadable)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: the gate policy cannot be read: {err}") from err
    return GatePolicy.from_mapping(data, source=str(path))


# ------------------------------------------------------------------------------------------ rules
def _rule(name: str, kind: str, ok: bool, reason: str, value: Any = None, threshold: Any = None) -> dict[str, Any]:
    return {"name": name, "kind": kind, "status": "pass" if ok else "fail", "reason": reason,
            "value": value, "threshold": threshold}


def _pct(x: float | None) -> str:
    return "undefined" if x is None else f"{100 * x:.2f}%"


def _runs(spec: Any, role: str, rules: list[dict[str, Any]]) -> list[RunRecord]:
    """Run records from records / paths; a path that cannot be read is a failing rule (never skipped)."""
    if spec is None:
        return []
    if isinstance(spec, (str, Path, RunRecord)):
        spec = [spec]
    out: list[RunRecord] = []
    for item in spec:
        if isinstance(item, RunRecord):
            out.append(item)
            continue
        try:
            out += discover_runs([item], findings="file")
        except SegvalError as err:
            rules.append(_rule(f"runs/{role}", "runs", False, str(err)))
    return out


def _only(runs: list[RunRecord], version: str | None) -> list[RunRecord]:
    if version is None:
        return runs
    return [r for r in runs if r.version is None or str(r.version) == str(version)]


def _check_runs(runs: Sequence[RunRecord], role: str, min_seeds: int) -> dict[str, Any]:
    ok = [r for r in runs if r.ok]
    bad = [r for r in runs if not r.ok]
    problems = [f"{r.label}: {r.status}: {r.reason}" for r in bad]
    if not runs:
        problems.append(f"no {role} runs were given")
    elif len(ok) < min_seeds:
        problems.append(f"{len(ok)} finished {role} run(s), the policy needs at least {min_seeds}")
    versions = sorted({(str(r.dataset.get("name")), str(r.version)) for r in ok})
    if len(versions) > 1:
        problems.append(f"the {role} runs are of several dataset versions {versions}: pass the runs of one version")
    names = {tuple(r.class_names or ()) for r in ok}
    if len(names) > 1:
        problems.append(f"the {role} runs have different taxonomies: {sorted(names)}")
    what = f"{len(ok)} finished {role} run(s)" + (f" of {versions[0][0]} {versions[0][1]}" if len(versions) == 1
                                                  else "")
    return _rule(f"runs/{role}", "runs", not problems, "; ".join(problems) if problems else what, value=len(ok),
                 threshold=min_seeds)


def _closest(name: str, names: Sequence[str]) -> str:
    m = difflib.get_close_matches(name, list(names), n=1)
    return f"; did you mean {m[0]!r}?" if m else ""


def _aggregate(values: Sequence[float | None], how: str) -> float | None:
    if not values or any(v is None for v in values):
        return None
    return min(values) if how == "min" else sum(values) / len(values)


def taxonomy_groups(runs: Sequence[RunRecord], agreement: Mapping[str, Any] | None = None) -> dict[str, str] | None:
    """Class name -> taxonomy group, from the runs' findings.json, else their dataset.yaml (metrics.json
    ``dataset.source``), else the agreement file; None when none of them says."""
    for r in runs:
        classes = (r.findings or {}).get("classes") or []
        groups = {str(c.get("name")): c.get("group") for c in classes}
        if groups and all(g in GROUPS for g in groups.values()):
            return {k: str(v) for k, v in groups.items()}
    for r in runs:
        src = r.dataset.get("source")
        if not src or not (Path(src) / "dataset.yaml").is_file():
            continue
        try:
            tax = (yaml.safe_load((Path(src) / "dataset.yaml").read_text(encoding="utf-8")) or {}).get("taxonomy")
            groups = {str(c["name"]): str(c.get("group") or ("rigid" if c.get("isthing") else "stuff"))
                      for c in tax or []}
        except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError):
            continue
        if groups:
            return groups
    classes = (agreement or {}).get("classes") or []
    groups = {str(c.get("name")): c.get("group") for c in classes if c.get("group") in GROUPS}
    return {k: str(v) for k, v in groups.items()} or None


def _floor_rules(policy: GatePolicy, ok: Sequence[RunRecord], names: Sequence[str], groups: dict[str, str] | None,
                 ds: str) -> list[dict[str, Any]]:
    rules = []
    how = policy.aggregate
    for key, floor in policy.min_metrics.items():
        vals = [run_figures(r).get(key) for r in ok]
        lacking = [r.label for r, v in zip(ok, vals, strict=True) if v is None]
        if not ok or lacking:
            why = "no finished candidate run" if not ok else f"{key} is missing or undefined in {', '.join(lacking)}"
            rules.append(_rule(f"metric/{key}", "metric_floor", False, why, threshold=floor))
            continue
        v = _aggregate(vals, how)
        rules.append(_rule(f"metric/{key}", "metric_floor", v >= floor,
                           f"{key} {how} over {len(vals)} run(s) {_pct(v)} {'>=' if v >= floor else '<'} "
                           f"floor {_pct(floor)}", value=v, threshold=floor))
    # the floor of each class: its own, else its group's, else the default
    wanted: dict[str, tuple[float, str]] = {}
    if policy.default_class_floor is not None:
        wanted.update({n: (policy.default_class_floor, "default_class_floor") for n in names})
    if policy.group_floors:
        if groups is None:
            rules.append(_rule("group/" + ",".join(policy.group_floors), "group_floor", False,
                               "group_floors need the taxonomy group of each class, but no findings.json with groups, "
                               "readable dataset.yaml (metrics.json dataset.source) or agreement.json gives them"))
        else:
            for g, floor in policy.group_floors.items():
                members = [n for n in names if groups.get(n) == g]
                wanted.update({n: (floor, f"group_floors.{g}") for n in members})
                if not members:
                    rules.append(_rule(f"group/{g}", "group_floor", True,
                                       f"{ds} has no class of group {g}: nothing to hold to its floor",
                                       threshold=floor))
    wanted.update({n: (f, "class_floors") for n, f in policy.class_floors.items()})
    for n, (floor, origin) in wanted.items():
        if n not in names:
            rules.append(_rule(f"class/{n}", "class_floor", False,
                               f"the policy ({origin}) names class {n!r}, which {ds} does not have (classes: "
                               f"{list(names)}){_closest(n, names)}", threshold=floor))
            continue
        vals = [next((r.get("IoU") for r in (run.metrics or {}).get("per_class") or [] if r.get("name") == n), None)
                for run in ok]
        vals = [optional_float(v) for v in vals]
        if not ok:
            rules.append(_rule(f"class/{n}", "class_floor", False, "no finished candidate run", threshold=floor))
            continue
        if any(v is None for v in vals):
            absent = [run.label for run, v in zip(ok, vals, strict=True) if v is None]
            skip = policy.absent == "skip"
            rules.append(_rule(f"class/{n}", "class_floor", skip,
                               f"{n} has no IoU (absent from ground truth and prediction) in {', '.join(absent)}"
                               + (": skipped (absent: skip)" if skip else ": it cannot be shown to meet its floor"),
                               threshold=floor))
            continue
        v = _aggregate(vals, how)
        rules.append(_rule(f"class/{n}", "class_floor", v >= floor,
                           f"{n} IoU {how} over {len(vals)} run(s) {_pct(v)} {'>=' if v >= floor else '<'} "
                           f"{origin} {_pct(floor)}", value=v, threshold=floor))
    return rules


def _regression_rules(policy: GatePolicy, cand: Sequence[RunRecord], base: Sequence[RunRecord],
                      names: Sequence[str], ds: str) -> list[dict[str, Any]]:
    mr = policy.max_regression
    cand_ok, base_ok = [r for r in cand if r.ok], [r for r in base if r.ok]
    wanted_c = {n: mr["default"] for n in names} if mr.get("default") is not None else {}
    wanted_c.update(mr.get("classes") or {})
    wanted_m = dict(mr.get("metrics") or {})
    rules = []
    base_names = base_ok[0].class_names if base_ok else None
    problem = None
    if not cand_ok or not base_ok:
        problem = "no finished " + ("candidate" if not cand_ok else "baseline") + " run to compare"
    elif list(base_names or []) != list(names):
        problem = (f"the baseline's taxonomy differs from the candidate's ({base_names} vs {list(names)}): "
                   "regressions cannot be measured class by class")
    if problem is not None:
        return [_rule(f"regression/{kind}/{n}", f"{kind}_regression", False, problem, threshold=t)
                for kind, w in (("metric", wanted_m), ("class", wanted_c)) for n, t in w.items()]
    cmp = compare_groups({"baseline": base_ok, "candidate": cand_ok}, "baseline", k=policy.noise_k, class_names=names)
    d = cmp["deltas"][0]
    for kind, wanted, deltas in (("metric", wanted_m, d["metrics"]), ("class", wanted_c, d["classes"])):
        for n, max_drop in wanted.items():
            rname = f"regression/{kind}/{n}"
            if n not in deltas:
                why = (f"the policy names class {n!r}, which {ds} does not have{_closest(n, names)}" if kind == "class"
                       else f"{n} is missing from the candidate or baseline metrics")
                rules.append(_rule(rname, f"{kind}_regression", False, why, threshold=max_drop))
                continue
            x = deltas[n]
            if x["delta"] is None:
                skip = kind == "class" and policy.absent == "skip"
                rules.append(_rule(rname, f"{kind}_regression", skip,
                                   f"{n} is undefined (absent) in the candidate or the baseline"
                                   + (": skipped (absent: skip)" if skip else ": its regression cannot be measured"),
                                   threshold=max_drop))
                continue
            drop = -x["delta"]
            over = drop > max_drop + 1e-12
            noise_txt = {True: "beyond seed noise", False: "within seed noise", None: "seed noise unknown"}[
                x["beyond_noise"]]
            if x["threshold"] is not None:
                noise_txt += f" (k·se {_pct(x['threshold'])})"
            fails = over and (not policy.regression_beyond_noise or x["beyond_noise"] is not False)
            verb = f"drops {100 * drop:.2f}" if drop > 0 else f"gains {-100 * drop:.2f}" if drop < 0 else "changes 0"
            reason = (f"{n} {verb} points against the baseline, {noise_txt}; allowed drop "
                      f"{100 * max_drop:.2f} points")
            if over and not fails:
                reason += "; within seed noise, so not counted (regression_beyond_noise)"
            rules.append(_rule(rname, f"{kind}_regression", not fails, reason, value=-drop, threshold=max_drop))
    return rules


def _load_doc(spec: Any, filename: str) -> tuple[dict[str, Any] | None, str]:
    """A JSON document given as a dict, a file or a folder holding ``filename``; (None, why) when unreadable."""
    if isinstance(spec, Mapping):
        return dict(spec), "(given in memory)"
    p = Path(spec)
    if p.is_dir():
        p = p / filename
    if not p.is_file():
        return None, f"{p} does not exist"
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        return None, f"{p} cannot be read as JSON: {err}"
    return (doc, str(p)) if isinstance(doc, dict) else (None, f"{p} is not a JSON object")


def _qa_rule(policy: GatePolicy, qa: Any, version: str | None) -> dict[str, Any] | None:
    if qa is None:
        if policy.qa["required"]:
            return _rule("qa", "qa", False, "the policy requires QA to pass, but no qa.json was given "
                                           "(run segval qa and pass qa=<its run directory or qa.json>)")
        return None
    doc, where = _load_doc(qa, "qa.json")
    if doc is None:
        return _rule("qa", "qa", False, f"QA result unavailable: {where}")
    dec, counts = doc.get("decision"), (doc.get("counts") or {}).get("severity")
    if not isinstance(dec, Mapping) or dec.get("status") not in ("clean", "findings"):
        return _rule("qa", "qa", False, f"{where} is not a segval qa.json (no decision.status clean / findings)")
    qv = (doc.get("dataset") or {}).get("version")
    if version is not None and (qv is None or str(qv) != str(version)):
        return _rule("qa", "qa", False, f"{where} checked dataset version {qv}, the candidate is {version}: "
                                        "run segval qa on the candidate's package")
    fail_on = policy.qa["fail_on"]
    if fail_on is None:
        ok = dec["status"] == "clean"
        return _rule("qa", "qa", ok, f"{where}: {dec['status']} (worst severity {dec.get('worst_severity') or 'none'}, "
                                     f"fail_on {dec.get('fail_on')})", value=dec["status"])
    if not isinstance(counts, Mapping):
        return _rule("qa", "qa", False, f"{where} has no counts.severity to judge with qa.fail_on={fail_on}")
    at_or_above = {s: int(counts.get(s) or 0) for s in SEVERITIES[SEVERITIES.index(fail_on):]}
    n = sum(at_or_above.values())
    return _rule("qa", "qa", n == 0, f"{where}: {n} finding(s) at or above {fail_on} "
                                     f"({', '.join(f'{k} {v}' for k, v in at_or_above.items())})", value=n,
                 threshold=fail_on)


def _agreement_rules(policy: GatePolicy, agreement: Any) -> list[dict[str, Any]]:
    req = policy.agreement["required"]
    if agreement is None:
        return [_rule("agreement", "agreement", False, "the policy requires an agreement check, but no agreement.json "
                                                       "was given (run segval agreement)")] if req else []
    doc, where = _load_doc(agreement, "agreement.json")
    if doc is None:
        return [_rule("agreement", "agreement", False, f"agreement result unavailable: {where}")]
    per_group = doc.get("per_group")
    if not isinstance(per_group, Mapping) or not isinstance(doc.get("per_class"), Mapping):
        return [_rule("agreement", "agreement", False, f"{where} is not a segval agreement.json (no per_group / "
                                                       "per_class)")]
    targets = dict(doc.get("targets") or {})
    targets.update(policy.agreement["targets"])
    rules = []
    for g in sorted(set(per_group) | set(policy.agreement["targets"])):
        t = optional_float(targets.get(g))
        v = optional_float((per_group.get(g) or {}).get("IoU")) if isinstance(per_group.get(g), Mapping) else None
        if t is None:
            rules.append(_rule(f"agreement/{g}", "agreement", False, f"no agreement target for group {g}"))
        elif v is None:
            rules.append(_rule(f"agreement/{g}", "agreement", False,
                               f"{where} has no agreement IoU for group {g}", threshold=t))
        else:
            rules.append(_rule(f"agreement/{g}", "agreement", v >= t, f"group {g} inter-annotator IoU {_pct(v)} "
                               f"{'>=' if v >= t else '<'} target {_pct(t)}", value=v, threshold=t))
    if policy.agreement["classes"]:
        for c in doc.get("classes") or []:
            t = optional_float(targets.get(c.get("group"), c.get("target")))
            v = optional_float(c.get("IoU"))
            ok = v is not None and t is not None and v >= t
            rules.append(_rule(f"agreement/class/{c.get('name')}", "agreement", ok,
                               f"{c.get('name')} inter-annotator IoU {_pct(v)} vs target {_pct(t)}", value=v,
                               threshold=t))
    if not rules:
        rules.append(_rule("agreement", "agreement", False, f"{where} has no group to check"))
    return rules


def _pilot_rule(policy: GatePolicy, pilot: Any, dataset: str | None) -> dict[str, Any] | None:
    """A scored, passed guideline pilot of the candidate's dataset (fails closed when required and missing)."""
    if pilot is None:
        if policy.pilot["required"]:
            return _rule("pilot", "pilot", False, "the policy requires a passed guideline pilot, but no pilot.json was "
                                                  "given (run segval qa pilot, plan then score, and pass pilot=<it>)")
        return None
    doc, where = _load_doc(pilot, "pilot.json")
    if doc is None:
        return _rule("pilot", "pilot", False, f"pilot result unavailable: {where}")
    status = doc.get("status")
    if doc.get("kind") != "segval guideline pilot" or status not in ("planned", "passed", "failed"):
        return _rule("pilot", "pilot", False, f"{where} is not a pilot.json of segval qa pilot")
    name = (doc.get("dataset") or {}).get("name")
    if dataset is not None and name != dataset:
        return _rule("pilot", "pilot", False, f"{where} is a pilot of dataset {name!r}, the candidate is {dataset!r}")
    if status == "planned":
        return _rule("pilot", "pilot", False, f"{where}: the pilot was planned but not scored (segval qa pilot "
                                              "pilot=<it> sets=[...] scores the returned sets)", value=status)
    thr = optional_float(doc.get("threshold"))
    if status == "failed":
        low = [f"{c['name']} {_pct(optional_float(c.get('IoU')))}" for c in doc.get("classes") or [] if c.get("flagged")]
        return _rule("pilot", "pilot", False, f"{where}: pilot failed, classes under {_pct(thr)} inter-annotator IoU: "
                                              f"{', '.join(low) or doc.get('flagged_classes')}; clarify their guideline "
                                              "sections and run the pilot again", value=status, threshold=thr)
    n = len(doc.get("annotators") or [])
    return _rule("pilot", "pilot", True, f"{where}: pilot passed ({n} annotators x {len(doc.get('images') or [])} "
                                         f"images, every measured class >= {_pct(thr)})", value=status, threshold=thr)


def evaluate_gate(policy: GatePolicy | Mapping[str, Any], *, candidate: Any, baseline: Any = None, qa: Any = None,
                  agreement: Any = None, candidate_version: str | None = None,
                  baseline_version: str | None = None, pilot: Any = None) -> dict[str, Any]:
    """The verdict of ``policy`` on the candidate runs.

    Args:
        policy: a :class:`GatePolicy` or its mapping (checked: ConfigError on a bad policy).
        candidate: run records, or run / multirun directories (a multirun's crashed or missing jobs fail).
        baseline: the same for the baseline version (needed by regression rules).
        qa: ``qa.json`` (path, folder holding it, or its dict) of the candidate's package, or None.
        agreement: ``agreement.json`` (path, folder, or dict), or None.
        pilot: ``pilot.json`` of ``segval qa pilot`` (path, folder, or dict), or None.
        candidate_version, baseline_version: keep only the runs of this dataset version (e.g. both from one sweep
            over versions); a run whose version is unknown is kept (and so judged, never dropped).

    Returns:
        ``{"status": "pass" | "fail", "exit_code": 0 | 1, "rules": [...], "failed": [rule names], ...}``.
    """
    if not isinstance(policy, GatePolicy):
        policy = GatePolicy.from_mapping(policy)
    rules: list[dict[str, Any]] = []
    cand = _only(_runs(candidate, "candidate", rules), candidate_version)
    base = _only(_runs(baseline, "baseline", rules), baseline_version) if baseline is not None else []
    rules.append(_check_runs(cand, "candidate", policy.min_seeds))
    if policy.has_regression_rules or base:
        rules.append(_check_runs(base, "baseline", policy.min_seeds))
    try:
        check_content_hashes([*cand, *base])
        if any(r.dataset.get("content_hash") for r in [*cand, *base]):
            rules.append(_rule("runs/content_hash", "runs", True,
                               "runs of the same version carry the same content hash"))
    except CompareError as err:
        rules.append(_rule("runs/content_hash", "runs", False, str(err)))
    ok = [r for r in cand if r.ok]
    names = list(ok[0].class_names or []) if ok else []
    ds_info = ok[0].dataset if ok else {}
    ds = f"dataset {ds_info.get('name')} {ds_info.get('version')}" if ok else "the candidate (no finished run)"
    groups = taxonomy_groups(ok, None if agreement is None else _load_doc(agreement, "agreement.json")[0]) \
        if policy.group_floors else None
    rules += _floor_rules(policy, ok, names, groups, ds)
    if policy.has_regression_rules:
        rules += _regression_rules(policy, cand, base, names, ds)
    qa_rule = _qa_rule(policy, qa, ds_info.get("version"))
    if qa_rule is not None:
        rules.append(qa_rule)
    rules += _agreement_rules(policy, agreement)
    rules += [r for r in [_pilot_rule(policy, pilot, ds_info.get("name") if ok else None)] if r is not None]
    checks = [r for r in rules if r["kind"] != "runs"]
    if not checks:
        rules.append(_rule("policy", "policy", False, f"policy {policy.name!r} has no rule that checks the candidate: "
                                                      "a gate that checks nothing does not pass"))
    failed = [r["name"] for r in rules if r["status"] == "fail"]
    base_ok = [r for r in base if r.ok]
    return {
        "schema_version": SCHEMA_VERSION,
        "status": "fail" if failed else "pass",
        "exit_code": 1 if failed else 0,
        "policy": policy.to_dict(),
        "candidate": {"dataset": ds_info, "runs": [r.summary() for r in cand]},
        "baseline": {"dataset": base_ok[0].dataset if base_ok else {}, "runs": [r.summary() for r in base]},
        "counts": {"rules": len(rules), "passed": len(rules) - len(failed), "failed": len(failed)},
        "failed": failed,
        "rules": rules,
    }


def error_verdict(message: str, policy: str | None = None) -> dict[str, Any]:
    """The verdict when the gate cannot decide (exit 2): an unreadable / invalid policy or configuration."""
    return {"schema_version": SCHEMA_VERSION, "status": "error", "exit_code": 2, "policy": {"name": policy},
            "error": message, "counts": {"rules": 0, "passed": 0, "failed": 0}, "failed": [], "rules": []}


# ------------------------------------------------------------------------------------------ outputs
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|&~$])")


def md_escape(text: Any) -> str:
    """Markdown syntax in ``text`` escaped (as :func:`segval.report.analyze.md_escape`, without its
    torch import)."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(str(text).split()))


def render_markdown(verdict: Mapping[str, Any]) -> str:
    def _md_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
        out = ["| " + " | ".join(md_escape(c) for c in columns) + " |", "|" + "---|" * len(columns)]
        return out + ["| " + " | ".join(md_escape(v) for v in row) + " |" for row in rows]

    pol = verdict.get("policy") or {}
    head = {"pass": "PASS", "fail": "FAIL", "error": "CANNOT DECIDE"}[verdict["status"]]
    c = verdict["counts"]
    lines = [f"# segval gate: {head}", "", f"- policy: `{pol.get('name')}`"]
    cand = (verdict.get("candidate") or {}).get("dataset") or {}
    if cand:
        lines.append(f"- candidate: {md_escape(cand.get('name'))} {md_escape(cand.get('version'))}")
    base = (verdict.get("baseline") or {}).get("dataset") or {}
    if base:
        lines.append(f"- baseline: {md_escape(base.get('name'))} {md_escape(base.get('version'))}")
    lines.append(f"- rules: {c['passed']} passed, {c['failed']} failed (exit code {verdict['exit_code']})")
    lines.append("")
    if verdict["status"] == "error":
        lines += ["## Error", "", md_escape(verdict.get("error")), ""]
    failed = [r for r in verdict["rules"] if r["status"] == "fail"]
    if failed:
        lines += ["## Failed rules", ""] + [f"- **{md_escape(r['name'])}**: {md_escape(r['reason'])}" for r in failed]
        lines.append("")
    if verdict["rules"]:
        lines += ["## All rules", ""] + _md_table(["status", "rule", "reason"],
                                                  [[r["status"].upper(), r["name"], r["reason"]]
                                                   for r in verdict["rules"]])
    return "\n".join(lines).rstrip() + "\n"


def render_junit(verdict: Mapping[str, Any]) -> str:
    """JUnit XML for CI: one ``<testcase>`` per rule (``classname`` segval.gate.<kind>); a failing rule has a
    ``<failure>`` whose message is its reason; a gate that cannot decide has one ``<error>`` testcase."""
    rules = verdict["rules"]
    errors = 1 if verdict["status"] == "error" else 0
    suite = ET.Element("testsuite", name=f"segval gate ({(verdict.get('policy') or {}).get('name')})",
                       tests=str(len(rules) + errors), failures=str(verdict["counts"]["failed"]), errors=str(errors),
                       skipped="0")
    for r in rules:
        case = ET.SubElement(suite, "testcase", classname=f"segval.gate.{r['kind']}", name=r["name"], time="0")
        if r["status"] == "fail":
            fail = ET.SubElement(case, "failure", message=r["reason"], type=r["kind"])
            fail.text = json.dumps({k: r[k] for k in ("value", "threshold")}, default=str)
        else:
            ET.SubElement(case, "system-out").text = r["reason"]
    if errors:
        case = ET.SubElement(suite, "testcase", classname="segval.gate.policy", name="gate", time="0")
        err = ET.SubElement(case, "error", message=str(verdict.get("error")), type="cannot_decide")
        err.text = str(verdict.get("error"))
    root = ET.Element("testsuites", tests=suite.get("tests"), failures=suite.get("failures"), errors=str(errors))
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_verdict(verdict: Mapping[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """Write ``verdict.json``, ``verdict.md`` and ``junit.xml`` into ``out_dir`` (each atomically)."""
    out_dir = Path(out_dir)
    return {"json": write_json(out_dir / "verdict.json", verdict),
            "markdown": write_text(out_dir / "verdict.md", render_markdown(verdict)),
            "junit": write_text(out_dir / "junit.xml", render_junit(verdict))}
