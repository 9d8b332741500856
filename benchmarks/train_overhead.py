"""segval's Lightning train step vs a bare PyTorch loop doing the same work (goal: ratio >= 0.90).

Default: tiny SegFormer, batch 2, 256x256, CPU. Both run the same forward / backward / AdamW step /
poly-LR step on the same pre-built batches, from the same initial weights; rounds alternate between
the two (and which runs first) so drift in machine load hits both. Prints steps/s and images/s of each, segval / bare, and
the projected time of the seed recipe's 40k iterations.

    python benchmarks/train_overhead.py [--steps 30] [--rounds 3]
    # seed-size figures on a GPU: SegFormer-B4, 512x512, batch 4, bf16
    python benchmarks/train_overhead.py --accelerator gpu --precision bf16 --model b4 --size 512 --batch 4
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import time
import warnings

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
warnings.filterwarnings("ignore")

from pathlib import Path  # noqa: E402

import lightning.pytorch as pl  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402

from segval.models import SegmentationModule  # noqa: E402

NUM_CLASSES = 13
CONF = Path(__file__).resolve().parents[1] / "src" / "segval" / "conf" / "model"


def adapter_config(model: str) -> dict:
    """The adapter config of conf/model/segformer_<model>.yaml, random init (no weights needed)."""
    tiny = yaml.safe_load((CONF / "segformer_tiny.yaml").read_text())["adapter"]
    if model != "tiny":
        tiny["config"].update(yaml.safe_load((CONF / f"segformer_{model}.yaml").read_text())["adapter"]["config"])
    tiny["pretrained"] = None
    return tiny


class Batches(Dataset):
    """Pre-built items, so neither side pays for data loading."""

    def __init__(self, n: int, size: int = 256) -> None:
        n = min(n, 16)  # recycled: index modulo n
        g = torch.Generator().manual_seed(0)
        self.images = torch.randn(n, 3, size, size, generator=g)
        self.masks = torch.randint(0, NUM_CLASSES, (n, size, size), generator=g)

        self.length = 1 << 20

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        i %= len(self.images)
        return {"image": self.images[i], "mask": self.masks[i]}


class StepTimer(pl.Callback):
    def __init__(self, warmup: int) -> None:
        self.warmup, self.start, self.end = warmup, 0.0, 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # noqa: ANN001
        if trainer.global_step == self.warmup:
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.end = time.perf_counter()


def make_module(model: str) -> SegmentationModule:
    torch.manual_seed(0)
    return SegmentationModule(NUM_CLASSES, [f"c{i}" for i in range(NUM_CLASSES)], adapter_config(model),
                              optimizer={"lr": 1e-4, "weight_decay": 0.01}, scheduler={"power": 1.0})


def run_lightning(module: SegmentationModule, data: Batches, args: argparse.Namespace) -> float:
    timer = StepTimer(args.warmup)
    precision = "bf16-mixed" if args.precision == "bf16" else "32-true"
    trainer = pl.Trainer(accelerator=args.accelerator, devices=1, precision=precision,
                         max_steps=args.steps + args.warmup, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, callbacks=[timer],
                         limit_val_batches=0, num_sanity_val_steps=0, benchmark=args.accelerator == "gpu")
    loader = DataLoader(data, batch_size=args.batch, shuffle=False, drop_last=True,
                        pin_memory=args.accelerator == "gpu")
    trainer.fit(module, train_dataloaders=loader)
    return args.steps / (timer.end - timer.start)


def run_bare(module: SegmentationModule, data: Batches, args: argparse.Namespace) -> float:
    device = torch.device("cuda" if args.accelerator == "gpu" else "cpu")
    torch.backends.cudnn.benchmark = args.accelerator == "gpu"
    adapter = module.adapter.to(device)
    adapter.train()
    opt = torch.optim.AdamW(adapter.parameters(), lr=1e-4, weight_decay=0.01)
    total = args.steps + args.warmup
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: (1 - min(s, total) / total) ** 1.0)
    loader = DataLoader(data, batch_size=args.batch, shuffle=False, drop_last=True, pin_memory=device.type == "cuda")
    it = iter(loader)
    start = 0.0
    for step in range(total):
        if step == args.warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        batch = next(it)
        images, masks = batch["image"].to(device, non_blocking=True), batch["mask"].to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16"):
            loss, _ = adapter(images, masks)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return args.steps / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--accelerator", choices=["cpu", "gpu"], default="cpu")
    ap.add_argument("--precision", choices=["32", "bf16"], default="32")
    ap.add_argument("--model", choices=["tiny", "b0", "b1", "b2", "b3", "b4", "b5"], default="tiny")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch", type=int, default=2)
    args = ap.parse_args()
    data = Batches(args.batch * (args.steps + args.warmup), args.size)
    base = make_module(args.model)
    seg, bare = [], []
    for r in range(args.rounds):  # the order alternates too, so neither side always runs first
        if r % 2:
            seg.append(run_lightning(copy.deepcopy(base), data, args))
            bare.append(run_bare(copy.deepcopy(base), data, args))
        else:
            bare.append(run_bare(copy.deepcopy(base), data, args))
            seg.append(run_lightning(copy.deepcopy(base), data, args))
    s, b = statistics.median(seg), statistics.median(bare)
    where = torch.cuda.get_device_name() if args.accelerator == "gpu" else f"CPU, {torch.get_num_threads()} threads"
    print(f"{where}; SegFormer-{args.model}, batch {args.batch}, {args.size}x{args.size}, precision {args.precision}, "
          f"{args.steps} timed steps x {args.rounds} rounds")
    print(f"bare PyTorch loop : {b:7.2f} steps/s {b * args.batch:8.1f} img/s  (rounds: {', '.join(f'{x:.2f}' for x in bare)})")
    print(f"segval (Lightning): {s:7.2f} steps/s {s * args.batch:8.1f} img/s  (rounds: {', '.join(f'{x:.2f}' for x in seg)})")
    print(f"throughput ratio segval / bare = {s / b:.3f}  (goal >= 0.90)")
    print(f"projected 40k iterations at this batch per device: {40000 / s / 3600:.2f} h")


if __name__ == "__main__":
    main()
