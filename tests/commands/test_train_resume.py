"""`segval train` killed with SIGKILL or preempted with a signal, then resumed with ckpt_path=auto: the
run ends with exactly the weights and metrics of an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.helpers import run_segval, train_args

pytestmark = pytest.mark.slow

STEPS = 12


def resume_args(root: Path, run_dir: Path, *extra: str) -> list[str]:
    # 8 train images in batches of 2: 4 steps an epoch, so the 12 steps cross two epoch boundaries;
    # validation every 4 steps, last.ckpt every 3 (a kill after step 6 lands mid-epoch, between validations)
    return train_args(root, run_dir, "trainer.val_check_interval=4", "callbacks.model_checkpoint.every_n_train_steps=3",
                      "seed=5", *extra, steps=STEPS)


def start(args: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1", "NO_ALBUMENTATIONS_UPDATE": "1",
           "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.Popen([sys.executable, "-m", "segval.cli", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def saved_step(path: Path) -> int:
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["global_step"])
    except Exception:  # not there yet
        return -1


def wait_for_checkpoint(proc: subprocess.Popen, last: Path, step: int, timeout: float = 240) -> int:
    """Poll until ``last`` holds at least ``step`` while ``proc`` still runs; returns the step it holds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            pytest.fail(f"the run ended before its step-{step} checkpoint: {proc.stdout.read()[-3000:]}")
        got = saved_step(last)
        if got >= step:
            return got
        time.sleep(0.02)
    proc.kill()
    pytest.fail(f"no step-{step} checkpoint within {timeout} s")


def final_state(run_dir: Path) -> tuple[dict[str, torch.Tensor], dict]:
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == STEPS
    metrics = json.loads((run_dir / "metrics.json").read_text())
    metrics.pop("checkpoint", None)  # a path inside the run directory
    return ckpt["state_dict"], metrics


def assert_same_run(a: Path, b: Path) -> None:
    weights_a, metrics_a = final_state(a)
    weights_b, metrics_b = final_state(b)
    assert weights_a.keys() == weights_b.keys()
    for key in weights_a:
        assert torch.equal(weights_a[key], weights_b[key]), key
    assert metrics_a == metrics_b
    best_a = sorted(p.name for p in (a / "checkpoints").glob("best-*.ckpt"))
    assert best_a == sorted(p.name for p in (b / "checkpoints").glob("best-*.ckpt"))


@pytest.fixture(scope="module")
def uninterrupted(shapes_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("resume") / "whole"
    res = run_segval(*resume_args(shapes_root, run_dir), cwd=run_dir.parent)
    assert res.returncode == 0, res.output
    return run_dir


def test_sigkill_after_a_step_checkpoint_then_auto_resume_equals_an_uninterrupted_run(
        uninterrupted: Path, shapes_root: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "killed"
    args = resume_args(shapes_root, run_dir, "ckpt_path=auto")
    proc = start(args, tmp_path)
    wait_for_checkpoint(proc, run_dir / "checkpoints" / "last.ckpt", 6)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    got = saved_step(run_dir / "checkpoints" / "last.ckpt")  # the run may have saved again before the kill
    assert 6 <= got < STEPS
    # the resumed run loads its data with worker processes: the order and augmentations do not depend on them
    res = run_segval(*args, "data.num_workers=2", cwd=tmp_path)
    assert res.returncode == 0, res.output
    assert f"resuming {run_dir / 'checkpoints' / 'last.ckpt'} at step {got}" in res.output
    assert_same_run(uninterrupted, run_dir)
    assert not [p for p in (run_dir / "checkpoints").iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR1])
def test_preemption_signal_saves_the_step_and_exits_then_auto_resume_continues(
        sig: signal.Signals, uninterrupted: Path, shapes_root: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "preempted"
    args = resume_args(shapes_root, run_dir, "ckpt_path=auto")
    proc = start(args, tmp_path)
    wait_for_checkpoint(proc, run_dir / "checkpoints" / "last.ckpt", 3)
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, out[-3000:]
    assert f"{sig.name} received: stopped at step" in out
    stopped = int(out.split(f"{sig.name} received: stopped at step ")[1].split(",")[0])
    assert saved_step(run_dir / "checkpoints" / "last.ckpt") == stopped < STEPS
    assert not (run_dir / "metrics.json").exists()  # a preempted run is not a finished one
    res = run_segval(*args, cwd=tmp_path)
    assert res.returncode == 0, res.output
    assert f"at step {stopped}" in res.output
    assert_same_run(uninterrupted, run_dir)


def test_auto_without_a_checkpoint_starts_fresh(shapes_root: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "fresh"
    res = run_segval(*train_args(shapes_root, run_dir, "ckpt_path=auto", steps=2), cwd=tmp_path)
    assert res.returncode == 0, res.output
    assert "resuming" not in res.output
    assert saved_step(run_dir / "checkpoints" / "last.ckpt") == 2
