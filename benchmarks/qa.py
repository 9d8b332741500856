"""`segval qa` wall time on generated 512x512 masks (goal: <= 60 s for 10,000 images on 2 cores).

The generator writes a dataset package (PackageWriter, no label maps) of videos of moving shapes
(1-4 instances per frame: rectangles, discs, triangles; a few planted defects: specks, fragmented
masks, jumps between frames), then times ``python -m segval.commands.qa`` on it in a new process (Python
start-up, Hydra, opening the package and writing qa.json / qa.md included), with
``OMP_NUM_THREADS=1``.

Optionally compares with Datumaro's validator (``datumaro.plugins.validators``
SegmentationValidator) on the same COCO files, when ``--datumaro-python`` points to a Python with
Datumaro installed (a throwaway venv: Datumaro is not a project dependency). Note that Datumaro's
validator works on annotation metadata (label counts, mask area from pycocotools' RLE area, bbox
statistics) and decodes no pixels, while segval qa decodes every mask (components, perimeter,
coverage, overlaps, temporal IoU), so the two do different amounts of work.

The two are run alternately (``--rounds``, median of each), so that both see the same machine
load, and the script ends with ``qa: <Datumaro time / segval time>x Datumaro (goal >= 3x) PASS|FAIL``.

    python -m venv /tmp/dm_venv && /tmp/dm_venv/bin/pip install datumaro

    python benchmarks/qa.py [--images 10000] [--size 512] [--keep DIR] [--rounds 3] [--workers auto|N]
                            [--datumaro-python /tmp/dm_venv/bin/python]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from segval.dataset import Category, InstanceMask, PackageWriter, Taxonomy

TAXONOMY = Taxonomy(
    [Category(0, "background", (0, 0, 0), False, "stuff"), Category(1, "box", (200, 30, 30), True, "rigid"),
     Category(2, "disc", (30, 200, 30), True, "rigid"), Category(3, "tri", (30, 30, 200), True, "rigid")],
    background_id=0,
)
FRAMES = 10


def _draw(kind: int, cy: float, cx: float, r: float, h: int, w: int) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    cy, cx, r = int(cy), int(cx), int(r)
    if kind == 1:
        cv2.rectangle(m, (cx - r, cy - r), (cx + r, cy + r), 1, -1)
    elif kind == 2:
        cv2.circle(m, (cx, cy), r, 1, -1)
    else:
        pts = np.array([[cx, cy - r], [cx - r, cy + r], [cx + r, cy + r]], np.int32)
        cv2.fillPoly(m, [pts], 1)
    return m.astype(bool)


def generate(root: Path, n_images: int, size: int, seed: int = 0) -> dict[str, int]:
    rng = np.random.default_rng(seed)
    image = np.full((size, size, 3), 90, np.uint8)
    planted = {"speck": 0, "fragmented": 0, "jump": 0}
    splits = {"train": int(n_images * 0.8), "val": n_images - int(n_images * 0.8)}
    with PackageWriter(root, name="qa-bench", version="1.0.0", taxonomy=TAXONOMY, splits=list(splits),
                       label_maps=False) as w:
        video = 0
        for split, n in splits.items():
            for start in range(0, n, FRAMES):
                objs = [(int(rng.integers(1, 4)), *rng.uniform(0.25, 0.75, 2) * size, rng.uniform(0.12, 0.28) * size,
                         *rng.uniform(-3, 3, 2)) for _ in range(int(rng.integers(1, 5)))]
                for f in range(min(FRAMES, n - start)):
                    inst = []
                    for kind, cy, cx, r, vy, vx in objs:
                        jump = rng.random() < 0.01
                        planted["jump"] += jump
                        m = _draw(kind, cy + vy * f + (size * 0.3 if jump else 0), cx + vx * f, r, size, size)
                        if rng.random() < 0.01:
                            planted["fragmented"] += 1
                            for k in range(12):
                                m[5, 5 + 4 * k] = True
                        if m.any():
                            inst.append(InstanceMask(kind, m))
                    if rng.random() < 0.01:
                        planted["speck"] += 1
                        sp = np.zeros((size, size), bool)
                        sp[2:6, size - 8:size - 2] = True
                        inst.append(InstanceMask(1, sp))
                    w.add_image(split, image, f"v{video:05d}/{f:03d}.png", instances=inst,
                                extra={"video_id": video, "frame_index": f})
                video += 1
    return planted


def run_segval_qa(root: Path, run_dir: Path, extra: list[str] = ()) -> tuple[float, int, dict]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "segval.commands.qa", "data=package", f"data.root={root}",
                           f"hydra.run.dir={run_dir}", "progress=false", *extra], env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if proc.returncode not in (0, 1):
        sys.exit(f"segval qa failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return dt, proc.returncode, json.loads((run_dir / "qa.json").read_text())


DATUMARO_SCRIPT = r"""
import sys, time, json, shutil, tempfile, pathlib
t0 = time.perf_counter()
from datumaro.components.dataset import Dataset
from datumaro.components.environment import Environment
root = pathlib.Path(sys.argv[1])
tmp = pathlib.Path(tempfile.mkdtemp())
# datumaro's coco_instances layout: annotations/instances_<split>.json + images/<split>/
(tmp / "annotations").mkdir()
for s in ("train", "val"):
    shutil.copy(root / "annotations" / f"{s}.json", tmp / "annotations" / f"instances_{s}.json")
(tmp / "images").symlink_to(root / "images")
ds = Dataset.import_from(str(tmp), "coco_instances")
validator = Environment().validators["segmentation"]()
report = validator.validate(ds)
print(json.dumps({"seconds": time.perf_counter() - t0, "items": len(ds),
                  "reports": len(report.get("validation_reports", []))}))
"""


def run_datumaro(python: str, root: Path) -> tuple[float, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    t0 = time.perf_counter()
    proc = subprocess.run([python, "-c", DATUMARO_SCRIPT, str(root)], env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if proc.returncode:
        sys.exit(f"datumaro validator failed (rc {proc.returncode}):\n{proc.stderr[-2000:]}")
    return dt, proc.stdout.strip().splitlines()[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=10_000)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--keep", type=Path, default=None, help="write / reuse the package here")
    ap.add_argument("--datumaro-python", default=None, help="a Python with datumaro installed")
    ap.add_argument("--rounds", type=int, default=3, help="segval / Datumaro runs, interleaved (median taken)")
    ap.add_argument("--workers", default=None, help="qa.workers for segval (default: the config's, auto)")
    args = ap.parse_args()
    extra = [] if args.workers is None else [f"qa.workers={args.workers}"]
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp) / "pkg"
        if not (root / "dataset.yaml").exists():
            t0 = time.perf_counter()
            planted = generate(root, args.images, args.size)
            print(f"generated {args.images} images {args.size}x{args.size} in {time.perf_counter() - t0:.1f} s "
                  f"(planted: {planted})", flush=True)
        seg_t, dm_t, rep, rc, dm_out = [], [], None, 0, ""
        for r in range(max(1, args.rounds)):  # interleaved: both sides see the same machine load
            dt, rc, rep = run_segval_qa(root, Path(tmp) / f"run{r}", extra)
            seg_t.append(dt)
            line = f"round {r + 1}: segval qa {dt:.2f} s"
            if args.datumaro_python:
                ddt, dm_out = run_datumaro(args.datumaro_python, root)
                dm_t.append(ddt)
                line += f", datumaro {ddt:.2f} s"
            print(line, flush=True)
        dt = float(np.median(seg_t))
        c = rep["counts"]
        n_ann = sum(s["annotations"] for s in rep["splits"].values())
        print(f"segval qa: {c['images']} images, {n_ann} instance masks, {dt:.2f} s wall (median; "
              f"{rep['seconds']:.2f} s in the checks, last run), exit {rc}; flagged {c['flagged_images']}; "
              f"findings {json.dumps({k: v for k, v in c['checks'].items() if v})}")
        print(f"goal <= 60 s: {'MET' if dt <= 60 else 'NOT MET'} (cpus: {os.cpu_count()})")
        if not dm_t:
            print("qa: no Datumaro figure (pass --datumaro-python) (goal >= 3x) FAIL")
            return
        ddt = float(np.median(dm_t))
        ratio = ddt / dt
        print(f"datumaro SegmentationValidator: {ddt:.2f} s wall (median; {dm_out})")
        print(f"qa: {ratio:.2f}x Datumaro (goal >= 3x) {'PASS' if ratio >= 3 else 'FAIL'}")


if __name__ == "__main__":
    main()
