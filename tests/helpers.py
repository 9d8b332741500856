"""Running `segval` as a user would, in a new process, offline."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path



@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_segval(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300) -> Result:
    """Run ``segval <args>`` as a user would (a new process), offline."""
    full_env = {
        **os.environ,
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "HF_HUB_OFFLINE": "1",
        "NO_ALBUMENTATIONS_UPDATE": "1",
        "OMP_NUM_THREADS": "1",
        "PYTHONWARNINGS": "ignore",
        **(env or {}),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "segval.cli", *args],
        cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def train_args(root: Path, run_dir: Path, *extra: str, steps: int = 4) -> list[str]:
    return [
        "train",
        "data=package",
        f"data.root={root}",
        "data.crop_size=[64,64]",
        "data.num_workers=0",
        "data.batch_size=2",
        "data.val_batch_size=2",
        f"trainer.max_steps={steps}",
        "trainer.val_check_interval=2",
        "trainer.log_every_n_steps=1",
        "logger=csv",
        f"hydra.run.dir={run_dir}",
        *extra,
    ]
