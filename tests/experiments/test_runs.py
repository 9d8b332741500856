"""Finding run directories: single runs, multiruns, crashed and never-started jobs, what each record knows."""

from __future__ import annotations

import json

import pytest
import yaml
from tests.experiments.run_dirs import confmat_for, findings_doc, make_multirun, make_run

from segval.errors import SegvalError
from segval.experiments.runs import discover_runs, expected_jobs, load_run


def test_single_run_dir_fields(tmp_path):
    run = make_run(tmp_path / "r", confmat_for(0.5), version="1.1.0", seed=3, content_hash="sha256:abc",
                   findings=findings_doc({"mug": ["confusion"]}))
    (rec,) = discover_runs([run])
    assert rec.status == "ok" and rec.reason is None and rec.ok
    assert (rec.seed, rec.version, rec.split, rec.task) == (3, "1.1.0", "val", "semantic")
    assert rec.dataset == {"name": "shapes", "version": "1.1.0", "content_hash": "sha256:abc",
                           "source": "/data/shapes/1.1.0"}
    assert rec.class_names == ["background", "mug", "cable"] and rec.taxonomy_ids == [0, 1, 2]
    assert rec.findings_source == "findings.json" and rec.findings["classes"][1]["status"] == "weak"
    # a metrics.json file given directly, and the same run twice: read once
    assert [r.path for r in discover_runs([run / "metrics.json", run])] == [run]


def test_findings_diagnosed_without_findings_json(tmp_path):
    run = make_run(tmp_path / "r", confmat_for(0.2))
    rec = load_run(run)
    assert rec.findings_source == "diagnosed"
    weak = [c["name"] for c in rec.findings["classes"] if c["status"] == "weak"]
    assert weak == ["mug"]  # IoU 0.2 < the default threshold 0.40; background and cable (0.8) are fine
    assert load_run(run, findings="file").findings is None


def test_multirun_crashed_and_missing_jobs_are_reported(tmp_path):
    sweep = make_multirun(tmp_path / "sweep", [
        dict(confmat=confmat_for(0.5), version="1.0.0", seed=0),
        dict(confmat=confmat_for(0.5), version="1.0.0", seed=1, write_metrics=False,
             log="[2026][segval][INFO] step 3\n[2026][segval][ERROR] loss is NaN at step 4\nbye\n"),
        dict(confmat=confmat_for(0.6), version="1.1.0", seed=0, skip=True),
        dict(confmat=confmat_for(0.6), version="1.1.0", seed=1),
    ], sweep_overrides=["data.version=1.0.0,1.1.0", "seed=0,1"])
    runs = discover_runs([sweep])
    assert [(r.job, r.status) for r in runs] == [("0", "ok"), ("1", "crashed"), ("2", "missing"), ("3", "ok")]
    crashed, missing = runs[1], runs[2]
    assert "no metrics.json" in crashed.reason and "loss is NaN at step 4" in crashed.reason
    assert (crashed.version, crashed.seed) == ("1.0.0", 1)  # from its overrides
    assert missing.overrides == ["data.version=1.1.0", "seed=0"] and "never started" in missing.reason
    assert (missing.version, missing.seed) == ("1.1.0", 0)
    assert all(r.sweep == sweep for r in runs)


def test_expected_jobs_follow_hydra_basic_sweeper_order():
    mr = {"hydra": {"sweeper": {"_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper",
                                "params": {"model.lr": "0.1,0.2"}},
                    "overrides": {"task": ["data.version=1.0.0,1.1.0", "seed=0,1,2", "trainer=cpu"]}}}
    jobs = expected_jobs(mr)
    assert len(jobs) == 2 * 2 * 3
    assert jobs[0] == ["model.lr=0.1", "data.version=1.0.0", "seed=0", "trainer=cpu"]
    assert jobs[1] == ["model.lr=0.1", "data.version=1.0.0", "seed=1", "trainer=cpu"]
    assert jobs[-1] == ["model.lr=0.2", "data.version=1.1.0", "seed=2", "trainer=cpu"]
    assert expected_jobs({"hydra": {"sweeper": {"_target_": "hydra_plugins.optuna.OptunaSweeper"}}}) is None


def test_invalid_run_files(tmp_path):
    run = make_run(tmp_path / "r", confmat_for(0.5))
    (run / "metrics.json").write_text("{not json")
    rec = load_run(run)
    assert rec.status == "invalid" and "cannot be read as JSON" in rec.reason
    (run / "metrics.json").write_text(json.dumps({"hello": 1}))
    assert "not a segval metrics.json" in load_run(run).reason
    (run / "metrics.json").unlink()
    (run / ".hydra" / "config.yaml").write_text("a: [unclosed")
    assert load_run(run).status == "invalid"


def test_discover_errors_and_folder_of_runs(tmp_path):
    with pytest.raises(SegvalError, match="no such run directory"):
        discover_runs([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(SegvalError, match="not a run directory"):
        discover_runs([tmp_path / "empty"])
    runs_dir = tmp_path / "runs"
    make_run(runs_dir / "b", confmat_for(0.5), seed=1)
    make_run(runs_dir / "a", confmat_for(0.5), seed=0)
    assert [r.seed for r in discover_runs([runs_dir])] == [0, 1]


def test_version_from_config_when_no_overrides(tmp_path):
    run = make_run(tmp_path / "r", confmat_for(0.5), write_metrics=False, overrides=[])
    cfg = yaml.safe_load((run / ".hydra" / "config.yaml").read_text())
    cfg["data"]["version"] = "2.0.0"
    (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump(cfg))
    rec = load_run(run)
    assert rec.status == "crashed" and rec.version == "2.0.0" and rec.seed == 0


def test_analyze_run_dir_stands_for_the_run_it_analysed(tmp_path):
    run = make_run(tmp_path / "train", confmat_for(0.5), seed=4)
    ana = tmp_path / "analyze"
    (ana / ".hydra").mkdir(parents=True)
    (ana / ".hydra" / "config.yaml").write_text(yaml.safe_dump({"task_name": "analyze", "run_dir": str(run),
                                                                "seed": 0}))
    (ana / "findings.json").write_text(json.dumps(findings_doc({"cable": ["boundary"]})))
    (rec,) = discover_runs([ana])
    assert rec.path == run and rec.seed == 4 and rec.status == "ok"
    assert rec.findings_source == "findings.json" and rec.findings["classes"][2]["status"] == "weak"


def test_crashed_job_of_a_data_root_sweep_knows_its_version(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "dataset.yaml").write_text("name: tabletop\nversion: 1.2.0\n")
    run = make_run(tmp_path / "r", confmat_for(0.5), write_metrics=False, overrides=[f"data.root={pkg}", "seed=2"])
    rec = load_run(run)
    assert rec.status == "crashed" and rec.dataset["source"] == str(pkg)
    assert (rec.dataset["name"], rec.version, rec.seed) == ("tabletop", "1.2.0", 2)
