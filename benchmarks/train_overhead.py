"""segval's Lightning train step: overhead against a bare PyTorch loop, and the GPU speed options before -> after.

Default (CPU): tiny SegFormer, batch 2, 256x256. Both sides run the same forward / backward / AdamW step /
poly-LR step on the same pre-built batches, from the same initial weights; rounds alternate between the two
(and which runs first) so drift in machine load hits both. Goal: segval / bare >= 0.90.

``--speed`` (the default with ``--accelerator gpu``): segval's Lightning step with every speed option off
(*before*: eager, contiguous NCHW, foreach AdamW, transformers' default attention; what ``trainer=gpu`` did
before them) against the options on (*after*: ``torch.compile``, ``channels_last``, fused AdamW, SDPA), on
the same batches, in the same run. Per side: images/s, step time, peak GPU memory and MFU (model FLOPs of
one training step counted by ``torch.utils.flop_counter.FlopCounterMode`` x steps/s / the device's dense
bf16 peak: H100 / H200 989, A100 312 TFLOP/s, or ``--peak-tflops``), and the projected seed-recipe time
(40k iterations x 8 images on one device). Goal: after >= 3x before, and MFU >= 6 % on an H100 / H200.

    python benchmarks/train_overhead.py [--steps 30] [--rounds 3]
    # seed-size figures on a GPU: SegFormer-B4, 512x512, batch 4, bf16 (before -> after)
    python benchmarks/train_overhead.py --accelerator gpu --precision bf16 --model b4 --size 512 --batch 4
    python benchmarks/train_overhead.py --accelerator gpu --precision bf16 --model swin_l --size 512 --batch 4
    # the speed paths on the CPU (compile / channels_last / fused forced on; no MFU without --peak-tflops)
    python benchmarks/train_overhead.py --speed --steps 10 --rounds 1
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
import torch.nn.functional as F  # noqa: E402
import yaml  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402

from segval.models import SegmentationModule  # noqa: E402

NUM_CLASSES = 13
CONF = Path(__file__).resolve().parents[1] / "src" / "segval" / "conf" / "model"
PRESETS = {**{m: f"segformer_{m}" for m in ("tiny", "b0", "b1", "b2", "b3", "b4", "b5")},
           "m2f_tiny": "mask2former_tiny", "swin_t": "mask2former_swin_t", "swin_l": "mask2former_swin_l"}
#: dense bf16 tensor-core peaks (TFLOP/s, no sparsity) by device-name substring
PEAK_TFLOPS = {"H200": 989.0, "H100 PCIe": 756.0, "H100": 989.0, "A100": 312.0}
SEED_ITERS, SEED_IMAGES = 40_000, 8  # the seed recipe: 40k iterations x (4 images x 2 GPUs)


def preset_config(preset: str) -> dict:
    """conf/model/<preset>.yaml with its defaults merged (adapter, optimizer, ...), random init."""
    data = yaml.safe_load((CONF / f"{preset}.yaml").read_text())
    merged: dict = {}
    for parent in data.get("defaults") or []:
        if parent != "_self_":
            merged = preset_config(parent)
    for key, value in data.items():
        if key == "defaults":
            continue
        if isinstance(value, dict):
            merged[key] = {**merged.get(key, {}), **{k: ({**merged.get(key, {}).get(k, {}), **v} if isinstance(v, dict)
                                                           else v) for k, v in value.items()}}
        else:
            merged[key] = value
    merged["adapter"]["pretrained"] = None
    return merged


class Batches(Dataset):
    """Pre-built items (random images, masks of 8x8 random class blocks), so no side pays for data loading."""

    def __init__(self, n: int, size: int = 256) -> None:
        n = min(n, 16)  # recycled: index modulo n
        g = torch.Generator().manual_seed(0)
        self.images = torch.randn(n, 3, size, size, generator=g)
        blocks = torch.randint(0, NUM_CLASSES, (n, 1, 8, 8), generator=g).float()
        self.masks = F.interpolate(blocks, size=(size, size), mode="nearest")[:, 0].long()
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
            if torch.cuda.is_available():
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.end = time.perf_counter()


def make_module(model: str, *, fast: bool | None = None) -> SegmentationModule:
    """The preset's module, random init; ``fast``: None = the preset's own ("auto") speed options, True / False
    forces every option on / off (off also leaves the attention at transformers' default)."""
    cfg = preset_config(PRESETS[model])
    adapter, optimizer = cfg["adapter"], dict(cfg.get("optimizer") or {})
    kwargs = {k: cfg[k] for k in ("compile", "compile_options", "channels_last") if k in cfg}
    if fast is not None:
        kwargs.update(compile=fast, channels_last=fast)
        optimizer["fused"] = fast
        adapter["attn_implementation"] = "sdpa" if fast else None
    adapter.pop("_target_", None)
    target = "segval.models.mask2former.Mask2FormerAdapter" if model in ("m2f_tiny", "swin_t", "swin_l") else \
        "segval.models.segformer.SegformerAdapter"
    torch.manual_seed(0)
    return SegmentationModule(NUM_CLASSES, [f"c{i}" for i in range(NUM_CLASSES)], {"_target_": target, **adapter},
                              optimizer=optimizer, scheduler={"power": 1.0}, **kwargs)


def run_lightning(module: SegmentationModule, data: Batches, args: argparse.Namespace) -> dict:
    """Steps/s and peak GPU memory (GiB) of ``args.steps`` Lightning steps after ``args.warmup``."""
    timer = StepTimer(args.warmup)
    precision = "bf16-mixed" if args.precision == "bf16" else "32-true"
    trainer = pl.Trainer(accelerator=args.accelerator, devices=1, precision=precision,
                         max_steps=args.steps + args.warmup, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, callbacks=[timer],
                         limit_val_batches=0, num_sanity_val_steps=0, benchmark=args.accelerator == "gpu")
    loader = DataLoader(data, batch_size=args.batch, shuffle=False, drop_last=True,
                        pin_memory=args.accelerator == "gpu")
    trainer.fit(module, train_dataloaders=loader)
    peak = torch.cuda.max_memory_allocated() / 2**30 if args.accelerator == "gpu" else float("nan")
    return {"steps_s": args.steps / (timer.end - timer.start), "peak_gib": peak}


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


def step_flops(model: str, data: Batches, args: argparse.Namespace) -> float:
    """FLOPs of one training step's forward + backward (the optimizer's elementwise update left out), counted by
    ``FlopCounterMode`` on the eager model (matmuls, convolutions, attention: what MFU counts)."""
    from torch.utils.flop_counter import FlopCounterMode

    device = torch.device("cuda" if args.accelerator == "gpu" else "cpu")
    adapter = make_module(model, fast=False).adapter.to(device).train()
    images = data.images[: args.batch].to(device)
    masks = data.masks[: args.batch].to(device)
    counter = FlopCounterMode(display=False)
    with counter, torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16"):
        loss, _ = adapter(images, masks)
        loss.backward()
    return float(counter.get_total_flops())


def peak_tflops(args: argparse.Namespace) -> tuple[float | None, str]:
    if args.peak_tflops:
        return args.peak_tflops, "given"
    if args.accelerator != "gpu":
        return None, "no CPU peak: pass --peak-tflops"
    name = torch.cuda.get_device_name()
    for key, value in PEAK_TFLOPS.items():
        if key in name:
            return value, f"{key} dense bf16"
    return None, f"unknown device {name!r}: pass --peak-tflops"


def overhead(args: argparse.Namespace) -> None:
    """segval's Lightning step vs a bare loop (the CPU default)."""
    data = Batches(args.batch * (args.steps + args.warmup), args.size)
    base = make_module(args.model, fast=False)
    seg, bare = [], []
    for r in range(args.rounds):  # the order alternates too, so neither side always runs first
        if r % 2:
            seg.append(run_lightning(copy.deepcopy(base), data, args)["steps_s"])
            bare.append(run_bare(copy.deepcopy(base), data, args))
        else:
            bare.append(run_bare(copy.deepcopy(base), data, args))
            seg.append(run_lightning(copy.deepcopy(base), data, args)["steps_s"])
    s, b = statistics.median(seg), statistics.median(bare)
    print(f"{where(args)}; {args.model}, batch {args.batch}, {args.size}x{args.size}, precision {args.precision}, "
          f"{args.steps} timed steps x {args.rounds} rounds")
    print(f"bare PyTorch loop : {b:7.2f} steps/s {b * args.batch:8.1f} img/s  (rounds: {', '.join(f'{x:.2f}' for x in bare)})")
    print(f"segval (Lightning): {s:7.2f} steps/s {s * args.batch:8.1f} img/s  (rounds: {', '.join(f'{x:.2f}' for x in seg)})")
    print(f"projected {SEED_ITERS // 1000}k iterations at this batch per device: {SEED_ITERS / s / 3600:.2f} h")
    ratio = s / b
    print(f"train_overhead: {ratio:.3f} segval/bare (goal >= 0.90) {'PASS' if ratio >= 0.90 else 'FAIL'}")


def speed(args: argparse.Namespace) -> None:
    """Before -> after the speed options, same batches, same run."""
    data = Batches(args.batch * (args.steps + args.warmup), args.size)
    flops = step_flops(args.model, data, args)
    peak, peak_note = peak_tflops(args)
    runs: dict[str, list[dict]] = {"before": [], "after": []}
    for r in range(args.rounds):
        for side in (("before", "after") if r % 2 == 0 else ("after", "before")):
            if args.accelerator == "gpu":
                torch.cuda.empty_cache()
            runs[side].append(run_lightning(make_module(args.model, fast=side == "after"), data, args))
    print(f"{where(args)}; {args.model}, batch {args.batch}, {args.size}x{args.size}, precision {args.precision}, "
          f"{args.steps} timed steps after {args.warmup} warm-up (compilation) x {args.rounds} rounds")
    print(f"model FLOPs per training step (forward + backward, FlopCounterMode): {flops / 1e9:.1f} GFLOP "
          f"({flops / args.batch / 1e9:.1f} per image); peak {peak_note}" + (f": {peak:.0f} TFLOP/s" if peak else ""))
    figures = {}
    for side, results in runs.items():
        steps_s = statistics.median(r["steps_s"] for r in results)
        mem = max(r["peak_gib"] for r in results)
        mfu = flops * steps_s / (peak * 1e12) if peak else None
        figures[side] = (steps_s, mfu)
        seed_h = SEED_ITERS * SEED_IMAGES / (steps_s * args.batch) / 3600
        print(f"{side:6s}: {steps_s * args.batch:8.2f} img/s  step {1000 / steps_s:8.1f} ms  peak memory "
              f"{mem:6.2f} GiB  MFU {'n/a' if mfu is None else f'{100 * mfu:5.2f} %'}  "
              f"seed recipe ({SEED_ITERS // 1000}k x {SEED_IMAGES} images, one device) {seed_h:6.2f} h")
    ratio = figures["after"][0] / figures["before"][0]
    mfu = figures["after"][1]
    print(f"after / before = {ratio:.2f}x")
    ok = ratio >= 3.0 and (mfu is not None and mfu >= 0.06)
    mfu_text = "n/a" if mfu is None else f"{100 * mfu:.1f} %"
    print(f"train_overhead: {ratio:.2f}x before, MFU {mfu_text} (goal >= 3x and >= 6 % MFU on an H100 / H200) "
          f"{'PASS' if ok else 'FAIL'}")


def where(args: argparse.Namespace) -> str:
    return torch.cuda.get_device_name() if args.accelerator == "gpu" else f"CPU, {torch.get_num_threads()} threads"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=None, help="timed steps (30 on CPU, 50 on GPU)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed steps first (5 on CPU, 15 on GPU: compilation)")
    ap.add_argument("--rounds", type=int, default=None, help="rounds per side (3 on CPU, 1 on GPU)")
    ap.add_argument("--accelerator", choices=["cpu", "gpu"], default="cpu")
    ap.add_argument("--precision", choices=["32", "bf16"], default="32")
    ap.add_argument("--model", choices=sorted(PRESETS), default="tiny")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--speed", action="store_true", help="before -> after the speed options (default on a GPU)")
    ap.add_argument("--overhead", action="store_true", help="segval vs a bare loop on a GPU too")
    ap.add_argument("--peak-tflops", type=float, default=None, help="the device's dense peak, for MFU")
    args = ap.parse_args()
    gpu = args.accelerator == "gpu"
    args.steps = args.steps or (50 if gpu else 30)
    args.warmup = args.warmup if args.warmup is not None else (15 if gpu else 5)
    args.rounds = args.rounds or (1 if gpu else 3)
    if gpu and not torch.cuda.is_available():
        raise SystemExit("--accelerator gpu: no CUDA device here")
    if args.speed or gpu:
        speed(args)
    if args.overhead or not (args.speed or gpu):
        overhead(args)


if __name__ == "__main__":
    main()
