"""`segval gate`: a release verdict from a policy, for CI (exit 0 pass, 1 fail, 2 cannot decide).

The policy is ``conf/gate/<name>.yaml`` (``gate=strict``; keys overridable as ``policy.min_metrics.mIoU=0.5``)
or a YAML file (``policy_file=...``). Rules and the fail-closed behaviour are in :mod:`segval.experiments.gate`.
Writes ``verdict.json``, ``verdict.md`` and ``junit.xml`` into the run directory, also when the gate cannot
decide (then with status ``error``). A Hydra composition error (unknown policy name, bad override) also exits 2:
the gate did not decide.
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from segval.commands._common import as_list, segval_app
from segval.errors import ConfigError

_DECIDED = {"exit": False}


def run(cfg: DictConfig) -> dict[str, Any]:
    """Evaluate the gate of ``cfg``; writes the verdict files and returns the verdict (raises ConfigError when
    it cannot decide, after writing an error verdict)."""
    from segval.experiments.gate import GatePolicy, error_verdict, evaluate_gate, load_policy, write_verdict

    out_dir = Path(cfg.paths.output_dir)
    try:
        if cfg.get("policy_file"):
            policy = load_policy(cfg.policy_file)
        else:
            policy = GatePolicy.from_mapping(OmegaConf.to_container(cfg.policy, resolve=True), source="policy")
        candidate = as_list(cfg.candidate, "candidate")
        if not candidate:
            raise ConfigError("no candidate runs: pass candidate=[<run dir or multirun dir>,...] (the runs of the "
                              "dataset version to release)")
        baseline = as_list(cfg.baseline, "baseline")
    except ConfigError as err:
        write_verdict(error_verdict(str(err), (cfg.get("policy") or {}).get("name")), out_dir)
        raise
    verdict = evaluate_gate(policy, candidate=candidate, baseline=baseline or None, qa=cfg.qa,
                            agreement=cfg.agreement, candidate_version=cfg.get("candidate_version"),
                            baseline_version=cfg.get("baseline_version"), pilot=cfg.get("pilot"))
    paths = write_verdict(verdict, out_dir)
    for r in verdict["rules"]:
        if r["status"] == "fail":
            print(f"FAIL {r['name']}: {r['reason']}")
    c = verdict["counts"]
    ds = verdict["candidate"]["dataset"]
    print(f"\nsegval gate ({policy.name}): {verdict['status'].upper()} for {ds.get('name')} {ds.get('version')} "
          f"({c['passed']} of {c['rules']} rules passed)")
    print(f"verdict: {paths['json']}\n         {paths['markdown']}\n         {paths['junit']}")
    return verdict


@segval_app("gate")
def _app(cfg: DictConfig) -> None:
    verdict = run(cfg)
    _DECIDED["exit"] = True
    if verdict["exit_code"]:
        sys.exit(verdict["exit_code"])


def main() -> None:
    """The Hydra app, with Hydra's own failures (exit 1: an unknown policy, a bad override) mapped to exit 2,
    so that CI never reads "the gate could not run" as "the release failed"."""
    _DECIDED["exit"] = False
    try:
        _app()
    except SystemExit as err:
        if err.code not in (0, None) and not _DECIDED["exit"]:
            sys.exit(2)
        raise
    except Exception:  # HYDRA_FULL_ERROR=1 lets errors through: still "cannot decide", with the traceback
        traceback.print_exc()
        sys.exit(2)


if __name__ == "__main__":
    main()
