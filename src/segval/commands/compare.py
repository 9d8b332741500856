"""`segval compare`: compare runs per dataset version (or split / dataset) over seeds.

Reads run directories or multirun directories (:mod:`segval.experiments.runs`), computes mean ± std per group,
per-class deltas against the baseline group and whether each exceeds seed noise
(:mod:`segval.experiments.compare`), and writes ``compare.json``, ``compare.md`` and a self-contained
``compare.html`` into the run directory. A crashed job is listed, never silently skipped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from segval.commands._common import as_list, segval_app
from segval.errors import ConfigError


def format_result(result: dict[str, Any]) -> str:
    """The console summary: mean ± std per group, regressions / improvements beyond noise per comparison."""
    lines = []
    for g in result["groups"]:
        m = g["metrics"].get("mIoU", {})
        miou = "-" if m.get("mean") is None else f"{100 * m['mean']:.2f}" + (
            f" ± {100 * m['std']:.2f}" if m.get("std") is not None else "")
        failed = f", {len(g['failed_runs'])} failed" if g["failed_runs"] else ""
        lines.append(f"{g['label']:<24} mIoU {miou:<16} ({g['n_runs']} run(s){failed})")
    for d in result["deltas"]:
        mi = d["metrics"].get("mIoU", {})
        delta = "-" if mi.get("delta") is None else f"{100 * mi['delta']:+.2f}"
        lines.append(f"{d['group']} vs {d['baseline']}: mIoU {delta} ({mi.get('status', '-')}); "
                     f"regressions beyond noise: {', '.join(d['regressions']) or 'none'}; "
                     f"improvements: {', '.join(d['improvements']) or 'none'}"
                     + (f"; unknown (one seed): {len(d['unknown'])} classes" if d["unknown"] else ""))
        f = d["findings"]
        if f["known"]:
            lines.append(f"  weak classes appeared: {', '.join(f['appeared']['weak']) or 'none'}; "
                         f"disappeared: {', '.join(f['disappeared']['weak']) or 'none'}")
    for c in result["crashed"]:
        lines.append(f"NOT FINISHED {c['path']}: {c['status']}: {c['reason']}")
    return "\n".join(lines)


def run(cfg: DictConfig) -> dict[str, Any]:
    """``segval compare`` on a composed ``compare`` config (also called in-process by validate); writes the outputs into ``cfg.paths.output_dir`` and returns the compare.json document."""
    from segval.experiments.compare import compare_runs
    from segval.report.compare import write_compare
    from segval.experiments.runs import discover_runs

    paths = as_list(cfg.runs, "runs")
    if not paths:
        raise ConfigError("nothing to compare: pass runs=[<run dir>,...] or runs=<multirun dir>")
    result = compare_runs(discover_runs(paths), baseline_version=cfg.baseline, group_by=str(cfg.group_by),
                          k=float(cfg.noise_k))
    out = write_compare(result, Path(cfg.paths.output_dir), plots=bool(cfg.plots))
    print(format_result(result))
    for n in result["notes"]:
        print(f"note: {n}")
    print(f"\ncompared {len(result['groups'])} group(s) by {result['group_by']} against baseline {result['baseline']}")
    print(f"compare: {out['json']}\n         {out['markdown']}\n         {out['html']}")
    return result


main = segval_app("compare")(run)


if __name__ == "__main__":
    main()
