"""Gate policies: the shipped conf/gate/*.yaml, validation errors (exit 2: cannot decide), the error verdict."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from importlib import resources

import pytest
import yaml

from segval.errors import ConfigError
from segval.experiments.gate import GatePolicy, error_verdict, load_policy, render_junit, render_markdown

SHIPPED = ["default", "strict", "first_release"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_policies_are_valid(name):
    text = (resources.files("segval") / "conf" / "gate" / f"{name}.yaml").read_text()
    assert text.startswith("# @package policy")
    p = GatePolicy.from_mapping(yaml.safe_load(text), source=name)
    assert p.name == name


def test_shipped_policy_contents():
    conf = resources.files("segval") / "conf" / "gate"
    default = GatePolicy.from_mapping(yaml.safe_load((conf / "default.yaml").read_text()))
    assert default.min_metrics == {"mIoU": 0.3} and default.max_regression["default"] == 0.02
    assert default.regression_beyond_noise and default.qa["required"] and default.has_regression_rules
    strict = GatePolicy.from_mapping(yaml.safe_load((conf / "strict.yaml").read_text()))
    assert strict.min_seeds == 3 and strict.qa["fail_on"] == "warning" and strict.agreement["required"]
    first = GatePolicy.from_mapping(yaml.safe_load((conf / "first_release.yaml").read_text()))
    assert not first.has_regression_rules


@pytest.mark.parametrize("policy, match", [
    ({"min_mIoU": 0.3}, r"unknown policy key\(s\) \['min_mIoU'\]"),
    ({"min_metrics": {"mIoU": 1.5}}, r"min_metrics.mIoU must be a number in \[0, 1\], got 1.5"),
    ({"min_metrics": {"mIoU": "high"}}, "min_metrics.mIoU must be a number"),
    ({"min_metrics": [0.3]}, "min_metrics must be a mapping"),
    ({"group_floors": {"wobbly": 0.3}}, r"unknown group\(s\) \['wobbly'\]"),
    ({"aggregate": "median"}, "aggregate must be 'mean' or 'min'"),
    ({"min_seeds": 0}, "min_seeds must be an integer >= 1"),
    ({"absent": "ignore"}, "absent must be 'fail' or 'skip'"),
    ({"max_regression": {"default": 0.1, "per_class": {}}}, r"max_regression has unknown key\(s\) \['per_class'\]"),
    ({"regression_beyond_noise": "yes"}, "regression_beyond_noise must be true or false"),
    ({"noise_k": -1}, "noise_k must be a positive number"),
    ({"qa": {"fail_on": "fatal"}}, "qa.fail_on must be null or one of"),
    ({"agreement": {"target": {}}}, "agreement allows the keys"),
    ([1, 2], "must be a mapping of rules"),
])
def test_invalid_policies(policy, match):
    with pytest.raises(ConfigError, match=match) as info:
        GatePolicy.from_mapping(policy)
    assert info.value.exit_code == 2


def test_load_policy_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="cannot be read"):
        load_policy(tmp_path / "missing.yaml")
    (tmp_path / "broken.yaml").write_text("min_metrics: {mIoU: [")
    with pytest.raises(ConfigError, match="broken.yaml: the gate policy cannot be read"):
        load_policy(tmp_path / "broken.yaml")
    (tmp_path / "ok.yaml").write_text("name: ci\nmin_metrics: {mIoU: 0.4}\nclass_floors: {mug: null}\n")
    p = load_policy(tmp_path / "ok.yaml")
    assert p.name == "ci" and p.min_metrics == {"mIoU": 0.4} and p.class_floors == {}


def test_error_verdict_outputs():
    v = error_verdict("policy: min_metrics.mIoU must be a number in [0, 1], got 2", "default")
    assert v["status"] == "error" and v["exit_code"] == 2
    root = ET.fromstring(render_junit(v))
    assert root.get("errors") == "1"
    (case,) = root.iter("testcase")
    assert case.find("error").get("message").startswith("policy: min_metrics.mIoU")
    assert render_markdown(v).startswith("# segval gate: CANNOT DECIDE")
