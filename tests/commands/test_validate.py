"""`segval validate`: stage selection, resuming (calls counted), forcing, exit codes, missing stages.

The stages' configs are the real ones (composed with Hydra's compose API); their functions are replaced
by recorders, so these tests check the chaining, not the commands.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_module
from omegaconf import DictConfig

import segval.commands._common  # noqa: F401  (registers the resolvers)
from segval.commands import Command, command_named
from segval.commands import validate as V
from segval.demo.shapes import write_shapes_package


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A tiny package, SEGVAL_ROOT in tmp_path, and recording stand-ins for every stage's function."""
    root = write_shapes_package(tmp_path / "pkg", images={"train": 2, "val": 1}, size=(16, 16))
    monkeypatch.setenv("SEGVAL_ROOT", str(tmp_path))
    calls: list[tuple[str, dict[str, Any]]] = []
    exits: dict[str, Any] = {}

    def fake(stage: V.Stage):
        def run(cfg: DictConfig) -> Any:
            out = Path(cfg.paths.output_dir)
            seen = {"seed": cfg.get("seed"), "run_dir": cfg.get("run_dir"), "data_root": cfg.get("data", {}).get("root"),
                    "output_dir": str(out), "candidate": cfg.get("candidate"), "qa": cfg.get("qa")}
            calls.append((stage.name, seen))
            if stage.name == "train":
                (out / "metrics.json").write_text(json.dumps({"summary": {"mIoU": 0.5}}))
            code = exits.get(stage.name)
            if isinstance(code, BaseException):
                raise code
            if code is not None:
                raise SystemExit(code)
            return {"summary": {"stage": stage.name}}

        return run

    monkeypatch.setattr(V, "stage_function", fake)

    def run_validate(*overrides: str) -> dict[str, Any]:
        with initialize_config_module("segval.conf", version_base="1.3"):
            cfg = compose("validate", overrides=[f"data.root={root}", f"paths.root_dir={tmp_path}",
                                                 f"paths.output_dir={tmp_path / 'v'}",
                                                 *overrides])
        calls.clear()
        return V.run(cfg)

    return run_validate, calls, exits, tmp_path, root


def names(calls) -> list[str]:
    return [c[0] for c in calls]


def test_resume_skips_finished_stages_and_reruns_what_changed(env) -> None:
    run, calls, _, tmp, root = env
    stages = "validate.stages=[qa,train,analyze]"
    first = run(stages, "validate.seeds=[0,1]")
    assert names(calls) == ["qa", "train", "train", "analyze"]
    assert first["ran"] == ["qa", "train/seed0", "train/seed1", "analyze"] and first["skipped"] == []
    assert first["status"] == "done" and first["exit_code"] == 0
    # each step in its own folder, with its seed and the data the validate run names
    train_calls = [c[1] for c in calls if c[0] == "train"]
    assert [c["seed"] for c in train_calls] == [0, 1]
    assert [Path(c["output_dir"]) for c in train_calls] == [tmp / "v" / "train" / "seed0", tmp / "v" / "train" / "seed1"]
    assert {c["data_root"] for c in train_calls} == {str(root.resolve())}
    assert calls[-1][1]["run_dir"] == str(tmp / "v" / "train" / "seed0")
    stamps = {k: json.loads((tmp / "v" / p / V.MARKER).read_text())["finished"]
              for k, p in (("qa", "qa"), ("train", "train/seed0"), ("analyze", "analyze"))}

    again = run(stages, "validate.seeds=[0,1]")
    assert calls == [] and again["ran"] == []
    assert again["skipped"] == ["qa", "train/seed0", "train/seed1", "analyze"]
    assert {k: json.loads((tmp / "v" / p / V.MARKER).read_text())["finished"]
            for k, p in (("qa", "qa"), ("train", "train/seed0"), ("analyze", "analyze"))} == stamps

    # a changed stage config re-runs that stage only
    run(stages, "validate.seeds=[0,1]", 'validate.overrides.analyze=["diagnosis.threshold=0.5"]')
    assert names(calls) == ["analyze"]
    # a new seed: one more training run; analyze reads seed 0, unchanged, so it is skipped
    out = run(stages, "validate.seeds=[0,1,2]", 'validate.overrides.analyze=["diagnosis.threshold=0.5"]')
    assert names(calls) == ["train"] and calls[0][1]["seed"] == 2 and "analyze" in out["skipped"]
    # forcing train redoes it and what reads it (analyze), not qa
    run(stages, "validate.seeds=[0,1,2]", 'validate.overrides.analyze=["diagnosis.threshold=0.5"]',
        "validate.force=[train]")
    assert names(calls) == ["train", "train", "train", "analyze"]
    run(stages, "validate.seeds=[0,1,2]", 'validate.overrides.analyze=["diagnosis.threshold=0.5"]', "validate.force=all")
    assert names(calls) == ["qa", "train", "train", "train", "analyze"]


def test_stage_selection_and_order(env) -> None:
    run, calls, _, _, _ = env
    run("validate.stages=[train,qa]")  # always run in pipeline order
    assert names(calls) == ["qa", "train"]
    with pytest.raises(V.ConfigError, match="unknown stage"):
        run("validate.stages=[qa,deploy]")
    with pytest.raises(V.ConfigError, match="validate.force"):
        run("validate.force=[deploy]")


def test_analyze_without_a_train_run_is_a_clear_failure(env) -> None:
    run, calls, _, _, _ = env
    out = run("validate.stages=[analyze]")
    assert calls == [] and out["status"] == "stage_failed" and out["failed_stage"] == "analyze"
    assert "add train to validate.stages" in out["error"] and out["exit_code"] == 2


@pytest.mark.parametrize(("gate_exit", "status", "code"), [(0, "pass", 0), (1, "fail", 1), (2, "cannot_decide", 2)])
def test_exit_code_follows_the_gate(env, gate_exit: int, status: str, code: int) -> None:
    run, calls, exits, _, _ = env
    exits["qa"] = 1  # QA findings are a decision for the gate, not a crash of the chain
    exits["gate"] = gate_exit
    out = run("validate.stages=[qa,train,gate]")
    assert names(calls) == ["qa", "train", "gate"]
    gate_cfg = calls[-1][1]
    assert Path(gate_cfg["output_dir"]).name == "gate"
    assert list(gate_cfg["candidate"]) == [str(Path(gate_cfg["output_dir"]).parent / "train" / "seed0")]
    assert out["status"] == status and out["exit_code"] == code
    assert out["stages"]["qa"]["exit_code"] == 1


def test_a_failing_stage_stops_the_chain(env) -> None:
    run, calls, exits, tmp, _ = env
    exits["train"] = V.SegvalError("data.root: broken")
    out = run("validate.stages=[qa,train,analyze,gate]")
    assert names(calls) == ["qa", "train"]
    assert out["failed_stage"] == "train" and "broken" in out["error"] and out["exit_code"] == 2
    assert not (tmp / "v" / "train" / "seed0" / V.MARKER).exists()  # not marked done: redone next time
    assert json.loads((tmp / "v" / "validate.json").read_text())["failed_stage"] == "train"


def test_a_stage_config_without_the_keys_validate_sets_is_refused(env, monkeypatch: pytest.MonkeyPatch) -> None:
    run, calls, _, _, _ = env
    # a gate whose config lacks candidate / baseline (composes the qa config): refused, never run half-configured
    monkeypatch.setitem(V.STAGES, "gate", V.Stage("gate", command_named("qa"), False))
    out = run("validate.stages=[train,gate]")
    assert names(calls) == ["train"] and out["failed_stage"] == "gate" and "has no ['candidate'" in out["error"]


def test_missing_stage_code_or_config_is_a_clear_error() -> None:
    missing = V.Stage("gate", Command(("no-such-gate",), "a command this installation lacks"), False)
    with pytest.raises(V.StageUnavailable, match="segval no-such-gate.*does not have"):
        V.stage_function(missing)
    no_function = V.Stage("gate", Command(("qa", "no-such-word"), "a word segval.commands.qa lacks"), False)
    with pytest.raises(V.StageUnavailable, match="has no run_no_such_word"):
        V.stage_function(no_function)
    with pytest.raises(V.StageUnavailable, match="conf/qa_no_such_word.yaml"):
        V.compose_stage(no_function, [])
    # the stage runs the command's run(cfg) (errors propagate, not sys.exit)
    assert V.stage_function(V.STAGES["qa"]) is command_named("qa").load()


def test_config_hash_depends_on_config_and_upstream() -> None:
    a = V.config_hash({"x": 1}, {"train": "h1"})
    assert a == V.config_hash({"x": 1}, {"train": "h1"})
    assert a != V.config_hash({"x": 2}, {"train": "h1"}) and a != V.config_hash({"x": 1}, {"train": "h2"})


def test_previous_version_is_the_newest_older_one_validated_beside(tmp_path: Path) -> None:
    from omegaconf import OmegaConf

    root = tmp_path / "validate"
    for ver, finished in (("0.9.0", True), ("1.0.0", True), ("1.0.5", False), ("1.2.0", True)):
        d = root / f"shapes-{ver}" / "train" / "seed0"
        d.mkdir(parents=True)
        if finished:
            (d / "metrics.json").write_text("{}")
    (root / "other-1.0.0" / "train" / "seed0").mkdir(parents=True)
    cfg = OmegaConf.create({"validate": {"previous": "auto"}})
    runs, version = V.previous_runs(cfg, root / "shapes-1.1.0", "shapes", "1.1.0")
    assert version == "1.0.0" and runs == [root / "shapes-1.0.0" / "train" / "seed0"]  # 1.0.5 never finished
    assert V.previous_runs(cfg, root / "shapes-0.9.0", "shapes", "0.9.0") == ([], None)
    cfg.validate.previous = None
    assert V.previous_runs(cfg, root / "shapes-1.1.0", "shapes", "1.1.0") == ([], None)
    cfg.validate.previous = [str(root / "shapes-0.9.0" / "train")]
    assert V.previous_runs(cfg, root / "shapes-1.1.0", "shapes", "1.1.0") == ([root / "shapes-0.9.0" / "train"], None)
    cfg.validate.previous = [str(root / "nowhere")]
    with pytest.raises(V.ConfigError, match="not found"):
        V.previous_runs(cfg, root / "shapes-1.1.0", "shapes", "1.1.0")


def test_output_folder_is_named_after_the_dataset_version(tmp_path: Path) -> None:
    from omegaconf import OmegaConf

    root = write_shapes_package(tmp_path / "pkg", images={"train": 1}, size=(8, 8), version="2.1.0")
    cfg = OmegaConf.create({"data": {"root": str(root)}, "tag": "${segval.dataset_tag:}"})
    assert cfg.tag == "shapes-2.1.0"
    cfg = OmegaConf.create({"data": {"root": str(tmp_path / "missing")}, "tag": "${segval.dataset_tag:}"})
    assert cfg.tag == "dataset"  # the command then says what is missing, without a traceback
    cfg = OmegaConf.create({"data": {"root": None, "annotations": str(tmp_path / "export" / "ann.json"),
                                     "images": str(tmp_path / "export")}, "tag": "${segval.dataset_tag:}"})
    assert cfg.tag == "export-ann"
