"""`segval qa` run as a user would (a new process): exit codes 0 / 1 / 2, qa.json + qa.md in the run dir."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from segval.dataset import Category, InstanceMask, PackageWriter, Taxonomy

from tests.helpers import Result, run_segval

pytestmark = pytest.mark.slow

H, W = 48, 48


def run_qa_cli(*args: str, cwd: Path) -> Result:
    """`segval qa <args>`, as a user runs it."""
    return run_segval("qa", *args, cwd=cwd)


def _package(root: Path, *, small: bool) -> Path:
    tax = Taxonomy([Category(0, "background", (0, 0, 0), False, "stuff"), Category(1, "cube", (200, 0, 0), True, "rigid")],
                   background_id=0)
    big = np.zeros((H, W), bool)
    big[0:30, 0:30] = True
    speck = np.zeros((H, W), bool)
    speck[40:44, 40:44] = True
    with PackageWriter(root, name="qa-cli", version="1.0.0", taxonomy=tax, splits=["train", "val"]) as w:
        for s in ("train", "val"):
            for k in range(2):
                inst = [InstanceMask(1, big)] + ([InstanceMask(1, speck)] if small and s == "val" and k == 1 else [])
                w.add_image(s, np.zeros((H, W, 3), np.uint8), f"{s}_{k}", instances=inst)
    return root


def test_clean_findings_and_could_not_run(tmp_path):
    clean = _package(tmp_path / "clean", small=False)
    run = run_qa_cli("data=package", f"data.root={clean}", f"hydra.run.dir={tmp_path / 'r0'}", cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "CLEAN" in run.stdout and "qa.json" in run.stdout
    rep = json.loads((tmp_path / "r0" / "qa.json").read_text())
    assert rep["schema_version"] == 1 and rep["counts"]["images"] == 4 and rep["counts"]["flagged_images"] == 0
    assert (tmp_path / "r0" / "qa.md").is_file()

    dirty = _package(tmp_path / "dirty", small=True)
    run = run_qa_cli("data=package", f"data.root={dirty}", f"hydra.run.dir={tmp_path / 'r1'}", cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr  # small_mask is a warning; fail_on=error
    run = run_qa_cli("data=package", f"data.root={dirty}", f"hydra.run.dir={tmp_path / 'r2'}", "qa.fail_on=warning",
                     cwd=tmp_path)
    assert run.returncode == 1, run.stdout + run.stderr
    rep = json.loads((tmp_path / "r2" / "qa.json").read_text())
    assert rep["splits"]["val"]["counts"]["small_mask"] == 1 and rep["decision"]["status"] == "findings"
    assert [i["file_name"] for i in rep["images"]] == ["val_1.png"]
    assert "small_mask" in (tmp_path / "r2" / "qa.md").read_text()

    run = run_qa_cli("data=package", f"data.root={tmp_path / 'missing'}", f"hydra.run.dir={tmp_path / 'r3'}",
                     cwd=tmp_path)
    assert run.returncode == 2 and "dataset.yaml not found" in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "r3" / "qa.json").exists()
    run = run_qa_cli("data=package", f"data.root={clean}", f"hydra.run.dir={tmp_path / 'r4'}", "qa.fail_on=loud",
                     cwd=tmp_path)
    assert run.returncode == 2 and "qa.fail_on" in run.stderr
    run = run_qa_cli("data=package", f"data.root={clean}", f"hydra.run.dir={tmp_path / 'r5'}", "splits=[test]",
                     cwd=tmp_path)
    assert run.returncode == 2 and "test" in run.stderr
