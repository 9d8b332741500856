"""segval gate: pass, fail, and every fail-closed path, on real run directories, qa.json and agreement.json."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from tests.experiments.run_dirs import confmat_for, findings_doc, make_multirun, make_run

from segval.experiments.gate import evaluate_gate, render_junit, render_markdown, write_verdict
from segval.experiments.runs import discover_runs

BASE = [0.50, 0.52, 0.54]
CAND = [0.60, 0.62, 0.64]


def runs(tmp_path, ious, version, cable=80, **kw):
    return [make_run(tmp_path / f"{version}_{s}", confmat_for(iou, cable_ok=cable), version=version, seed=s, **kw)
            for s, iou in enumerate(ious)]


def qa_doc(status="clean", version="1.1.0", severity=None):
    sev = severity or {"info": 0, "warning": 0, "error": 0}
    return {"schema_version": 1, "dataset": {"name": "shapes", "version": version, "root": "/x"},
            "decision": {"status": status, "worst_severity": None, "fail_on": "error",
                         "exit_code": 0 if status == "clean" else 1},
            "counts": {"images": 4, "flagged_images": 0, "severity": sev}}


def agreement_doc(same: bool = True):
    from segval.qa.agreement import compute_agreement

    a = {1: np.array([[0, 1, 1], [2, 2, 0]], np.uint8)}
    b = {1: a[1].copy() if same else np.array([[0, 1, 0], [2, 0, 0]], np.uint8)}
    return compute_agreement([a, b], ["background", "mug", "cable"], ["stuff", "rigid", "thin"])


POLICY = {"min_metrics": {"mIoU": 0.3}, "class_floors": {"mug": 0.5}, "max_regression": {"default": 0.02},
          "regression_beyond_noise": True, "qa": {"required": True}}


def rule(verdict, name):
    (r,) = [r for r in verdict["rules"] if r["name"] == name]
    return r


def failed(verdict):
    return {r["name"]: r["reason"] for r in verdict["rules"] if r["status"] == "fail"}


@pytest.fixture
def good(tmp_path):
    return runs(tmp_path, CAND, "1.1.0"), runs(tmp_path, BASE, "1.0.0")


def test_pass(good):
    cand, base = good
    v = evaluate_gate(POLICY, candidate=cand, baseline=base, qa=qa_doc())
    assert v["status"] == "pass" and v["exit_code"] == 0 and v["failed"] == [], failed(v)
    assert rule(v, "class/mug")["value"] == pytest.approx(0.62)
    assert rule(v, "regression/class/mug")["value"] == pytest.approx(0.10)  # the delta (a gain)
    assert [r["name"] for r in v["rules"]][:2] == ["runs/candidate", "runs/baseline"]
    assert v["candidate"]["dataset"]["version"] == "1.1.0" and v["baseline"]["dataset"]["version"] == "1.0.0"


def test_fail_floors_and_regression(good):
    cand, base = good
    # the candidate as the baseline's successor in reverse: every figure drops
    v = evaluate_gate({**POLICY, "class_floors": {"mug": 0.6}}, candidate=base, baseline=cand,
                      qa=qa_doc(version="1.0.0"))
    assert v["status"] == "fail" and v["exit_code"] == 1
    f = failed(v)
    assert set(f) == {"class/mug", "regression/class/mug"}
    assert "52.00% < class_floors 60.00%" in f["class/mug"]
    assert "drops 10.00 points" in f["regression/class/mug"] and "beyond seed noise" in f["regression/class/mug"]


def test_regression_within_noise_counts_only_without_beyond_noise(tmp_path):
    base = runs(tmp_path, [0.50, 0.60, 0.55], "1.0.0")
    cand = runs(tmp_path, [0.46, 0.58, 0.52], "1.1.0")  # mug drops 3 points, well within the seed spread
    pol = {"max_regression": {"classes": {"mug": 0.01}}, "regression_beyond_noise": True}
    v = evaluate_gate(pol, candidate=cand, baseline=base)
    r = rule(v, "regression/class/mug")
    assert r["status"] == "pass" and "within seed noise, so not counted" in r["reason"]
    v = evaluate_gate({**pol, "regression_beyond_noise": False}, candidate=cand, baseline=base)
    assert rule(v, "regression/class/mug")["status"] == "fail"


def test_unknown_noise_fails_closed(tmp_path):
    base = runs(tmp_path, [0.55], "1.0.0")
    cand = runs(tmp_path, [0.50, 0.52, 0.54], "1.1.0")
    v = evaluate_gate({"max_regression": {"classes": {"mug": 0.01}}, "regression_beyond_noise": True},
                      candidate=cand, baseline=base)
    assert "seed noise unknown" in failed(v)["regression/class/mug"]


@pytest.mark.parametrize("case", ["missing_path", "crashed", "never_started", "min_seeds", "two_versions", "none"])
def test_fail_closed_runs(tmp_path, case):
    cand = runs(tmp_path, CAND, "1.1.0")
    pol = {"min_metrics": {"mIoU": 0.3}}
    if case == "missing_path":
        cand = [*cand, tmp_path / "gone"]
    elif case == "crashed":
        cand.append(make_run(tmp_path / "crashed", confmat_for(0.6), version="1.1.0", seed=9, write_metrics=False))
    elif case == "never_started":
        cand = [make_multirun(tmp_path / "sweep", [dict(confmat=confmat_for(0.6), version="1.1.0", seed=0),
                                                   dict(confmat=confmat_for(0.6), version="1.1.0", seed=1, skip=True)],
                              sweep_overrides=["seed=0,1"])]
    elif case == "min_seeds":
        pol["min_seeds"] = 4
    elif case == "two_versions":
        cand.append(make_run(tmp_path / "other", confmat_for(0.6), version="1.2.0"))
    elif case == "none":
        cand = []
    v = evaluate_gate(pol, candidate=cand, baseline=None)
    reason = failed(v)["runs/candidate"]
    assert v["status"] == "fail"
    assert {"missing_path": "no such run directory", "crashed": "crashed", "never_started": "never started",
            "min_seeds": "needs at least 4", "two_versions": "several dataset versions",
            "none": "no candidate runs"}[case] in reason


def test_candidate_version_filter_on_one_sweep(tmp_path):
    sweep = make_multirun(tmp_path / "sweep", [
        dict(confmat=confmat_for(0.50), version="1.0.0", seed=0),
        dict(confmat=confmat_for(0.52), version="1.0.0", seed=1),
        dict(confmat=confmat_for(0.60), version="1.1.0", seed=0),
        dict(confmat=confmat_for(0.62), version="1.1.0", seed=1, write_metrics=False),
    ], sweep_overrides=["data.version=1.0.0,1.1.0", "seed=0,1"])
    pol = {"max_regression": {"default": 0.02}}
    v = evaluate_gate(pol, candidate=[sweep], baseline=[sweep], candidate_version="1.1.0", baseline_version="1.0.0")
    assert set(failed(v)) == {"runs/candidate"} and "/3: crashed" in failed(v)["runs/candidate"]
    assert rule(v, "runs/baseline")["status"] == "pass"


def test_fail_closed_missing_metric_and_absent_class(tmp_path):
    cm = confmat_for(0.6)
    cm[2, :] = 0  # cable absent from GT and prediction: IoU undefined
    cand = [make_run(tmp_path / "c", cm, version="1.1.0")]
    v = evaluate_gate({"min_metrics": {"AP": 0.2, "mIoU": 0.1}, "class_floors": {"cable": 0.1}}, candidate=cand)
    f = failed(v)
    assert "AP is missing or undefined" in f["metric/AP"] and rule(v, "metric/mIoU")["status"] == "pass"
    assert "cable has no IoU (absent" in f["class/cable"]
    v = evaluate_gate({"class_floors": {"cable": 0.1}, "absent": "skip"}, candidate=cand)
    assert v["status"] == "pass" and "skipped" in rule(v, "class/cable")["reason"]


def test_policy_class_the_dataset_lacks_fails(good):
    cand, base = good
    v = evaluate_gate({"class_floors": {"mugg": 0.1}, "max_regression": {"classes": {"kettle": 0.0}}},
                      candidate=cand, baseline=base)
    f = failed(v)
    assert v["exit_code"] == 1
    assert "names class 'mugg', which dataset shapes 1.1.0 does not have" in f["class/mugg"]
    assert "did you mean 'mug'?" in f["class/mugg"]
    assert "names class 'kettle'" in f["regression/class/kettle"]


def test_baseline_missing_or_other_taxonomy(tmp_path, good):
    cand, _ = good
    v = evaluate_gate({"max_regression": {"metrics": {"mIoU": 0.0}}}, candidate=cand)
    f = failed(v)
    assert "no baseline runs" in f["runs/baseline"] and "no finished baseline run" in f["regression/metric/mIoU"]
    other = [make_run(tmp_path / "o", confmat_for(0.5), classes=["background", "mug", "cup"])]
    v = evaluate_gate({"max_regression": {"metrics": {"mIoU": 0.0}}}, candidate=cand, baseline=other)
    assert "taxonomy differs" in failed(v)["regression/metric/mIoU"]


def test_content_hash_conflict_fails(tmp_path):
    cand = runs(tmp_path, CAND, "1.1.0", content_hash="sha256:new")
    base = [make_run(tmp_path / "b", confmat_for(0.6), version="1.1.0", content_hash="sha256:other")]
    v = evaluate_gate({"min_metrics": {"mIoU": 0.1}, "max_regression": {"default": 0.5}}, candidate=cand,
                      baseline=base)
    assert "different content hashes" in failed(v)["runs/content_hash"]
    v = evaluate_gate({"min_metrics": {"mIoU": 0.1}}, candidate=cand)
    assert rule(v, "runs/content_hash")["status"] == "pass"


def test_qa_rules(tmp_path, good):
    cand, _ = good
    pol = {"min_metrics": {"mIoU": 0.1}, "qa": {"required": True}}
    assert "no qa.json was given" in failed(evaluate_gate(pol, candidate=cand))["qa"]
    assert "does not exist" in failed(evaluate_gate(pol, candidate=cand, qa=tmp_path / "nope.json"))["qa"]
    (tmp_path / "bad.json").write_text("{")
    assert "cannot be read" in failed(evaluate_gate(pol, candidate=cand, qa=tmp_path / "bad.json"))["qa"]
    assert "not a segval qa.json" in failed(evaluate_gate(pol, candidate=cand, qa={"x": 1}))["qa"]
    other = evaluate_gate(pol, candidate=cand, qa=qa_doc(version="1.0.0"))
    assert "checked dataset version 1.0.0" in failed(other)["qa"]
    assert "findings" in failed(evaluate_gate(pol, candidate=cand, qa=qa_doc("findings")))["qa"]
    warn = qa_doc(severity={"info": 3, "warning": 2, "error": 0})
    assert evaluate_gate(pol, candidate=cand, qa=warn)["status"] == "pass"
    strict = {**pol, "qa": {"required": True, "fail_on": "warning"}}
    assert "2 finding(s) at or above warning" in failed(evaluate_gate(strict, candidate=cand, qa=warn))["qa"]
    # a qa run directory holding qa.json is accepted
    (tmp_path / "qa_run").mkdir()
    (tmp_path / "qa_run" / "qa.json").write_text(json.dumps(qa_doc()))
    assert evaluate_gate(pol, candidate=cand, qa=tmp_path / "qa_run")["status"] == "pass"


def test_qa_from_a_real_qa_run(tmp_path, good):
    from segval.dataset.package import DatasetPackage
    from segval.demo.shapes import write_shapes_package
    from segval.qa.runner import QAConfig, run_qa, write_report

    root = write_shapes_package(tmp_path / "pkg", images={"val": 2}, size=(32, 32), version="1.1.0")
    report = run_qa(DatasetPackage.open(root), QAConfig.from_mapping({}), progress=False)
    write_report(report, tmp_path / "qa")
    cand, _ = good
    pol = {"min_metrics": {"mIoU": 0.1}, "qa": {"required": True}}
    v = evaluate_gate(pol, candidate=cand, qa=tmp_path / "qa")
    assert rule(v, "qa")["status"] == ("pass" if report["decision"]["status"] == "clean" else "fail")
    n_warn = report["counts"]["severity"]["warning"] + report["counts"]["severity"]["error"]
    v = evaluate_gate({**pol, "qa": {"required": True, "fail_on": "warning"}}, candidate=cand, qa=tmp_path / "qa")
    assert rule(v, "qa")["status"] == ("pass" if n_warn == 0 else "fail")


def test_agreement_rules(good):
    cand, _ = good
    pol = {"agreement": {"required": True, "classes": True}}
    assert "no agreement.json" in failed(evaluate_gate(pol, candidate=cand))["agreement"]
    v = evaluate_gate(pol, candidate=cand, agreement=agreement_doc(same=True))
    assert v["status"] == "pass", failed(v)
    assert {r["name"] for r in v["rules"]} >= {"agreement/rigid", "agreement/thin", "agreement/class/mug"}
    v = evaluate_gate(pol, candidate=cand, agreement=agreement_doc(same=False))
    f = failed(v)
    assert "< target 85.00%" in f["agreement/rigid"]
    # a target the policy sets for a group the file does not measure: fail, never pass
    v = evaluate_gate({"agreement": {"targets": {"deformable": 0.5}}}, candidate=cand, agreement=agreement_doc())
    assert "no agreement IoU for group deformable" in failed(v)["agreement/deformable"]


def test_group_floors_need_groups(tmp_path):
    cand = runs(tmp_path, CAND, "1.1.0")
    v = evaluate_gate({"group_floors": {"thin": 0.9}}, candidate=cand)
    assert "taxonomy group of each class" in failed(v)["group/thin"]
    # groups from findings.json
    doc = findings_doc({})
    for c, g in zip(doc["classes"], ["stuff", "rigid", "thin"], strict=True):
        c["group"] = g
    cand = runs(tmp_path / "f", CAND, "1.1.0", findings=doc)
    v = evaluate_gate({"group_floors": {"thin": 0.9, "deformable": 0.1}}, candidate=cand)
    assert set(failed(v)) == {"class/cable"} and "group_floors.thin 90.00%" in failed(v)["class/cable"]
    assert rule(v, "group/deformable")["status"] == "pass"  # no deformable class: nothing to hold
    # groups from the dataset.yaml named by metrics.json dataset.source; a class's own floor wins
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "dataset.yaml").write_text("name: shapes\ntaxonomy:\n - {id: 0, name: background, group: stuff}\n"
                                      " - {id: 1, name: mug, group: thin}\n - {id: 2, name: cable, group: thin}\n")
    cand = runs(tmp_path / "d", CAND, "1.1.0", source=str(pkg))
    v = evaluate_gate({"group_floors": {"thin": 0.7}, "class_floors": {"mug": 0.6}}, candidate=cand)
    assert v["status"] == "pass", failed(v)
    assert "class_floors" in rule(v, "class/mug")["reason"] and "group_floors.thin" in rule(v, "class/cable")["reason"]


def test_aggregate_min_uses_worst_seed(good):
    cand, _ = good
    assert evaluate_gate({"class_floors": {"mug": 0.61}}, candidate=cand)["status"] == "pass"  # mean 0.62
    v = evaluate_gate({"class_floors": {"mug": 0.61}, "aggregate": "min"}, candidate=cand)  # worst 0.60
    assert "60.00% < class_floors 61.00%" in failed(v)["class/mug"]


def test_a_policy_that_checks_nothing_fails(good):
    cand, _ = good
    v = evaluate_gate({}, candidate=cand)
    assert "checks nothing" in failed(v)["policy"]


def test_outputs_junit_and_markdown(good, tmp_path):
    cand, base = good
    v = evaluate_gate({**POLICY, "class_floors": {"mug": 0.9}}, candidate=discover_runs(cand), baseline=base,
                      qa=qa_doc())
    paths = write_verdict(v, tmp_path / "out")
    assert json.loads(paths["json"].read_text())["status"] == "fail"
    suite = ET.parse(paths["junit"]).getroot().find("testsuite")
    cases = suite.findall("testcase")
    assert len(cases) == len(v["rules"]) == int(suite.get("tests")) and suite.get("failures") == "1"
    (bad,) = [c for c in cases if c.find("failure") is not None]
    assert bad.get("name") == "class/mug" and bad.get("classname") == "segval.gate.class_floor"
    assert bad.find("failure").get("message") == rule(v, "class/mug")["reason"]
    md = paths["markdown"].read_text()
    assert md.startswith("# segval gate: FAIL") and "**class/mug**" in md
    assert render_markdown(v) == md and render_junit(v) == paths["junit"].read_text()


def pilot_doc(status="passed", name="shapes"):
    classes = [{"name": "mug", "IoU": 0.9 if status == "passed" else 0.6, "flagged": status == "failed"},
               {"name": "cable", "IoU": 0.85, "flagged": False}]
    return {"schema_version": 1, "kind": "segval guideline pilot", "status": status, "threshold": 0.8,
            "dataset": {"name": name, "version": "1.1.0"}, "annotators": ["a", "b", "c"], "images": [{}] * 20,
            "classes": classes, "flagged_classes": [c["name"] for c in classes if c["flagged"]]}


def test_pilot_rule(good, tmp_path):
    cand, _ = good
    pol = {"min_metrics": {"mIoU": 0.3}, "pilot": {"required": True}}
    missing = failed(evaluate_gate(pol, candidate=cand))
    assert "requires a passed guideline pilot" in missing["pilot"]
    assert evaluate_gate(pol, candidate=cand, pilot=pilot_doc())["status"] == "pass"
    assert rule(evaluate_gate(pol, candidate=cand, pilot=pilot_doc()), "pilot")["reason"].endswith(
        "pilot passed (3 annotators x 20 images, every measured class >= 80.00%)")
    assert "planned but not scored" in failed(evaluate_gate(pol, candidate=cand, pilot=pilot_doc("planned")))["pilot"]
    why = failed(evaluate_gate(pol, candidate=cand, pilot=pilot_doc("failed")))["pilot"]
    assert "pilot failed" in why and "mug 60.00%" in why and "cable" not in why
    assert "pilot of dataset 'other'" in failed(evaluate_gate(pol, candidate=cand, pilot=pilot_doc(name="other")))["pilot"]
    (tmp_path / "p").mkdir()
    assert "does not exist" in failed(evaluate_gate(pol, candidate=cand, pilot=tmp_path / "p"))["pilot"]
    (tmp_path / "p" / "pilot.json").write_text(json.dumps({"status": "passed"}))
    assert "not a pilot.json" in failed(evaluate_gate(pol, candidate=cand, pilot=tmp_path / "p"))["pilot"]
    # not required: no rule without a pilot, a given one is still judged
    assert "pilot" not in {r["name"] for r in evaluate_gate({"min_metrics": {"mIoU": 0.3}}, candidate=cand)["rules"]}
    assert "pilot" in failed(evaluate_gate({"min_metrics": {"mIoU": 0.3}}, candidate=cand, pilot=pilot_doc("failed")))
    with pytest.raises(Exception, match="pilot.required must be true or false"):
        evaluate_gate({"pilot": {"required": "yes"}}, candidate=cand)
