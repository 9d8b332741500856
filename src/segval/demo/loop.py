"""`segval demo run`: the whole loop, each stage a real ``segval`` command in its own process.

render -> inject -> qa -> train (corrupted) -> analyze -> eval on train -> relabel queue (+ SAM 2
proposals) -> oracle -> relabel import (new version) -> retrain -> compare -> gate -> annotation guideline
(of the relabelled package, with the analyze findings and the queue) -> summary.

The stages and their arguments live in ``conf/demo_run.yaml`` (``stages.<name>.args``, OmegaConf
interpolations of this run's paths); each one runs as ``python -m segval.cli <args>`` and must exit
with one of its ``ok`` codes. The summary (:func:`summarize`) reads only what the stages wrote and the
injection manifest: errors injected, injected images found in the queue, mIoU before / after on the
(clean) validation split, per-class deltas, the gate verdict and where the reports are. It is
printed and written to ``demo.json`` in the run directory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from segval.errors import SegvalError
from segval.experiments.compare import delta_stat, stat

__all__ = ["format_summary", "run_stage", "run_stages_at_once", "summarize"]


def run_stage(name: str, args: Sequence[str], *, ok: Sequence[int] = (0,), log_dir: Path, index: str = "",
              env: Mapping[str, str] | None = None, echo: bool = True) -> float:
    """Run ``segval <args>`` in a new process (output kept in ``<log_dir>/<name>.log``, and shown when ``echo``);
    seconds taken.

    Args:
        env: variables added to this process's environment (e.g. ``OMP_NUM_THREADS``).

    Raises:
        SegvalError: the command exited with a code not in ``ok`` (its log's tail is in the message).
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    cmd = [sys.executable, "-m", "segval.cli", *map(str, args)]
    print(f"\n=== {index}{name}: segval {' '.join(map(str, args))}" + ("" if echo else f" (output: {log_path})"),
          flush=True)
    start = time.perf_counter()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **dict(env or {})}
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, bufsize=1)
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            if echo:
                sys.stdout.write(line)
        code = proc.wait()
    took = time.perf_counter() - start
    if code not in ok:
        tail = "".join(log_path.read_text(encoding="utf-8").splitlines(keepends=True)[-15:])
        raise SegvalError(f"stage {name!r} (segval {' '.join(map(str, args))}) exited with {code} after "
                          f"{took:.0f} s; log: {log_path}\n{tail}")
    print(f"=== {name}: done in {took:.1f} s (exit {code})", flush=True)
    return took


def run_stages_at_once(runs: Sequence[tuple[str, Sequence[str]]], *, ok: Sequence[int] = (0,), log_dir: Path,
                       index: str = "", threads: int | None = None) -> float:
    """Run several ``segval`` commands at once, each in its own process with ``OMP_NUM_THREADS=threads`` (the
    first one's output shown, every output kept in ``<log_dir>/<name>.log``); seconds until the last one ends.

    Args:
        runs: (name, args) per process.

    Raises:
        SegvalError: a command exited with a code not in ``ok`` (after all of them ended; the first failure).
    """
    env = None if threads is None else {"OMP_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(1, len(runs))) as pool:
        futures = [pool.submit(run_stage, name, args, ok=ok, log_dir=log_dir, index=index, env=env, echo=i == 0)
                   for i, (name, args) in enumerate(runs)]
        errors = [f.exception() for f in futures]
    for err in errors:
        if err is not None:
            raise err
    return time.perf_counter() - start


def _read(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _miou(metrics: Mapping[str, Any] | None) -> float | None:
    return None if not metrics else (metrics.get("summary") or {}).get("mIoU")


def side_metrics(path: Path) -> list[dict[str, Any]]:
    """The ``metrics.json`` of one side's trainings: ``path`` itself when it is a run directory, else each
    sub-folder that holds one (``seed0/``, ``seed1/``, ... in name order; as ``compare`` finds runs); [] when there
    is none."""
    from segval.experiments.runs import discover_runs

    if not path.is_dir():
        return []
    try:
        runs = discover_runs([path], findings=False)
    except SegvalError:  # no run there (yet)
        return []
    return [r.metrics for r in runs if r.metrics is not None]


def _per_class(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean IoU per class over each side's seeds, in the first run's class order, with the delta."""
    if not before or not after:
        return []

    def ious(runs: list[dict[str, Any]], name: str) -> float | None:
        return stat([next((r.get("IoU") for r in m["per_class"] if r["name"] == name), None) for m in runs])["mean"]
    rows = []
    for r in before[0]["per_class"]:
        b_iou, a_iou = ious(before, r["name"]), ious(after, r["name"])
        rows.append({"name": r["name"], "before": b_iou, "after": a_iou,
                     "delta": None if b_iou is None or a_iou is None else a_iou - b_iou})
    return rows


def summarize(paths: Mapping[str, str | os.PathLike], timings: Mapping[str, float] | None = None) -> dict[str, Any]:
    """The demo's result from the files the stages wrote.

    Args:
        paths: ``manifest`` (errors.json), ``queue`` (queue.json), ``before`` / ``after`` (train run
            directories), ``analyze`` (the analyze run directory), ``compare`` / ``gate`` (run
            directories; optional), ``guideline`` (the guideline run directory; optional), ``relabelled``
            (the imported package; optional).
        timings: seconds per stage.
    """
    p = {k: Path(v) for k, v in paths.items() if v}
    manifest = _read(p["manifest"])
    if manifest is None:
        raise SegvalError(f"{p['manifest']} not found: the inject stage did not run")
    injected = {int(it["image_id"]): it for it in manifest["items"]}
    queue = _read(p["queue"]) if "queue" in p else None
    queued: list[int] = []
    if queue is not None:
        for it in sorted(queue["items"], key=lambda it: it.get("rank", 0)):
            if int(it["image_id"]) not in queued:
                queued.append(int(it["image_id"]))
    found = [i for i in queued if i in injected]
    found_by_kind: dict[str, list[int]] = {}
    for kind in manifest["counts"]:
        total = [i for i, it in injected.items() if it["kind"] == kind]
        if total:
            found_by_kind[kind] = [sum(1 for i in total if i in set(queued)), len(total)]
    before = side_metrics(p["before"]) if "before" in p else []
    after = side_metrics(p["after"]) if "after" in p else []
    seeds_before, seeds_after = [_miou(m) for m in before], [_miou(m) for m in after]
    gain = delta_stat(stat(seeds_after), stat(seeds_before), k=2.0)  # as compare: Welch s.e. of the difference
    per_class = _per_class(before, after)
    gate = _read(p["gate"] / "verdict.json") if "gate" in p else None
    reports = {}
    for key, rel in (("analyze", "report/report.html"), ("compare", "compare.html"), ("gate", "verdict.md")):
        if key in p and (p[key] / rel).is_file() and key not in reports:
            reports[key] = str(p[key] / rel)
    m_before, m_after = stat(seeds_before)["mean"], stat(seeds_after)["mean"]
    guideline = None
    if "guideline" in p and (p["guideline"] / "guideline.html").is_file():
        guideline = {"html": str(p["guideline"] / "guideline.html"), "markdown": str(p["guideline"] / "guideline.md")}
    return {
        "errors_injected": len(injected),
        "injected_by_kind": {k: v for k, v in manifest["counts"].items() if v},
        "train_images": manifest["images"],
        "queue_images": len(queued),
        "errors_found_in_queue": len(found),
        "recall_in_queue": len(found) / len(injected) if injected and queue is not None else None,
        "found_by_kind": found_by_kind,
        "swap_pairs": [sorted(pr) for pr in (manifest.get("config") or {}).get("swap_pairs") or []
                       if any(it["kind"] == "swap" and {it.get("class"), it.get("new_class")} == set(pr)
                              for it in manifest["items"])],
        "label_confusions": [e["pair"] for e in (queue or {}).get("label_confusions") or []],
        "mIoU_before": m_before,
        "mIoU_after": m_after,
        "mIoU_gain": None if m_before is None or m_after is None else m_after - m_before,
        "mIoU_seeds": {"before": seeds_before, "after": seeds_after},
        "mIoU_gain_noise": gain["noise"],
        "evaluated_on": None if not before else
        f"{before[0]['dataset'].get('name')} split {before[0].get('split')} (clean)",
        "per_class": per_class,
        "gate": None if gate is None else {"verdict": gate.get("status"), "exit_code": gate.get("exit_code"),
                                           "failed": gate.get("failed") or [],
                                           "file": str(p["gate"] / "verdict.json")},
        "reports": reports,
        "guideline": guideline,
        "paths": {k: str(v) for k, v in p.items()},
        "timings_s": dict(timings or {}),
    }


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}"


def format_summary(s: Mapping[str, Any]) -> str:
    """The lines a user reads at the end of `make demo`."""
    lines = ["", "=" * 72, "segval demo: did the loop find and fix the injected label errors?", "=" * 72,
             f"errors injected:        {s['errors_injected']} of {s['train_images']} train images ("
             + ", ".join(f"{k} {v}" for k, v in s["injected_by_kind"].items()) + ")"]
    if s["recall_in_queue"] is None:
        lines.append("errors found in queue:  n/a (no relabel queue)")
    else:
        lines.append(f"errors found in queue:  {s['errors_found_in_queue']} of {s['errors_injected']} "
                     f"({_pct(s['recall_in_queue'])} %) in a queue of {s['queue_images']} images; by kind: "
                     + ", ".join(f"{k} {a}/{b}" for k, (a, b) in s["found_by_kind"].items()))
    if s.get("swap_pairs"):
        named = {tuple(sorted(p)) for p in s.get("label_confusions") or []}
        lines.append("swapped pairs named:    " + ", ".join(
            f"{a} <-> {b} {'yes' if (a, b) in named else 'no'}" for a, b in s["swap_pairs"])
            + " (the queue's label confusions: " + (", ".join(" <-> ".join(p) for p in s["label_confusions"]) or "none")
            + ")")
    gain, noise = s["mIoU_gain"], s.get("mIoU_gain_noise")
    seeds = s.get("mIoU_seeds") or {}
    n_b, n_a = len(seeds.get("before") or []), len(seeds.get("after") or [])
    lines.append(f"mIoU before -> after:   {_pct(s['mIoU_before'])} -> {_pct(s['mIoU_after'])}"
                 + ("" if gain is None else f"  ({'+' if gain >= 0 else ''}{100 * gain:.1f} mIoU"
                    + ("" if noise is None else f" +- {100 * noise:.1f} seed noise (1 s.e.)") + ")")
                 + (f"  on {s['evaluated_on']}" if s["evaluated_on"] else ""))
    if n_b > 1 or n_a > 1:
        lines.append(f"  mean of {n_b} / {n_a} seeds; per seed: "
                     + ", ".join(map(_pct, seeds["before"])) + " -> " + ", ".join(map(_pct, seeds["after"])))
    if s["per_class"]:
        lines.append("per-class IoU (before -> after, delta" + (", seed means" if n_b > 1 or n_a > 1 else "") + "):")
        for r in s["per_class"]:
            d = r["delta"]
            lines.append(f"  {r['name']:<14} {_pct(r['before']):>6} -> {_pct(r['after']):>6}   "
                         + ("   n/a" if d is None else f"{'+' if d >= 0 else ''}{100 * d:.1f}"))
    g = s["gate"]
    lines.append("gate verdict:           " + ("n/a (no gate run)" if g is None else
                                                   f"{g['verdict']}" + (f", failed rules: {', '.join(map(str, g['failed']))}"
                                                                        if g["failed"] else "") + f" ({g['file']})"))
    for k, v in s["reports"].items():
        lines.append(f"report ({k}):" + " " * max(1, 14 - len(k)) + v)
    if s.get("guideline"):
        lines.append(f"annotation guideline:   {s['guideline']['html']} (+ guideline.md)")
    if s["timings_s"]:
        total = sum(s["timings_s"].values())
        lines.append(f"time: {total / 60:.1f} min (" + ", ".join(f"{k} {v:.0f}s" for k, v in s["timings_s"].items()) + ")")
    return "\n".join(lines)
