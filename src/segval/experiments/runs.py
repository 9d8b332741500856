"""Find and read the run directories of `segval train` / `segval eval` (single runs and Hydra multiruns).

A **run directory** holds ``.hydra/config.yaml`` (the composed config Hydra saved at the start of the job)
and, once the job finished its evaluation, ``metrics.json``. A **multirun directory** holds
``multirun.yaml`` and one numbered sub-folder per job (``0/``, ``1/``, ...).

Every job is reported, never silently skipped. Its ``status``:

========== ===============================================================================================
``ok``      ``metrics.json`` was read
``crashed`` ``.hydra/`` exists but ``metrics.json`` does not: the job stopped before its evaluation
            (the reason names the last error line of the job's log when there is one)
``missing`` a job the multirun's sweep defines (Hydra's basic sweeper: the product of the swept values)
            has no folder: it never started
``invalid`` ``metrics.json`` or ``.hydra/config.yaml`` cannot be read (the reason says what is wrong)
========== ===============================================================================================

(A job that is still running looks crashed: compare and gate read finished sweeps.) A ``segval analyze
run_dir=<run>`` directory stands for the run it analysed, with its own ``findings.json``.

Each record carries the seed (config ``seed``), the dataset name / version / content hash
(``metrics.json`` ``dataset``; for a job without metrics, the config's ``data.version`` /
``dataset.version`` or its overrides), the split, the task (``semantic`` unless metrics.json says
``instance`` / ``panoptic``), the class names and the run's findings (``findings.json`` when present;
else diagnosed from ``metrics.json`` + ``confusion_matrix.npy`` without train statistics, see
:func:`load_findings`).

Example:
    >>> runs = discover_runs(["outputs/train/multiruns/2026-01-01_00-00-00"])   # doctest: +SKIP
    >>> [(r.job, r.status, r.version, r.seed) for r in runs]                      # doctest: +SKIP
    [('0', 'ok', '1.0.0', 0), ('1', 'crashed', '1.0.0', 1), ...]
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from segval.errors import SegvalError

__all__ = ["RUN_STATUSES", "RunRecord", "discover_runs", "expected_jobs", "load_findings", "load_run"]

RUN_STATUSES = ("ok", "crashed", "missing", "invalid")
_ERROR_LINE = re.compile(r"(error|exception|traceback|killed|nan loss)", re.IGNORECASE)


@dataclass
class RunRecord:
    """One run (or one job of a multirun) as found on disk.

    Attributes:
        path: the run directory (for a ``missing`` job: where it would have been).
        status: ``ok`` | ``crashed`` | ``missing`` | ``invalid`` (see the module docstring).
        reason: why the run is not ``ok`` (None when it is).
        sweep: the multirun directory the job belongs to, or None.
        job: the job number within its multirun (a string), or None.
        overrides: the job's Hydra overrides (``.hydra/overrides.yaml``), e.g. ``["seed=1"]``.
        config: ``.hydra/config.yaml`` as plain data (interpolations left unresolved), or None.
        metrics: the ``metrics.json`` document, or None.
        findings: the findings document (``findings.json`` or diagnosed), or None.
        findings_source: ``"findings.json"`` | ``"diagnosed"`` | None.
    """

    path: Path
    status: str
    reason: str | None = None
    sweep: Path | None = None
    job: str | None = None
    overrides: list[str] = field(default_factory=list)
    config: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None
    findings: dict[str, Any] | None = None
    findings_source: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def label(self) -> str:
        """``<multirun>/<job>`` or the run directory, for messages."""
        return f"{self.sweep}/{self.job}" if self.sweep is not None else str(self.path)

    def _override(self, *keys: str) -> str | None:
        for o in self.overrides:
            k, _, v = o.lstrip("+~").partition("=")
            if k in keys:
                return v
        return None

    def config_value(self, *dotted: str) -> Any:
        """The first of the dotted config keys that is set (an unresolved interpolation counts as unset)."""
        for d in dotted:
            node: Any = self.config
            for part in d.split("."):
                node = node.get(part) if isinstance(node, Mapping) else None
            if node is not None and not (isinstance(node, str) and "${" in node):
                return node
        return None

    @property
    def dataset(self) -> dict[str, Any]:
        """``{name, version, content_hash, source}`` (values None when unknown).

        From metrics.json; for a run without one, from its overrides / config (``data.version``,
        ``data.root``) and, failing that, the ``dataset.yaml`` of the package ``data.root`` names, so a crashed
        job of a sweep over ``data.root=a,b`` still lands in its version's group."""
        ds = dict((self.metrics or {}).get("dataset") or {})
        out = {k: ds.get(k) for k in ("name", "version", "content_hash", "source")}
        if out["version"] is None:
            v = self._override("data.version", "dataset.version")
            v = self.config_value("data.version", "dataset.version") if v is None else v
            out["version"] = None if v is None else str(v)
        if out["source"] is None:
            out["source"] = self._override("data.root") or self.config_value("data.root")
        if out["name"] is None:
            out["name"] = self.config_value("dataset.name", "data.name")
        if self.metrics is None and out["source"] and (out["version"] is None or out["name"] is None):
            meta = _package_meta(out["source"])
            out["version"] = out["version"] if out["version"] is not None else meta.get("version")
            out["name"] = out["name"] if out["name"] is not None else meta.get("name")
        if out["version"] is not None:
            out["version"] = str(out["version"])
        return out

    @property
    def version(self) -> str | None:
        return self.dataset["version"]

    @property
    def seed(self) -> int | None:
        s = self._override("seed")
        s = self.config_value("seed") if s is None else s
        try:
            return None if s is None else int(s)
        except (TypeError, ValueError):
            return None

    @property
    def split(self) -> str | None:
        if self.metrics and self.metrics.get("split") is not None:
            return str(self.metrics["split"])
        s = self._override("split") or self.config_value("split", "data.val_split")
        return None if s is None else str(s)

    @property
    def task(self) -> str:
        return str((self.metrics or {}).get("task") or "semantic")

    @property
    def class_names(self) -> list[str] | None:
        if not self.metrics:
            return None
        rows = self.metrics.get("per_class") or []
        return [str(r.get("name")) for r in rows] or None

    @property
    def taxonomy_ids(self) -> list[int] | None:
        ds = (self.metrics or {}).get("dataset") or {}
        if ds.get("taxonomy_ids") is not None:
            return [int(i) for i in ds["taxonomy_ids"]]
        rows = (self.metrics or {}).get("per_class") or []
        ids = [r.get("id") for r in rows]
        return [int(i) for i in ids] if ids and all(i is not None for i in ids) else None

    def summary(self) -> dict[str, Any]:
        """A JSON-able description (no metrics / findings bodies)."""
        ds = self.dataset
        return {"path": str(self.path), "status": self.status, "reason": self.reason,
                "sweep": None if self.sweep is None else str(self.sweep), "job": self.job, "seed": self.seed,
                "dataset": ds, "split": self.split, "task": self.task, "overrides": list(self.overrides),
                "findings": self.findings_source}


# ------------------------------------------------------------------------------------------ reading
def _read_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _package_meta(root: Any) -> dict[str, Any]:
    """name and version from ``<root>/dataset.yaml`` ({} when it cannot be read)."""
    try:
        meta = _read_yaml(Path(str(root)) / "dataset.yaml")
    except (OSError, yaml.YAMLError):
        return {}
    return {k: meta.get(k) for k in ("name", "version")} if isinstance(meta, dict) else {}


def _last_error(run_dir: Path) -> str | None:
    """The last line that looks like an error in the job's Hydra log (``<task>.log``), if any."""
    best = None
    for log in sorted(run_dir.glob("*.log")):
        try:
            lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
        for line in reversed(lines):
            if _ERROR_LINE.search(line):
                best = f"{log.name}: {line.strip()[:300]}"
                break
    return best


def load_findings(run_dir: str | Path, metrics: Mapping[str, Any] | None) -> tuple[dict[str, Any] | None, str | None]:
    """The run's findings and where they came from.

    ``findings.json`` in the run directory when present (``segval analyze`` writes it); otherwise, when
    ``confusion_matrix.npy`` is there, :func:`segval.analysis.diagnosis.diagnose` on ``metrics.json`` and the
    confusion matrix (plus ``boundary_iou.json`` when present) with the default thresholds and no train-split
    statistics, i.e. the weak classes and the confusion / boundary causes that ``segval train`` prints.
    Returns ``(None, None)`` when neither is possible.
    """
    run_dir = Path(run_dir)
    f = run_dir / "findings.json"
    if f.is_file():
        try:
            doc = json.loads(f.read_text(encoding="utf-8"))
            if isinstance(doc, dict):
                return doc, "findings.json"
        except (OSError, ValueError):
            pass
    cm = run_dir / "confusion_matrix.npy"
    if metrics is None or not cm.is_file():
        return None, None
    try:
        import numpy as np

        from segval.analysis.diagnosis import diagnose

        confmat = np.load(cm, allow_pickle=False)
        b = run_dir / "boundary_iou.json"
        boundary = json.loads(b.read_text(encoding="utf-8")) if b.is_file() else None
        return diagnose(metrics, confmat, boundary_iou=boundary), "diagnosed"
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None, None


def load_run(run_dir: str | Path, *, sweep: Path | None = None, job: str | None = None,
             findings: bool | str = True) -> RunRecord:
    """Read one run directory (never raises for a broken run: its status says what is wrong).

    Args:
        run_dir: a folder with ``.hydra/config.yaml`` and / or ``metrics.json``.
        sweep, job: the multirun it belongs to and its job number.
        findings: also load the findings: ``True`` as :func:`load_findings` does (findings.json, else
            diagnosed, which imports torch), ``"file"`` findings.json only, ``False`` none.
    """
    run_dir = Path(run_dir)
    rec = RunRecord(path=run_dir, status="ok", sweep=sweep, job=job)
    hydra_dir = run_dir / ".hydra"
    problems = []
    if (hydra_dir / "config.yaml").is_file():
        try:
            cfg = _read_yaml(hydra_dir / "config.yaml")
            rec.config = cfg if isinstance(cfg, dict) else None
            if rec.config is None:
                problems.append(f"{hydra_dir / 'config.yaml'} is not a mapping")
        except (OSError, yaml.YAMLError) as err:
            problems.append(f"{hydra_dir / 'config.yaml'} cannot be read: {err}")
    if (hydra_dir / "overrides.yaml").is_file():
        try:
            ov = _read_yaml(hydra_dir / "overrides.yaml")
            rec.overrides = [str(o) for o in ov] if isinstance(ov, list) else []
        except (OSError, yaml.YAMLError):
            pass
    metrics_path = run_dir / "metrics.json"
    target = (rec.config or {}).get("run_dir")
    if (not metrics_path.is_file() and (rec.config or {}).get("task_name") == "analyze" and isinstance(target, str)
            and (Path(target) / "metrics.json").is_file() and (run_dir / "findings.json").is_file()):
        # a `segval analyze run_dir=<run>` directory: the run it analysed, with this directory's findings.json
        analysed = load_run(Path(target), sweep=sweep, job=job, findings=False)
        if analysed.metrics is not None:
            analysed.findings, analysed.findings_source = load_findings(run_dir, None)
        return analysed
    if metrics_path.is_file():
        try:
            m = json.loads(metrics_path.read_text(encoding="utf-8"))
            if not isinstance(m, dict) or not isinstance(m.get("per_class"), list) \
                    or not isinstance(m.get("summary"), dict):
                problems.append(f"{metrics_path} is not a segval metrics.json (no 'summary' / 'per_class')")
            else:
                rec.metrics = m
        except (OSError, ValueError) as err:
            problems.append(f"{metrics_path} cannot be read as JSON: {err}")
    if problems:
        rec.status, rec.reason = "invalid", "; ".join(problems)
    elif rec.metrics is None:
        if hydra_dir.is_dir():
            err = _last_error(run_dir)
            rec.status = "crashed"
            rec.reason = ("the job started but wrote no metrics.json (it stopped before its evaluation)"
                          + (f"; last error in its log: {err}" if err else ""))
        else:
            rec.status = "invalid"
            rec.reason = "neither metrics.json nor .hydra/config.yaml: not a segval run directory"
    if findings and rec.metrics is not None:
        rec.findings, rec.findings_source = load_findings(run_dir, rec.metrics if findings is True else None)
    return rec


def expected_jobs(multirun_yaml: Mapping[str, Any]) -> list[list[str]] | None:
    """The override list of every job of a basic-sweeper multirun, in job-number order (None when the sweeper
    is another one, e.g. Optuna, or the sweep cannot be parsed)."""
    hydra_cfg = (multirun_yaml or {}).get("hydra") or {}
    sweeper = hydra_cfg.get("sweeper") or {}
    if "BasicSweeper" not in str(sweeper.get("_target_", "")):
        return None
    try:
        from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
        from hydra.core.override_parser.overrides_parser import OverridesParser

        args = [f"{k}={v}" for k, v in (sweeper.get("params") or {}).items()]
        args += [str(o) for o in ((hydra_cfg.get("overrides") or {}).get("task") or [])]
        parsed = OverridesParser.create().parse_overrides(args)
        batches = BasicSweeper.split_arguments(parsed, None)
    except Exception:  # an unparseable sweep: the job count is unknown, the folders still are reported
        return None
    return [list(job) for batch in batches for job in batch]


def _is_run_dir(p: Path) -> bool:
    return (p / "metrics.json").is_file() or (p / ".hydra").is_dir()


def _multirun(path: Path, findings: bool | str) -> list[RunRecord]:
    try:
        mr = _read_yaml(path / "multirun.yaml")
    except (OSError, yaml.YAMLError):
        mr = None
    jobs = {p.name: p for p in path.iterdir() if p.is_dir() and p.name.isdigit()}
    out = [load_run(jobs[n], sweep=path, job=n, findings=findings) for n in sorted(jobs, key=int)]
    expected = expected_jobs(mr) if isinstance(mr, dict) else None
    if expected is not None:
        for i, ov in enumerate(expected):
            if str(i) not in jobs:
                rec = RunRecord(path=path / str(i), status="missing", sweep=path, job=str(i), overrides=ov,
                                reason=f"the sweep defines job {i} ({' '.join(ov)}) but it has no folder: "
                                       "it never started")
                out.append(rec)
        out.sort(key=lambda r: int(r.job or 0))
    return out


def discover_runs(paths: Iterable[str | Path], *, findings: bool | str = True) -> list[RunRecord]:
    """Every run under ``paths`` (run directories and multirun directories), in the order given.

    A path may be a run directory (``metrics.json`` and / or ``.hydra/``), a multirun directory
    (``multirun.yaml`` + numbered job folders), a ``metrics.json`` file, or a folder whose sub-folders
    are run directories (e.g. ``outputs/train/runs``). The same directory given twice is read once.

    Raises:
        SegvalError: a path does not exist, or is neither kind of directory (names it and what was expected).
    """
    out: list[RunRecord] = []
    seen: set[Path] = set()
    for raw in paths:
        p = Path(raw).expanduser()
        if p.is_file() and p.name == "metrics.json":
            p = p.parent
        if not p.exists():
            raise SegvalError(f"{p}: no such run directory; pass segval run directories (metrics.json + "
                              ".hydra/) or multirun directories (multirun.yaml + numbered job folders)")
        if (p / "multirun.yaml").is_file():
            recs = _multirun(p, findings)
        elif _is_run_dir(p):
            recs = [load_run(p, findings=findings)]
        else:
            subs = sorted((q for q in p.iterdir() if q.is_dir() and _is_run_dir(q)), key=lambda q: q.name)
            if not subs:
                raise SegvalError(f"{p}: not a run directory (no metrics.json, no .hydra/) nor a multirun directory "
                                  "(no multirun.yaml); pass the folder of a segval train / eval run or of a sweep")
            recs = [load_run(q, findings=findings) for q in subs]
        for r in recs:
            key = r.path.resolve()
            if key not in seen:
                seen.add(key)
                out.append(r)
    return out


def group_runs(runs: Sequence[RunRecord], key: Any) -> dict[str, list[RunRecord]]:
    """Runs by ``key(run)`` in order of first appearance."""
    groups: dict[str, list[RunRecord]] = {}
    for r in runs:
        groups.setdefault(str(key(r)), []).append(r)
    return groups
