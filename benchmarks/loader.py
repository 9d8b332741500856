"""Images/s of the COCO-RLE DataModule vs the label-map one, same data and transforms (goal >= 1.0).

Both read the same package (the demo package when present, else a generated shapes package at the
demo's size) through `SegmentationDataModule` with the train transforms of `conf/data/demo.yaml`;
only `format` differs. Measured with 0 and 2 workers; each round measures both formats (which one
goes first alternates) and the figure is the median of the rounds' ratios. Each measurement opens
the package afresh: a cold run-length cache, i.e. the first epoch's cost (and every epoch's with
workers, which do not keep their cache between epochs). torch runs one intra-op thread here, as in
DataLoader workers (``--torch-threads``). Also prints the cost of building the target alone. Ends with one line
``loader: <ratio, 0 workers> / <ratio, 2 workers> RLE/label-map (goal >= 1.0) PASS|FAIL``.

    python benchmarks/loader.py [--root data/demo] [--images 96] [--rounds 6]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
warnings.filterwarnings("ignore")

import torch  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

import segval  # noqa: E402
from segval.datamodules import SegmentationDataModule  # noqa: E402


GOAL = 1.0  # COCO-RLE images/s over label-map images/s, with 0 and with 2 workers


def make_datamodule(root: Path, fmt: str, workers: int, split: str) -> SegmentationDataModule:
    conf = OmegaConf.load(Path(segval.__file__).parent / "conf" / "data" / "demo.yaml")
    # only the transform steps and crop size are used: root (${paths.data_dir}) is given here
    merged = OmegaConf.merge({"data": conf}, {"data": {"crop_size": [240, 320], "root": str(root)}})
    steps = OmegaConf.to_container(merged.data, resolve=True)
    return SegmentationDataModule(root=root, format=fmt, num_workers=workers, batch_size=4, validate=False,
                                  train_split=split, val_split=split, crop_size=steps["crop_size"],
                                  train_transforms=steps["train_transforms"])


def images_per_second(root: Path, fmt: str, workers: int, split: str, limit: int) -> float:
    dm = make_datamodule(root, fmt, workers, split)
    dm.setup("fit")
    loader = dm.train_dataloader()
    n, start = 0, None
    for i, batch in enumerate(loader):
        if i == 1:  # workers started, first batch out
            start, n = time.perf_counter(), 0
        n += batch["image"].shape[0]
        if n >= limit:
            break
    return n / (time.perf_counter() - start)


def target_ms(root: Path, fmt: str, split: str, limit: int) -> float:
    """Milliseconds per image to build the semantic targets alone, from a freshly opened package."""
    from segval.dataset.package import DatasetPackage

    data = DatasetPackage.open(root).split(split)
    recs = data.images[:limit]
    start = time.perf_counter()
    for rec in recs:
        data.semantic_target(rec, source=fmt)
    return (time.perf_counter() - start) * 1e3 / len(recs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=Path("data/demo"))
    ap.add_argument("--images", type=int, default=96)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--torch-threads", type=int, default=1,
                    help="torch intra-op threads of this process (DataLoader workers always use 1); more only add "
                         "thread contention to the 0-worker figure on a shared machine")
    args = ap.parse_args()
    torch.set_num_threads(args.torch_threads)
    root, split = args.root, "train"
    tmp = None
    if not (root / "dataset.yaml").exists():
        from segval.demo.shapes import write_shapes_package

        tmp = tempfile.TemporaryDirectory()
        root = write_shapes_package(Path(tmp.name) / "shapes", images={"train": args.images + 8}, size=(240, 320))
        print(f"(no package at {args.root}: using a generated shapes package, 240x320)")
    print(f"package: {root}, split {split}, batch 4, demo train transforms, {args.images} images per measurement, "
          f"{args.torch_threads} torch thread(s)")
    ratios = []
    for workers in (0, 2):
        speed: dict[str, list[float]] = {"coco": [], "label_map": []}
        for r in range(args.rounds):  # each round measures both, the one measured first alternating
            for fmt in ("coco", "label_map") if r % 2 == 0 else ("label_map", "coco"):
                speed[fmt].append(images_per_second(root, fmt, workers, split, args.images))
        c, m = statistics.median(speed["coco"]), statistics.median(speed["label_map"])
        # median of the per-round ratios: a round's two measurements see the same machine load
        ratio = statistics.median(a / b for a, b in zip(speed["coco"], speed["label_map"]))
        ratios.append(ratio)
        print(f"workers={workers}: COCO-RLE {c:7.1f} img/s   label maps {m:7.1f} img/s   "
              f"ratio coco/label_map = {ratio:.3f}  (median of {args.rounds} rounds; goal >= {GOAL})")
    build: dict[str, list[float]] = {"coco": [], "label_map": []}
    for r in range(args.rounds):
        for fmt in ("coco", "label_map") if r % 2 == 0 else ("label_map", "coco"):
            build[fmt].append(target_ms(root, fmt, split, args.images))
    c, m = statistics.median(build["coco"]), statistics.median(build["label_map"])
    print(f"target alone (the only step that differs): RLE decode + paint {c:.3f} ms/img   "
          f"label-map PNG read {m:.3f} ms/img   speed ratio RLE/label-map = {m / c:.2f}")
    if tmp is not None:
        tmp.cleanup()
    verdict = "PASS" if min(ratios) >= GOAL else "FAIL"
    print(f"loader: {ratios[0]:.2f} / {ratios[1]:.2f} RLE/label-map (goal >= {GOAL}) {verdict}")


if __name__ == "__main__":
    main()
