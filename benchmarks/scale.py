"""Wall time and peak memory of the dataset-wide commands at growing dataset sizes (goal: time grows at most
linearly with the images, peak RSS under 2 GB at the largest size).

The generator writes packages of 320x240 frames, videos of 20 frames, about 10 moving objects per frame
(rectangles and discs, 6 classes), masks as COCO RLE (segval's encoder), images as PNG at compression level 1
(a set of 64 frames encoded once and reused, so generating 100k images takes minutes), split 80/10/10 by
video. Beside each package: a ``per_image.csv`` of the train split (the model evidence a run would write) and
50 run directories (2 versions x 25 seeds; ``metrics.json`` + ``.hydra/``) for ``compare``.

Each command runs in its own process (``python -m segval.cli ...``), timed from outside; its peak RSS is the
child's ``ru_maxrss``, read by a small parent process started per command:

* ``data check``, ``qa``, ``dataset stats``, ``dataset split``;
* ``relabel queue`` with model-free evidence (temporal, geometry) plus the generated ``per_image.csv``;
* ``compare`` of the 50 runs.

Time growth per command = (CPU seconds per image at the largest size) / (CPU seconds per image at the smallest):
1.0 is linear, the goal allows 1.25 (start-up costs shrink per image as the size grows, so sub-linear is common).
CPU seconds (user + system of the command and its worker processes) measure the work; wall seconds, also printed
with their own growth, move with whatever else the machine runs.

    python benchmarks/scale.py --sizes 1000,10000 [--keep DIR] [--commands qa,stats]
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

import cv2
import numpy as np
import yaml

from segval.dataset.rle import encode_coco_rle
from segval.metrics.per_image_csv import per_image_columns

H, W = 240, 320
FRAMES = 20
OBJECTS = 10
CLASSES = ["background", "box", "disc", "cable", "mug", "tool", "tray"]
GOAL_GROWTH, GOAL_RSS_MB = 1.25, 2048

MEASURE = r"""
import json, resource, subprocess, sys, time
t = time.perf_counter()
proc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
wall = time.perf_counter() - t
use = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"wall_s": wall, "cpu_s": use.ru_utime + use.ru_stime, "rss_mb": use.ru_maxrss / 1024,
                  "code": proc.returncode, "err": proc.stderr[-2000:]}))
"""


# ------------------------------------------------------------------------------------------------ generator
def _frames(n: int, rng: np.random.Generator) -> list[bytes]:
    out = []
    for _ in range(n):
        img = rng.integers(60, 200, (H, W, 3), dtype=np.uint8)
        img = cv2.GaussianBlur(img, (9, 9), 3)
        out.append(cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 1])[1].tobytes())
    return out


def _objects(rng: np.random.Generator) -> list[dict]:
    return [{"cat": int(rng.integers(1, len(CLASSES))), "kind": int(rng.integers(2)), "y": rng.uniform(20, H - 20),
             "x": rng.uniform(20, W - 20), "r": rng.uniform(6, 24), "vy": rng.uniform(-2, 2), "vx": rng.uniform(-3, 3)}
            for _ in range(OBJECTS)]


def _mask(o: dict, t: int) -> np.ndarray:
    m = np.zeros((H, W), np.uint8)
    cy, cx, r = int(o["y"] + o["vy"] * t), int(o["x"] + o["vx"] * t), int(o["r"])
    if o["kind"] == 0:
        cv2.rectangle(m, (cx - r, cy - r // 2), (cx + r, cy + r // 2), 1, -1)
    else:
        cv2.circle(m, (cx, cy), r, 1, -1)
    return m.astype(bool)


def generate(root: Path, n_images: int, seed: int = 0) -> dict[str, int]:
    """Write a package of ``n_images`` frames (videos of FRAMES) under ``root``; returns images per split."""
    rng = np.random.default_rng(seed)
    frames = _frames(64, rng)
    n_videos = max(3, -(-n_images // FRAMES))
    split_of = ["train" if v % 10 < 8 else "val" if v % 10 == 8 else "test" for v in range(n_videos)]
    coco = {s: {"images": [], "annotations": [], "categories": [
        {"id": i, "name": n, "supercategory": "", "isthing": int(i > 0)} for i, n in enumerate(CLASSES)]}
        for s in ("train", "val", "test")}
    image_id = ann_id = 0
    for v in range(n_videos):
        s = split_of[v]
        (root / "images" / s / f"v{v:05d}").mkdir(parents=True, exist_ok=True)
        objs = _objects(rng)
        for t in range(FRAMES):
            if image_id >= n_images:
                break
            image_id += 1
            fn = f"v{v:05d}/{t:03d}.png"
            (root / "images" / s / fn).write_bytes(frames[(v * 7 + t) % len(frames)])
            coco[s]["images"].append({"id": image_id, "file_name": fn, "width": W, "height": H, "video_id": v,
                                      "frame_index": t})
            for o in objs:
                m = _mask(o, t)
                if not m.any():
                    continue
                ann_id += 1
                rle, area, bbox = encode_coco_rle(m)
                coco[s]["annotations"].append({"id": ann_id, "image_id": image_id, "category_id": o["cat"],
                                               "segmentation": rle, "area": area, "bbox": bbox, "iscrowd": 0})
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    for s, c in coco.items():
        (root / "annotations" / f"{s}.json").write_text(json.dumps(c, separators=(",", ":")))
    tax = [{"id": i, "name": n, "color": [int(x) for x in rng.integers(0, 255, 3)], "isthing": i > 0,
            "group": "stuff" if i == 0 else ("thin" if n == "cable" else "rigid")} for i, n in enumerate(CLASSES)]
    meta = {"name": "scale", "version": "1.0.0", "license": "CC-BY-4.0", "splits": ["train", "val", "test"],
            "background_id": 0, "taxonomy": tax}
    (root / "dataset.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    return {s: len(c["images"]) for s, c in coco.items()}


def write_per_image(path: Path, root: Path, seed: int = 1) -> None:
    """A per_image.csv of the train split, as the analysis callbacks write it (random scores)."""
    rng = np.random.default_rng(seed)
    images = json.loads((root / "annotations" / "train.json").read_text())["images"]
    cols = per_image_columns(CLASSES)
    with open(path, "w") as f:
        f.write(",".join(cols) + "\n")
        for im in images:
            dis = rng.integers(0, 50, len(CLASSES))
            f.write(f"{im['id']},{H * W},{rng.random():.4f},{rng.random():.4f},{rng.random():.4f},box,disc,"
                    f"{int(dis.max())}," + ",".join(map(str, dis)) + "\n")


def write_runs(folder: Path, n: int = 50) -> list[Path]:
    """``n`` run directories of two versions (metrics.json + confusion matrix + .hydra/)."""
    from segval.metrics.functional.semantic import semantic_metrics
    from segval.metrics.results import metrics_payload, write_results

    rng = np.random.default_rng(2)
    runs = []
    for k in range(n):
        version, seed = ("1.0.0", "1.1.0")[k % 2], k // 2
        run = folder / f"run{k:03d}"
        (run / ".hydra").mkdir(parents=True, exist_ok=True)
        cfg = {"task_name": "train", "seed": seed, "data": {"root": f"/data/scale/{version}", "val_split": "val"},
               "dataset": {"name": None, "version": None}}
        (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump(cfg))
        (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"seed={seed}", f"data.version={version}"]))
        conf = np.diag(rng.integers(500, 1000, len(CLASSES))) + rng.integers(0, 60, (len(CLASSES), len(CLASSES)))
        conf = conf.astype(np.int64)
        import torch

        ds = {"name": "scale", "version": version, "source": f"/data/scale/{version}",
              "taxonomy_ids": list(range(len(CLASSES))), "class_names": CLASSES}
        payload = metrics_payload(semantic_metrics(torch.from_numpy(conf)), CLASSES, class_ids=list(range(len(CLASSES))),
                                  dataset=ds, split="val", step=100)
        write_results(payload, torch.from_numpy(conf), run)
        runs.append(run)
    return runs


# ------------------------------------------------------------------------------------------------ measuring
def commands(root: Path, work: Path, runs: list[Path]) -> dict[str, list[str]]:
    logs = f"paths.log_dir={work / 'logs'}"
    return {
        "data check": ["data", "check", "data=package", f"data.root={root}", logs],
        "qa": ["qa", "data=package", f"data.root={root}", "progress=false", f"hydra.run.dir={work / 'qa'}"],
        "dataset stats": ["dataset", "stats", f"root={root}", "mosaic.n=8", f"hydra.run.dir={work / 'stats'}"],
        "dataset split": ["dataset", "split", f"source={root}", f"output={work / 'resplit'}", "allow=true", logs],
        "relabel queue": ["relabel", "queue", "data=package", f"data.root={root}", "relabel.evaluate=never",
                          f"per_image={work / 'per_image.csv'}", "relabel.budget=200", "relabel.progress=false",
                          f"hydra.run.dir={work / 'queue'}"],
        "compare": ["compare", f"runs=[{','.join(map(str, runs))}]", f"hydra.run.dir={work / 'compare'}"],
    }


def measure(args: list[str]) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NO_ALBUMENTATIONS_UPDATE": "1", "WANDB_MODE": "offline",
           "PYTHONWARNINGS": "ignore"}
    out = subprocess.run([sys.executable, "-c", MEASURE, sys.executable, "-m", "segval.cli", *args],
                         capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1000,10000", help="image counts, comma separated (smallest first)")
    ap.add_argument("--commands", default="", help="only these (comma separated names, e.g. qa,compare)")
    ap.add_argument("--keep", type=Path, default=None, help="keep the generated data here")
    a = ap.parse_args()
    sizes = sorted(int(s) for s in a.sizes.split(","))
    base = a.keep or Path(tempfile.mkdtemp(prefix="segval_scale_"))
    results: dict[int, dict[str, dict]] = {}
    for n in sizes:
        work = base / f"n{n}"
        root = work / "pkg"
        if not (root / "dataset.yaml").is_file():
            shutil.rmtree(work, ignore_errors=True)
            t = time.perf_counter()
            per_split = generate(root, n)
            write_per_image(work / "per_image.csv", root)
            print(f"generated {n} images {per_split} in {time.perf_counter() - t:.1f} s: {root}", flush=True)
        runs = sorted((work / "runs").glob("run*")) or write_runs(work / "runs")
        results[n] = {}
        for name, args in commands(root, work, runs).items():
            if a.commands and name.replace(" ", "_") not in a.commands.replace(" ", "_").split(","):
                continue
            shutil.rmtree(work / "resplit", ignore_errors=True)
            r = measure(args)
            results[n][name] = r
            status = "" if r["code"] in (0, 1) else f"  exit {r['code']}: {r['err'].strip().splitlines()[-1:]}"
            print(f"  {n:>7} images  {name:<14} {r['wall_s']:8.1f} s wall {r['cpu_s']:8.1f} s CPU  "
                  f"{r['rss_mb']:8.0f} MB peak RSS{status}", flush=True)
    report(results, sizes)
    if a.keep is None:
        shutil.rmtree(base, ignore_errors=True)


def report(results: dict[int, dict[str, dict]], sizes: list[int]) -> None:
    small, big = sizes[0], sizes[-1]
    names = list(results[big])
    print("\n| command | " + " | ".join(f"{n} images: wall s / CPU s / MB" for n in sizes)
          + " | growth per image, CPU (wall) |")
    print("|---|" + "---:|" * len(sizes) + "---:|")
    growth = {}
    for name in names:
        cells = [f"{r['wall_s']:.1f} / {r['cpu_s']:.1f} / {r['rss_mb']:.0f}" for r in (results[n][name] for n in sizes)]
        g = {k: (results[big][name][k] / big) / (results[small][name][k] / small) if big != small else 1.0
             for k in ("cpu_s", "wall_s")}
        growth[name] = g["cpu_s"]
        print(f"| {name} | " + " | ".join(cells) + f" | {g['cpu_s']:.2f} ({g['wall_s']:.2f}) |")
    worst_g = max(growth, key=growth.get)
    worst_rss = max(names, key=lambda k: results[big][k]["rss_mb"])
    failed = [k for k in names if results[big][k]["code"] not in (0, 1)]
    ok = growth[worst_g] <= GOAL_GROWTH and results[big][worst_rss]["rss_mb"] < GOAL_RSS_MB and not failed
    print(f"scale: CPU time growth {growth[worst_g]:.2f} ({worst_g}), peak RSS {results[big][worst_rss]['rss_mb']:.0f} "
          f"MB ({worst_rss}) at {big} images (goal <= {GOAL_GROWTH}, < {GOAL_RSS_MB} MB"
          + (f"; failed: {failed}" if failed else "") + f") {'PASS' if ok else 'FAIL'}")


if __name__ == "__main__":
    main()
