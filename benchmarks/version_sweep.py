"""Dataset versions as a sweep axis, on the CPU, with the tiny SegFormer:

1. two releases of a shapes package (``write_shapes_package`` + ``segval dataset release``; 1.1.0 relabels
   three masks), then ``segval train -m data=package data.releases=... data.version=1.0.0,1.1.0 seed=0,1``:
   wall time, and what W&B offline holds (runs, groups, version tags, dataset artifacts), read from the
   offline run files themselves;
2. DDP with 2 CPU processes (gloo) vs 1 process: ``segval train trainer=ddp_cpu`` writes the validation
   metrics of its best checkpoint computed over two ranks; ``segval eval`` of that checkpoint in one process
   must give the same confusion matrix and figures.

    python benchmarks/version_sweep.py [--steps 20] [--images 16] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from segval.dataset.content_hash import package_content_hash
from segval.release.versions import release
from segval.demo.shapes import write_shapes_package
from segval.tracking.offline import offline_runs

ENV = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "HF_HUB_OFFLINE": "1",
       "NO_ALBUMENTATIONS_UPDATE": "1", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
       "PYTHONWARNINGS": "ignore"}


def segval(*args: str, cwd: Path) -> float:
    """Run ``segval <args>``; returns the wall time (s); stops with the output on failure."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "segval.cli", *args], cwd=cwd, env=ENV, capture_output=True,
                          text=True)
    if proc.returncode:
        sys.exit(f"segval {' '.join(args[:3])} failed ({proc.returncode}):\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    return time.perf_counter() - start


def make_releases(folder: Path, images: int) -> Path:
    work = write_shapes_package(folder / "work", images={"train": images, "val": max(2, images // 4)},
                                size=(64, 64), frames_per_video=2)
    release(work, folder / "releases", notes="first release")
    ann_path = work / "annotations" / "train.json"
    ann = json.loads(ann_path.read_text())
    for a in ann["annotations"][:3]:
        a["category_id"] = 2 if a["category_id"] == 1 else 1
    ann_path.write_text(json.dumps(ann))
    shutil.rmtree(work / "label_maps")  # they would still show the old classes
    release(work, folder / "releases", bump="minor", notes="three masks relabelled")
    return folder / "releases"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20, help="training steps per job")
    ap.add_argument("--images", type=int, default=16, help="train images per version")
    ap.add_argument("--keep", type=Path, default=None, help="work here and keep the outputs")
    args = ap.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="segval_version_sweep_"))
    base.mkdir(parents=True, exist_ok=True)
    releases = make_releases(base, args.images)
    tiny = ["data.crop_size=[64,64]", "data.num_workers=0", "data.batch_size=2", "data.val_batch_size=2",
            f"trainer.max_steps={args.steps}", f"trainer.val_check_interval={max(1, args.steps // 2)}"]

    # 1. the sweep: 2 versions x 2 seeds
    sweep = base / "sweep"
    wall = segval("train", "-m", "data=package", f"data.releases={releases}", "data.version=1.0.0,1.1.0", "seed=0,1",
                  *tiny, f"hydra.sweep.dir={sweep}", cwd=base)
    runs = offline_runs(sweep)
    groups = sorted({str(r["group"]) for r in runs})
    print(f"sweep 2 versions x 2 seeds, {args.steps} steps each, tiny SegFormer, CPU "
          f"(OMP_NUM_THREADS={ENV['OMP_NUM_THREADS']}): wall {wall:.1f} s for 4 jobs")
    print(f"W&B offline runs: {len(runs)} (distinct ids {len({r['id'] for r in runs})}) in group(s) {groups}")
    for r in runs:
        art = [a for a in r["artifacts"] if a["type"] == "dataset"]
        refs = (f"{os.path.commonpath([x.removeprefix('file://') for x in art[0]['references']])} "
                f"({len(art[0]['references'])} files)") if art and art[0]["references"] else "-"
        print(f"  {r['name']:<28} group={r['group']} tags={r['tags']} dataset artifact="
              f"{art[0]['name'] + ':' + ','.join(sorted(art[0]['aliases'])) if art else '-'} ref=file://{refs}")
    hashes = {v: package_content_hash(releases / v)[:12] for v in ("1.0.0", "1.1.0")}
    for job in sorted(p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit()):
        m = json.loads((job / "metrics.json").read_text())
        print(f"  job {job.name}: {m['dataset']['name']} {m['dataset']['version']} "
              f"hash {m['dataset']['content_hash'][:12]} (package {hashes[m['dataset']['version']]}) "
              f"mIoU {100 * m['summary']['mIoU']:.2f}")
    ok = len(runs) == 4 and len(groups) == 1 and len({r["id"] for r in runs}) == 4
    print(f"exactly 4 runs in one group: {'yes' if ok else 'NO'}")

    # 2. DDP 2 CPU processes vs 1 process
    ddp, one = base / "ddp", base / "one"
    t_ddp = segval("train", "data=package", f"data.releases={releases}", "data.version=1.0.0", *tiny,
                   "trainer=ddp_cpu", "trainer.devices=2", f"hydra.run.dir={ddp}", cwd=base)
    best = next((ddp / "checkpoints").glob("best-step*.ckpt"))
    t_one = segval("eval", f"ckpt_path={best}", "data=package", f"data.releases={releases}", "data.version=1.0.0",
                   "data.num_workers=0", f"hydra.run.dir={one}", cwd=base)
    c_ddp, c_one = np.load(ddp / "confusion_matrix.npy"), np.load(one / "confusion_matrix.npy")
    m_ddp, m_one = (json.loads((d / "metrics.json").read_text()) for d in (ddp, one))
    same = np.array_equal(c_ddp, c_one) and m_ddp["summary"] == m_one["summary"] and \
        m_ddp["per_class"] == m_one["per_class"]
    print(f"\nDDP 2 CPU processes (gloo; train {t_ddp:.1f} s) vs 1 process (eval {t_one:.1f} s) on the same checkpoint:")
    print(f"  pixels counted {int(c_ddp.sum())} vs {int(c_one.sum())}; mIoU {m_ddp['summary']['mIoU']!r} vs "
          f"{m_one['summary']['mIoU']!r}")
    print(f"  confusion matrix and every figure identical: {'yes' if same else 'NO'}")
    print(f"  W&B runs of the DDP job: {len(offline_runs(ddp))} (rank zero only)")
    print(f"\noutputs: {base}")
    if not args.keep:
        shutil.rmtree(base, ignore_errors=True)
    if not (ok and same):
        sys.exit(1)


if __name__ == "__main__":
    main()
