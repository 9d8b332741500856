"""`segval compare` and `segval gate` end to end through the real `segval` command."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from tests.experiments.run_dirs import confmat_for, make_multirun, make_run

from tests.helpers import run_segval


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """A sweep over 2 versions x 2 seeds whose last job crashed."""
    root = tmp_path_factory.mktemp("sweep")
    return make_multirun(root / "multirun", [
        dict(confmat=confmat_for(0.50), version="1.0.0", seed=0),
        dict(confmat=confmat_for(0.52), version="1.0.0", seed=1),
        dict(confmat=confmat_for(0.70), version="1.1.0", seed=0),
        dict(confmat=confmat_for(0.72), version="1.1.0", seed=1, write_metrics=False),
    ], sweep_overrides=["data.version=1.0.0,1.1.0", "seed=0,1"])


def test_compare_cli(sweep, tmp_path):
    r = run_segval("compare", f"runs={sweep}", f"hydra.run.dir={tmp_path}/out", cwd=tmp_path)
    assert r.returncode == 0, r.output
    assert "1.1.0 vs 1.0.0: mIoU" in r.stdout and f"NOT FINISHED {sweep}/3: crashed" in r.stdout
    res = json.loads((tmp_path / "out" / "compare.json").read_text())
    assert res["baseline"] == "1.0.0" and res["deltas"][0]["classes"]["mug"]["delta"] == pytest.approx(0.19)
    assert "data:image/png;base64," in (tmp_path / "out" / "compare.html").read_text()
    # runs of another taxonomy: a clear error, exit 2
    other = make_run(tmp_path / "other", confmat_for(0.5), classes=["background", "mug", "cup"])
    r = run_segval("compare", f"runs=[{sweep}/0,{other}]", f"hydra.run.dir={tmp_path}/err", cwd=tmp_path)
    assert r.returncode == 2 and "runs of different taxonomies cannot be compared" in r.stderr


def test_gate_cli_exit_codes(sweep, tmp_path):
    qa = tmp_path / "qa.json"
    qa.write_text(json.dumps({"dataset": {"name": "shapes", "version": "1.1.0"},
                              "decision": {"status": "clean", "worst_severity": None, "fail_on": "error",
                                           "exit_code": 0}, "counts": {"severity": {}}}))
    common = [f"candidate={sweep}", "candidate_version=1.1.0", f"baseline={sweep}", "baseline_version=1.0.0",
              f"qa={qa}"]
    # the crashed job of 1.1.0 fails the gate (fail closed), with a JUnit failure carrying the reason
    r = run_segval("gate", *common, f"hydra.run.dir={tmp_path}/fail", cwd=tmp_path)
    assert r.returncode == 1, r.output
    assert "FAIL runs/candidate" in r.stdout and "crashed" in r.stdout
    suite = ET.parse(tmp_path / "fail" / "junit.xml").getroot().find("testsuite")
    (case,) = [c for c in suite.findall("testcase") if c.find("failure") is not None]
    assert case.get("name") == "runs/candidate" and "crashed" in case.find("failure").get("message")
    # the finished runs only: pass
    r = run_segval("gate", f"candidate=[{sweep}/2]", f"baseline=[{sweep}/0,{sweep}/1]", f"qa={qa}",
                   f"hydra.run.dir={tmp_path}/pass", cwd=tmp_path)
    assert r.returncode == 0, r.output
    assert json.loads((tmp_path / "pass" / "verdict.json").read_text())["status"] == "pass"
    assert "PASS for shapes 1.1.0" in r.stdout
    # cannot decide: an invalid policy value (error verdict written), an unknown policy name
    r = run_segval("gate", *common, "policy.min_metrics.mIoU=2", f"hydra.run.dir={tmp_path}/bad", cwd=tmp_path)
    assert r.returncode == 2 and "min_metrics.mIoU must be a number in [0, 1]" in r.stderr
    assert json.loads((tmp_path / "bad" / "verdict.json").read_text())["status"] == "error"
    r = run_segval("gate", "gate=nonexistent", *common, f"hydra.run.dir={tmp_path}/none", cwd=tmp_path)
    assert r.returncode == 2 and "nonexistent" in r.output
    # policy_file=...: a policy kept outside conf/gate
    pol = tmp_path / "ci_policy.yaml"
    pol.write_text("name: ci\nmin_metrics: {mIoU: 0.99}\n")
    r = run_segval("gate", f"policy_file={pol}", f"candidate=[{sweep}/2]", f"hydra.run.dir={tmp_path}/ci",
                   cwd=tmp_path)
    assert r.returncode == 1 and "FAIL metric/mIoU" in r.stdout and "(ci)" in r.stdout
