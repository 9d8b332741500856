"""Mask2Former vs SegFormer train-step throughput, measured in the same run.

Both adapters run the same bare training step (forward with loss / backward / AdamW) on the same
pre-built batches of blocky semantic masks (Mask2Former gets one target mask per present class, its
semantic task); rounds alternate which model runs first so drift in machine load hits both. Prints
per model s/step, images/s, the projected time of 40k iterations (the seed recipe), peak GPU memory,
and Mask2Former / SegFormer step time.

    # CPU: the tiny presets (mask2former_tiny vs segformer_tiny)
    python benchmarks/mask2former.py [--size 128] [--batch 2] [--steps 10]
    # seed-size figures on a GPU: Mask2Former Swin-L (200 queries) vs SegFormer-B4, random init from config
    python benchmarks/mask2former.py --accelerator gpu --precision bf16 --size 512 --batch 4
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
warnings.filterwarnings("ignore")

from pathlib import Path  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import yaml  # noqa: E402
from hydra.utils import instantiate  # noqa: E402

CONF = Path(__file__).resolve().parents[1] / "src" / "segval" / "conf" / "model"
PRESETS = {"tiny": ("mask2former_tiny", "segformer_tiny"), "seed": ("mask2former_swin_l", "segformer_b4")}


def adapter_config(preset: str) -> dict:
    """The adapter config of conf/model/<preset>.yaml with its defaults merged, random init (no weights)."""
    data = yaml.safe_load((CONF / f"{preset}.yaml").read_text())
    merged: dict = {}
    for parent in data.get("defaults") or []:
        if parent != "_self_":
            merged = adapter_config(parent)
    for key, value in (data.get("adapter") or {}).items():
        merged[key] = {**merged.get(key, {}), **value} if isinstance(value, dict) else value
    merged["pretrained"] = None
    return merged


def make_batches(n: int, batch: int, size: int, num_classes: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``n`` batches of random images and masks of 8x8 random class blocks."""
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n):
        images = torch.randn(batch, 3, size, size, generator=g)
        blocks = torch.randint(0, num_classes, (batch, 1, 8, 8), generator=g).float()
        masks = F.interpolate(blocks, size=(size, size), mode="nearest")[:, 0].long()
        out.append((images, masks))
    return out


def time_model(preset: str, batches: list, args: argparse.Namespace, device: torch.device) -> dict:
    torch.manual_seed(0)
    cfg = adapter_config(preset)
    adapter = instantiate(cfg, num_classes=args.classes, class_names=[f"c{i}" for i in range(args.classes)],
                          _convert_="all").to(device)
    adapter.train()
    params = sum(p.numel() for p in adapter.parameters())
    opt = torch.optim.AdamW(adapter.parameters(), lr=1e-4, weight_decay=0.05)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = 0.0
    for step in range(args.warmup + args.steps):
        if step == args.warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        images, masks = batches[step % len(batches)]
        images, masks = images.to(device, non_blocking=True), masks.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16"):
            loss, _ = adapter(images, masks)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    sec = (time.perf_counter() - start) / args.steps
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    del adapter, opt
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return {"sec": sec, "params": params, "peak_gib": peak}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--accelerator", choices=["cpu", "gpu"], default="cpu")
    ap.add_argument("--precision", choices=["32", "bf16"], default="32")
    ap.add_argument("--scale", choices=["tiny", "seed"], default=None,
                    help="tiny presets or the seed's Swin-L / B4 (default: seed on gpu, tiny on cpu)")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--classes", type=int, default=13)
    ap.add_argument("--iterations", type=int, default=40_000, help="recipe length for the projected time")
    args = ap.parse_args()
    scale = args.scale or ("seed" if args.accelerator == "gpu" else "tiny")
    device = torch.device("cuda" if args.accelerator == "gpu" else "cpu")
    torch.backends.cudnn.benchmark = device.type == "cuda"
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    m2f, seg = PRESETS[scale]
    batches = make_batches(min(8, args.steps + args.warmup), args.batch, args.size, args.classes)
    runs: dict[str, list[dict]] = {m2f: [], seg: []}
    for r in range(args.rounds):
        order = (m2f, seg) if r % 2 == 0 else (seg, m2f)
        for preset in order:
            runs[preset].append(time_model(preset, batches, args, device))
    where = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"train step, {where}, precision {args.precision}, {args.size}x{args.size}, batch {args.batch}, "
          f"{args.classes} classes, {args.steps} steps after {args.warmup} warm-up, median of {args.rounds} rounds")
    med = {}
    for preset, rs in runs.items():
        sec = statistics.median(r["sec"] for r in rs)
        med[preset] = sec
        hours = sec * args.iterations / 3600
        peak = max(r["peak_gib"] for r in rs)
        mem = f", peak {peak:.1f} GiB" if peak == peak else ""
        print(f"  {preset:<20} {rs[0]['params'] / 1e6:7.1f} M params  {sec:8.4f} s/step  "
              f"{args.batch / sec:8.2f} images/s  {args.iterations // 1000}k iterations: {hours:6.2f} h{mem}")
    print(f"  {m2f} / {seg} step time: {med[m2f] / med[seg]:.2f}x")


if __name__ == "__main__":
    main()
