"""`segval dataset release` / `segval dataset diff` run as a user would (a new process)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from segval.demo.shapes import write_shapes_package

from tests.helpers import Result, run_segval

pytestmark = pytest.mark.slow


def run_versions(command: str, *args: str, cwd: Path) -> Result:
    """`segval dataset <command> <args>`, as a user runs it."""
    return run_segval("dataset", command, *args, cwd=cwd)


def test_release_twice_refuse_overwrite_and_diff(tmp_path):
    work = write_shapes_package(tmp_path / "work", images={"train": 3, "val": 2}, size=(32, 32))
    rel = tmp_path / "releases"
    res = run_versions("release", f"source={work}", f"releases={rel}", "notes=first labels",
                       f"hydra.run.dir={tmp_path / 'run1'}", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "released 1.0.0 (read-only)" in res.stdout and "first release" in res.stdout

    # bad input: a release onto an existing version is refused, exit non-zero, nothing touched
    before = {p: p.read_bytes() for p in (rel / "1.0.0").rglob("*") if p.is_file()}
    res = run_versions("release", f"source={work}", f"releases={rel}", "version=1.0.0",
                       f"hydra.run.dir={tmp_path / 'run2'}", cwd=tmp_path)
    assert res.returncode == 2
    assert "1.0.0 is already released; a release is never overwritten" in res.stderr
    assert "Traceback" not in res.stderr
    assert {p: p.read_bytes() for p in (rel / "1.0.0").rglob("*") if p.is_file()} == before

    # a relabelled annotation and a deprecated one -> 1.1.0
    train = work / "annotations" / "train.json"
    data = json.loads(train.read_text())
    data["annotations"][0]["category_id"] = 3 if data["annotations"][0]["category_id"] != 3 else 1
    gone = data["annotations"].pop(1)["id"]
    train.write_text(json.dumps(data))
    meta = yaml.safe_load((work / "dataset.yaml").read_text())
    meta["deprecated"] = {"annotations": [gone]}
    (work / "dataset.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    res = run_versions("release", f"source={work}", f"releases={rel}", "bump=minor", "notes=relabel",
                       f"hydra.run.dir={tmp_path / 'run3'}", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "released 1.1.0" in res.stdout and "1 changed, 1 deprecated" in res.stdout
    assert "## 1.1.0" in (rel / "CHANGELOG.md").read_text()

    res = run_versions("diff", f"a={rel / '1.0.0'}", f"b={rel / '1.1.0'}", f"hydra.run.dir={tmp_path / 'diff'}",
                       cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    diff = json.loads((tmp_path / "diff" / "diff.json").read_text())
    assert diff["splits"]["train"]["annotations"]["deprecated"] == [gone]
    assert (tmp_path / "diff" / "diff.md").read_text().startswith("# Diff shapes 1.0.0 -> shapes 1.1.0")
    assert "annotations changed (1)" in res.stdout


def test_bad_arguments(tmp_path):
    res = run_versions("release", f"hydra.run.dir={tmp_path / 'r'}", cwd=tmp_path)
    assert res.returncode == 2 and "missing source=..., releases=..." in res.stderr
    work = write_shapes_package(tmp_path / "work", images={"train": 1}, size=(32, 32))
    res = run_versions("release", f"source={work}", f"releases={tmp_path / 'rel'}", "bump=huge", "version=null",
                       f"hydra.run.dir={tmp_path / 'r'}", cwd=tmp_path)
    assert res.returncode == 2 and "bump must be one of" in res.stderr
    res = run_versions("diff", f"a={work}", f"b={tmp_path / 'nope'}", f"hydra.run.dir={tmp_path / 'd'}", cwd=tmp_path)
    assert res.returncode == 2 and "dataset.yaml not found" in res.stderr
