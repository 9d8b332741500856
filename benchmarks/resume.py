"""Exact resume: a `segval train` run killed with SIGKILL after a checkpoint and resumed with ckpt_path=auto
against the same run uninterrupted (goal: identical final weights and val mIoU).

By default on a generated shapes package (tiny SegFormer, 64x64 crops); ``--demo`` uses the demo recipe
(``experiment=demo`` on the rendered demo package, ``--demo-root``, default ``data/demo``: ``segval data
render`` first).

    python benchmarks/resume.py [--steps 24] [--kill-after 10] [--demo]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ENV = {**os.environ, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1", "NO_ALBUMENTATIONS_UPDATE": "1",
       "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2"), "PYTHONWARNINGS": "ignore"}


def step_of(path: Path) -> int:
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["global_step"])
    except Exception:
        return -1


def train(args: list[str], run_dir: Path, kill_after: int | None = None) -> tuple[float, int | None]:
    cmd = [sys.executable, "-m", "segval.cli", "train", *args, f"hydra.run.dir={run_dir}", "ckpt_path=auto"]
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    killed_at = None
    if kill_after is not None:
        last = run_dir / "checkpoints" / "last.ckpt"
        while proc.poll() is None and step_of(last) < kill_after:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        killed_at = step_of(last)
    _, err = proc.communicate()
    if kill_after is None and proc.returncode != 0:
        sys.exit(f"training failed: {err[-2000:]}")
    return time.perf_counter() - t, killed_at


def final(run_dir: Path) -> tuple[dict[str, torch.Tensor], float]:
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    return ckpt["state_dict"], json.loads((run_dir / "metrics.json").read_text())["summary"]["mIoU"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=24)
    ap.add_argument("--kill-after", type=int, default=10)
    ap.add_argument("--demo", action="store_true", help="the demo recipe (experiment=demo)")
    ap.add_argument("--demo-root", default="data/demo", help="the rendered demo package (`segval data render`)")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="segval_resume_"))
    if a.demo:
        args = ["experiment=demo", f"data.root={Path(a.demo_root).resolve()}", "seed=3", "logger=csv",
                "data.num_workers=0"]
    else:
        from segval.demo.shapes import write_shapes_package

        root = write_shapes_package(work / "shapes", images={"train": 16, "val": 4}, frames_per_video=4)
        args = ["data=package", f"data.root={root}", "data.crop_size=[64,64]", "data.num_workers=0", "data.batch_size=2",
                "data.val_batch_size=2", "logger=csv", "seed=3"]
    args += [f"trainer.max_steps={a.steps}", f"trainer.val_check_interval={max(1, a.steps // 3)}"]
    t_whole, _ = train(args, work / "whole")
    _, killed = train(args, work / "killed", kill_after=a.kill_after)
    t_resume, _ = train(args, work / "killed")
    w_a, miou_a = final(work / "whole")
    w_b, miou_b = final(work / "killed")
    diff = max(float((w_a[k].float() - w_b[k].float()).abs().max()) for k in w_a)
    print(f"uninterrupted: {a.steps} steps in {t_whole:.1f} s, val mIoU {miou_a:.6f}")
    print(f"killed (SIGKILL) with last.ckpt at step {killed}, resumed in {t_resume:.1f} s: val mIoU {miou_b:.6f}")
    print(f"max |weight difference| {diff:.3g}")
    ok = diff == 0.0 and miou_a == miou_b
    print(f"resume: mIoU {miou_b:.6f} vs {miou_a:.6f}, weights {'identical' if diff == 0 else 'differ'} "
          f"(goal identical) {'PASS' if ok else 'FAIL'}")


if __name__ == "__main__":
    main()
