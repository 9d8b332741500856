"""A full disk or a folder without write permission: every command that writes says which path failed and
what to do, in one line with exit 2, and leaves no partial output (os.replace / mkdtemp fail in a real
subprocess of `segval`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from segval.demo.shapes import write_shapes_package

pytestmark = pytest.mark.slow

HARNESS = r"""
import errno, os, runpy, sys, tempfile
kind = sys.argv[1]
def fail(*args, **kwargs):
    if kind == "ENOSPC":
        raise OSError(errno.ENOSPC, "No space left on device")
    raise PermissionError(errno.EACCES, "Permission denied")
os.replace = fail  # every atomic writer renames into place: the disk fills up at the last moment
if kind == "EACCES":
    tempfile.mkdtemp = tempfile.mkstemp = fail  # a read-only output folder (tests may run as root)
sys.argv = ["segval", *sys.argv[2:]]
runpy.run_module("segval.cli", run_name="__main__")
"""


@pytest.fixture(scope="module")
def pkg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_shapes_package(tmp_path_factory.mktemp("data") / "pkg", images={"train": 3, "val": 2})


COMMANDS = {
    "dataset export": lambda pkg, out: (["dataset", "export", f"root={pkg}", "format=coco", f"output={out}"], out),
    "dataset clean": lambda pkg, out: (["dataset", "clean", f"root={pkg}", f"output={out}"], out),
    "dataset release": lambda pkg, out: (["dataset", "release", f"source={pkg}", f"releases={out}"], out / "1.0.0"),
    "qa": lambda pkg, out: (["qa", "data=package", f"data.root={pkg}", f"hydra.run.dir={out}"], out / "qa.json"),
}


@pytest.mark.parametrize("kind, advice", [("ENOSPC", "no space left on the device"), ("EACCES", "permission denied")])
@pytest.mark.parametrize("command", list(COMMANDS))
def test_write_failure_is_one_clear_line_and_no_partial_output(pkg: Path, tmp_path: Path, command: str, kind: str,
                                                              advice: str) -> None:
    args, target = COMMANDS[command](pkg, tmp_path / "out")
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "WANDB_MODE": "offline", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, "-c", HARNESS, kind, *args, f"paths.log_dir={tmp_path / 'logs'}"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert f"segval {command}: error:" in errors[0] and advice in errors[0] and str(tmp_path / "out") in errors[0]
    assert not target.exists()
    leftovers = [p for p in (tmp_path / "out").rglob("*") if ".segval-" in p.name] if (tmp_path / "out").exists() else []
    assert leftovers == []
