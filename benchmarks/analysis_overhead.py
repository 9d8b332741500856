"""Validation epoch time with all analysis callbacks vs none (goal: <= 5% overhead), and peak memory of
the per-image scoring at two dataset sizes (it must not grow with the dataset).

Same model (tiny SegFormer, random init; or --model b0), same data (a generated shapes package,
240x320, batch 4), same process; rounds alternate between with / without callbacks.

    python benchmarks/analysis_overhead.py [--images 40] [--rounds 3] [--model tiny]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
warnings.filterwarnings("ignore")

import lightning.pytorch as pl  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

from segval.callbacks.analysis import BoundaryIoUCallback, ClassTableCallback, PerImageScoresCallback  # noqa: E402
from segval.datamodules import SegmentationDataModule  # noqa: E402
from segval.demo.shapes import write_shapes_package  # noqa: E402
from segval.models import SegmentationModule  # noqa: E402

CONF = Path(__file__).resolve().parents[1] / "src" / "segval" / "conf" / "model"


def build(root: Path, model: str) -> tuple[SegmentationModule, SegmentationDataModule]:
    adapter = yaml.safe_load((CONF / "segformer_tiny.yaml").read_text())["adapter"]
    if model != "tiny":
        adapter["config"].update(yaml.safe_load((CONF / f"segformer_{model}.yaml").read_text())["adapter"]["config"])
    adapter["pretrained"] = None
    dm = SegmentationDataModule(root=root, num_workers=0, batch_size=4, val_batch_size=4, validate=False,
                                train_transforms=None, crop_size=(240, 320))
    torch.manual_seed(0)
    return SegmentationModule(dm.num_classes, dm.class_names, adapter), dm


def validate_seconds(module: SegmentationModule, dm: SegmentationDataModule, callbacks: list) -> float:
    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=callbacks)
    start = time.perf_counter()
    trainer.validate(module, datamodule=dm, verbose=False)
    return time.perf_counter() - start


def memory_child(root: str, out: str, with_scores: bool) -> None:
    """Peak RSS of one validation with / without the per-image callback (run in a fresh process)."""
    module, dm = build(Path(root), "tiny")
    validate_seconds(module, dm, [PerImageScoresCallback(out)] if with_scores else [])
    print(json.dumps({"maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def peak_rss(root: Path, out: Path, with_scores: bool) -> float:
    res = subprocess.run([sys.executable, __file__, "--memory-child", str(root), str(out), str(int(with_scores))],
                         capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])["maxrss_mib"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--model", default="tiny", choices=["tiny", "b0", "b1", "b2"])
    ap.add_argument("--memory-child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child:
        root, out, flag = args.memory_child
        return memory_child(root, out, flag == "1")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        root = write_shapes_package(tmp / "pkg", images={"train": 4, "val": args.images}, size=(240, 320))
        module, dm = build(root, args.model)
        def callbacks(i: int, plot: bool) -> list:
            out = tmp / f"o{i}{plot}"
            return [BoundaryIoUCallback(out), PerImageScoresCallback(out), ClassTableCallback(out, plot=plot)]

        plain, analysed, plotted = [], [], []
        validate_seconds(module, dm, [])  # warm-up
        for i in range(args.rounds):
            plain.append(validate_seconds(module, dm, []))
            analysed.append(validate_seconds(module, dm, callbacks(i, plot=False)))
            plotted.append(validate_seconds(module, dm, callbacks(i, plot=True)))
        p, a, g = statistics.median(plain), statistics.median(analysed), statistics.median(plotted)
        print(f"SegFormer-{args.model}, {args.images} val images 240x320, batch 4, CPU {torch.get_num_threads()} threads")
        print(f"validation epoch, no callbacks              : {p:6.2f} s  (rounds: {', '.join(f'{x:.2f}' for x in plain)})")
        print(f"all analysis, as at each validation in fit : {a:6.2f} s  (rounds: {', '.join(f'{x:.2f}' for x in analysed)})")
        print(f"all analysis + confusion PNG (eval, end)   : {g:6.2f} s  (rounds: {', '.join(f'{x:.2f}' for x in plotted)})")
        print(f"analysis overhead during training = {100 * (a / p - 1):.1f}%  (goal <= 5%); "
              f"with the PNG = {100 * (g / p - 1):.1f}%")
        for n in (args.images, 4 * args.images):
            pkg = write_shapes_package(tmp / f"mem{n}", images={"train": 1, "val": n}, size=(240, 320))
            off, on = peak_rss(pkg, tmp / f"m{n}", False), peak_rss(pkg, tmp / f"m{n}", True)
            print(f"peak RSS, {n:4d} val images: without per-image scores {off:7.1f} MiB, with {on:7.1f} MiB "
                  f"(+{on - off:.1f} MiB)")


if __name__ == "__main__":
    main()
