"""`segval validate`: validate one dataset version end to end, resumable.

Chains, for the version ``data=...`` names: **qa** (``segval qa``) -> **train** (``segval train``, one run per
seed of ``validate.seeds``) -> **analyze** (``segval analyze`` of the first seed's run) -> **relabel**
(``segval relabel queue``) -> **compare** (``segval compare`` of this version's runs against the previous
version's) -> **gate** (``segval gate``). ``validate.stages=[qa,train,gate]`` selects stages.

Each stage composes its command's own config (``conf/<command>.yaml``) with Hydra's compose API, with
the validate run's ``data.*`` overrides, ``paths.output_dir=<validate dir>/<stage>`` and the stage's
``validate.overrides.<stage>`` list, and calls the command's function in this process.

Resuming: a finished step writes ``<its dir>/.validate_done.json`` holding the hash of its composed
(resolved) config and of the markers of the steps it read; running validate again in the same directory
(the default ``outputs/validate/<dataset>-<version>``) skips every step whose hash is unchanged. A
changed config re-runs that step and everything downstream of it; ``validate.force=[train]`` or
``validate.force=all`` redoes steps on purpose. A step killed half-way has no marker and runs again; a
training step killed half-way with the same config continues from its ``last.ckpt`` (exact resume: the
same weights, metrics and verdict as an uninterrupted run).

Exit code: the gate's (0 pass, 1 fail, 2 cannot decide) when the gate stage runs; else 0 when every
selected stage finished. A stage that fails stops the chain: exit 2 (3 for a training failure), with
``validate.json`` saying which stage failed and why.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from segval.commands import Command, command_named
from segval.commands._common import data_overrides, find_user_error, open_package, quote, segval_app
from segval.errors import ConfigError, SegvalError
from segval.io import write_json

log = logging.getLogger("segval")

MARKER = ".validate_done.json"
#: written when a step starts, removed when it is done: an interrupted training step resumes its last.ckpt
STARTED = ".validate_started.json"


@dataclass(frozen=True)
class Stage:
    """A stage: its name and the command it runs (``needs_data``: it reads the dataset of ``data=``)."""

    name: str
    command: Command
    needs_data: bool

    @property
    def config(self) -> str:
        return self.command.config


STAGES: dict[str, Stage] = {
    s.name: s
    for s in (
        Stage("qa", command_named("qa"), True),
        Stage("train", command_named("train"), True),
        Stage("analyze", command_named("analyze"), True),
        Stage("relabel", command_named("relabel queue"), True),
        Stage("compare", command_named("compare"), False),
        Stage("gate", command_named("gate"), False),
    )
}
ORDER = tuple(STAGES)
#: keys of a stage's config validate must set (the inputs it hands over from earlier stages)
REQUIRED_KEYS = {"analyze": ("run_dir",), "relabel": ("run_dir", "output_dir"), "compare": ("runs", "baseline"),
                 "gate": ("candidate", "baseline", "qa")}


class StageUnavailable(SegvalError):
    """The code or config of a stage's command is not in this installation."""


# ---------------------------------------------------------------------------------------- config helpers
def config_hash(cfg: DictConfig | Mapping[str, Any], extra: Any = None) -> str:
    """SHA-256 of the resolved config (keys sorted) and ``extra`` (the upstream markers)."""
    data = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    text = json.dumps({"config": data, "upstream": extra}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def stage_function(stage: Stage) -> Callable[[DictConfig], Any]:
    """The ``run(cfg)`` of ``stage``'s command.

    Raises:
        StageUnavailable: its module or function is not in this installation.
    """
    try:
        return stage.command.load()
    except ModuleNotFoundError as err:
        if err.name and stage.command.module.startswith(err.name):
            raise StageUnavailable(f"stage {stage.name!r} runs `segval {stage.command.name}` ({stage.command.module}), "
                                   "which this segval installation does not have; leave the stage out "
                                   "(validate.stages=[...]) or update segval") from None
        raise
    except AttributeError:
        raise StageUnavailable(f"stage {stage.name!r}: {stage.command.module} has no {stage.command.function}(); "
                               "this segval installation is incomplete") from None


def compose_stage(stage: Stage, overrides: Sequence[str]) -> DictConfig:
    """Compose ``conf/<stage.config>.yaml`` with ``overrides`` (inside or outside a running Hydra app)."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException, MissingConfigException
    from omegaconf.errors import OmegaConfBaseException

    try:
        if GlobalHydra.instance().is_initialized():
            return compose(config_name=stage.config, overrides=list(overrides))
        with initialize_config_module("segval.conf", version_base="1.3"):
            return compose(config_name=stage.config, overrides=list(overrides))
    except MissingConfigException:
        raise StageUnavailable(f"stage {stage.name!r} needs conf/{stage.config}.yaml (`segval {stage.command.name}`), which this "
                               "segval installation does not have; leave the stage out (validate.stages=[...])") from None
    except (HydraException, OmegaConfBaseException) as err:
        raise ConfigError(f"stage {stage.name!r}: cannot compose conf/{stage.config}.yaml with {list(overrides)}: "
                          f"{err}; fix validate.overrides.{stage.name}") from None


def _set_present(cfg: DictConfig, values: Mapping[str, Any]) -> list[str]:
    """Set the dotted keys of ``values`` that ``cfg`` has; returns those set."""
    done = []
    with open_dict(cfg):
        for key, value in values.items():
            if OmegaConf.select(cfg, key, default="__absent__") != "__absent__":
                OmegaConf.update(cfg, key, value, merge=False)
                done.append(key)
    return done


# ---------------------------------------------------------------------------------------- the steps
class Validation:
    """One validate run: its output dir, the dataset, the steps done and skipped."""

    def __init__(self, cfg: DictConfig) -> None:
        self.cfg = cfg
        v = cfg.validate
        self.out = Path(cfg.paths.output_dir)
        stages = list(v.stages)
        unknown = [s for s in stages if s not in STAGES]
        if unknown:
            raise ConfigError(f"validate.stages: unknown stage(s) {unknown}; choose from {list(ORDER)}")
        self.stages = [s for s in ORDER if s in stages]
        force = v.force
        force = [force] if isinstance(force, str) else list(force or [])
        bad = [f for f in force if f != "all" and f not in STAGES]
        if bad:
            raise ConfigError(f"validate.force: unknown stage(s) {bad}; use stage names {list(ORDER)} or all")
        self.force = set(ORDER) if "all" in force else set(force)
        self.seeds = [int(s) for s in v.seeds]
        if not self.seeds:
            raise ConfigError("validate.seeds is empty: give at least one seed, e.g. validate.seeds=[0]")
        self.data = data_overrides(cfg)
        self.markers: dict[str, dict[str, Any]] = {}
        self.summary: dict[str, Any] = {"stages": {}}
        self.ran: list[str] = []
        self.skipped: list[str] = []
        #: the stage running now (named when it fails)
        self.current = ""
        #: the previous version's train runs (compare / gate baseline), once looked up
        self.previous: list[Path] | None = None

    # -- one step ------------------------------------------------------------------------------------
    def step(self, key: str, stage: Stage, step_dir: Path, overrides: Sequence[str], *,
             set_after: Mapping[str, Any] | None = None, upstream: Sequence[str] = ()) -> dict[str, Any]:
        """Compose, then skip (marker with the same hash) or run one step; returns its marker."""
        fn = stage_function(stage)
        base = [f"paths.root_dir={quote(str(self.cfg.paths.root_dir))}", f"paths.output_dir={quote(str(step_dir))}"]
        probe = compose_stage(stage, base)
        data = self.data if (stage.needs_data and "data" in probe) else []
        extra = list(self.cfg.validate.overrides.get(stage.name) or [])
        cfg = compose_stage(stage, [*data, *base, *overrides, *extra])
        if set_after:
            done = _set_present(cfg, set_after)
            required = [k for k in REQUIRED_KEYS.get(stage.name, ()) if k not in done]
            if required:
                raise StageUnavailable(f"stage {stage.name!r}: conf/{stage.config}.yaml has no {required}, which "
                                       f"validate hands to `segval {stage.command.name}`; this segval installation is inconsistent")
        # a step re-runs when a step it reads ran again (same config, new outputs) or changed
        up = {k: f"{self.markers[k].get('hash')}@{self.markers[k].get('finished')}" for k in upstream if k in self.markers}
        digest = config_hash(cfg, up)
        marker_path = step_dir / MARKER
        old = _read_marker(marker_path)
        if old and old.get("hash") == digest and stage.name not in self.force:
            print(f"[validate] {key}: done before ({old.get('finished')}), skipped (validate.force=[{stage.name}] "
                  "redoes it)", flush=True)
            self.skipped.append(key)
            self.markers[key] = old
            return old
        why = "forced" if stage.name in self.force and old else ("config changed" if old else "first run")
        if marker_path.exists():
            marker_path.unlink()
        resumed = self._prepare(stage, step_dir, digest, cfg, fresh=bool(old))
        why = "interrupted before, resumed" if resumed else why
        print(f"\n[validate] {key}: running `segval {stage.command.name}` into {step_dir} ({why})", flush=True)
        started = time.time()
        result, exit_code = _call(fn, cfg)
        marker = {
            "stage": stage.name, "step": key, "hash": digest, "exit_code": exit_code,
            "started": _stamp(started), "finished": _stamp(time.time()), "seconds": round(time.time() - started, 3),
            "command": f"segval {stage.command.name}", "overrides": [*data, *base, *overrides, *extra], "result": _small(result),
        }
        write_json(marker_path, marker)
        (step_dir / STARTED).unlink(missing_ok=True)
        self.ran.append(key)
        self.markers[key] = marker
        return marker

    def _prepare(self, stage: Stage, step_dir: Path, digest: str, cfg: DictConfig, *, fresh: bool) -> bool:
        """Mark the step started; a training step interrupted with the same config resumes its last.ckpt.

        Returns whether the step resumes. A changed or forced step (``fresh``) or an interrupted one with
        another config drops the old checkpoints, so nothing of another configuration is resumed.
        """
        started = _read_marker(step_dir / STARTED)
        resume = stage.name == "train" and not fresh and started is not None and started.get("hash") == digest
        if stage.name == "train":
            if not resume:
                shutil.rmtree(step_dir / "checkpoints", ignore_errors=True)
            with open_dict(cfg):
                cfg.ckpt_path = "auto"  # after the hash: resuming is not another configuration
        step_dir.mkdir(parents=True, exist_ok=True)
        write_json(step_dir / STARTED, {"hash": digest, "started": _stamp(time.time())})
        return resume and (step_dir / "checkpoints" / "last.ckpt").is_file()


def _call(fn: Callable[[DictConfig], Any], cfg: DictConfig) -> tuple[Any, int]:
    """Run the command function; a command that exits with a decision (qa: 1, gate: 0/1/2) is not a crash."""
    from segval.tracking.run import finish_wandb

    try:
        result = fn(cfg)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
        return None, code
    finally:
        finish_wandb()  # a W&B run opened by the stage ends with it
    code = 0
    if isinstance(result, Mapping):
        for key in ("exit_code", "code"):
            if isinstance(result.get(key), int):
                code = int(result[key])
                break
        else:
            dec = result.get("decision")
            if isinstance(dec, Mapping) and isinstance(dec.get("exit_code"), int):
                code = int(dec["exit_code"])
    return result, code


def _small(result: Any) -> Any:
    """What of a command's return value goes into the marker: scalars and short summaries only."""
    if isinstance(result, (int, float, str, bool)) or result is None:
        return result
    if isinstance(result, Mapping):
        keep = {}
        for k in ("summary", "verdict", "status", "exit_code", "decision", "baseline", "version"):
            if k in result:
                try:
                    json.dumps(result[k])
                    keep[k] = result[k]
                except TypeError:
                    keep[k] = str(result[k])
        return keep
    return str(type(result).__name__)


def _read_marker(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return doc if isinstance(doc, dict) else None


def _stamp(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(t)) + f".{int((t % 1) * 1000):03d}"


# ---------------------------------------------------------------------------------------- previous version
def previous_runs(cfg: DictConfig, out: Path, name: str, version: str) -> tuple[list[Path], str | None]:
    """Train run dirs of the version to compare with, and that version.

    ``validate.previous``: a list of run / multirun dirs (their version is read by compare), or ``auto``:
    the newest ``<validate root>/<name>-<X.Y.Z>/train/seed*`` with X.Y.Z older than ``version`` that holds
    a finished run (``metrics.json``).
    """
    from segval.dataset.versioning import version_core

    prev = cfg.validate.previous
    if prev not in (None, "auto"):
        paths = [Path(p) for p in ([prev] if isinstance(prev, str) else list(prev))]
        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            raise ConfigError(f"validate.previous: {missing} not found; pass run or multirun dirs of the previous "
                              "version, or validate.previous=auto")
        return paths, None
    if prev is None:
        return [], None
    mine = version_core(str(version))
    best: tuple[tuple[int, int, int], str, list[Path]] | None = None
    for d in out.parent.glob(f"{name}-*"):
        ver = d.name[len(name) + 1:]
        core = version_core(ver)
        if d == out or core is None or mine is None or core >= mine:
            continue
        runs = sorted(p.parent for p in (d / "train").glob("seed*/metrics.json"))
        if runs and (best is None or core > best[0]):
            best = (core, ver, runs)
    return (best[2], best[1]) if best else ([], None)


# ---------------------------------------------------------------------------------------- the chain
def run(cfg: DictConfig) -> dict[str, Any]:
    """Run the selected stages (see the module doc); returns the ``validate.json`` document."""
    from segval.release.resolvers import check_version

    v = Validation(cfg)
    out = v.out
    data = cfg.data
    if data.get("version") and data.get("root") and not data.get("annotations"):
        check_version(Path(data.root), str(data.version), data.get("releases"))  # names the released versions
    pkg = open_package(cfg)  # the version being validated (also fills cfg.dataset)
    name, version = pkg.name, str(pkg.version)
    v.summary.update(dataset={"name": name, "version": version, "root": str(Path(pkg.root).resolve())},
                     output_dir=str(out), stages_selected=v.stages)
    print(f"segval validate: {name} {version} ({pkg.root}); stages {v.stages}; output {out}", flush=True)
    failed: tuple[str, BaseException] | None = None
    try:
        _run_stages(v, out, name, version)
    except Exception as err:  # a stage failed: say which, keep what finished
        user = find_user_error(err)
        if user is None:  # a bug, not bad input: leave a trace of where, then the traceback
            write_json(out / "validate.json", {**v.summary, "status": "crashed", "failed_stage": v.current,
                                               "error": repr(err), "ran": v.ran, "skipped": v.skipped})
            raise
        failed = (v.current, user)
    gate = v.markers.get("gate")
    if failed:
        stage, err = failed
        # a gate that raises could not decide (it wrote an error verdict): exit 2 like `segval gate`
        v.summary.update(status="cannot_decide" if stage == "gate" else "stage_failed", failed_stage=stage,
                         error=str(err), exit_code=2 if stage == "gate" else getattr(err, "exit_code", 2))
    elif gate is not None:
        code = int(gate.get("exit_code") or 0)
        v.summary.update(status={0: "pass", 1: "fail"}.get(code, "cannot_decide"), exit_code=code)
    else:
        v.summary.update(status="done", exit_code=0)
    v.summary.update(ran=v.ran, skipped=v.skipped,
                     stages={k: {kk: m.get(kk) for kk in ("exit_code", "finished", "seconds", "hash")}
                             for k, m in v.markers.items()})
    path = write_json(out / "validate.json", v.summary)
    print(f"\nsegval validate: {name} {version}: {v.summary['status'].upper()}"
          + (f" (stage {failed[0]} failed: {failed[1]})" if failed else "")
          + f"; ran {v.ran or 'nothing'}, skipped {v.skipped or 'nothing'}")
    print(f"summary: {path}")
    if failed:
        print(f"segval validate: error: stage {failed[0]}: {failed[1]}", file=sys.stderr, flush=True)
    return v.summary


def _run_stages(v: Validation, out: Path, name: str, version: str) -> None:
    cfg = v.cfg
    seeds = v.seeds
    train_dirs = [out / "train" / f"seed{s}" for s in seeds]
    first_run = train_dirs[0]
    group = cfg.validate.wandb_group or f"validate-{name}-{version}"
    v.current = ""
    for stage_name in v.stages:
        stage = STAGES[stage_name]
        v.current = stage_name
        if stage_name == "qa":
            v.step("qa", stage, out / "qa", [])
        elif stage_name == "train":
            for s, d in zip(seeds, train_dirs):
                v.step(f"train/seed{s}", stage, d, [f"seed={s}", f"wandb_group={quote(group)}"])
        elif stage_name == "analyze":
            _need(first_run, "analyze", "train")
            v.step("analyze", stage, out / "analyze", [], set_after={"run_dir": str(first_run)},
                   upstream=[f"train/seed{seeds[0]}"])
        elif stage_name == "relabel":
            _need(first_run, "relabel", "train")
            findings = out / "analyze" / "findings.json"
            v.step("relabel", stage, out / "relabel", [],
                   set_after={"run_dir": str(first_run), "output_dir": str(out / "relabel"),
                              "findings": str(findings) if findings.is_file() else None},
                   upstream=[f"train/seed{seeds[0]}", "analyze"])
        elif stage_name == "compare":
            mine = [d for d in train_dirs if (d / "metrics.json").is_file()]
            if not mine:
                _need(first_run, "compare", "train")
            prev, prev_version = previous_runs(cfg, out, name, version)
            v.previous = prev
            if not prev:
                print(f"\n[validate] compare: no earlier version of {name} validated beside {out} and "
                      "validate.previous not set: nothing to compare with, stage skipped", flush=True)
                v.summary["compare"] = "no previous version"
                continue
            v.summary["compare"] = {"previous_version": prev_version, "previous_runs": [str(p) for p in prev]}
            v.step("compare", stage, out / "compare", [],
                   set_after={"runs": [str(p) for p in [*prev, *mine]], "baseline": prev_version},
                   upstream=[f"train/seed{s}" for s in seeds])
        elif stage_name == "gate":
            if v.previous is None:  # compare not selected: the gate still checks against the previous version
                v.previous, _ = previous_runs(cfg, out, name, version)
            qa = out / "qa" / "qa.json"
            v.step("gate", stage, out / "gate", [],
                   set_after={"candidate": [str(d) for d in train_dirs], "baseline": [str(p) for p in v.previous],
                              "qa": str(qa) if qa.is_file() else None},
                   upstream=["qa", *(f"train/seed{s}" for s in seeds)])


def _need(run_dir: Path, stage: str, upstream: str) -> None:
    if not (run_dir / "metrics.json").is_file():
        raise SegvalError(f"stage {stage!r} needs the {upstream} stage's run ({run_dir / 'metrics.json'} is missing): "
                          f"add {upstream} to validate.stages or run it first")


@segval_app("validate")
def main(cfg: DictConfig) -> int:
    summary = run(cfg)
    code = int(summary.get("exit_code") or 0)
    if code:
        sys.exit(code)
    return code


if __name__ == "__main__":
    main()
