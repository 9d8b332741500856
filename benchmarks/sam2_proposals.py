"""SAM 2 proposals/s with cached embeddings vs recomputing them, same items, one run (goal: cached >= 5x on CPU
with the tiny model); with ``--model large`` (SAM 2.1 Hiera-Large's architecture built in code, random init:
the speed is the architecture's, the masks mean nothing) also embeddings/s of the image encoder.

    python benchmarks/sam2_proposals.py                                   # CPU, tiny random-init model
    python benchmarks/sam2_proposals.py --device cuda --model large --images 32

Items: every annotation of ``--images`` images of a generated shapes package (320 x 240). *Recompute*: per
item, read the image, pre-process, run the encoder and the prompt decoder (what a tool without a cache does
per click). *Cached*: the embeddings are computed once by the Lightning predict loop of `segval relabel embed`
(timed: embeddings/s), then per item: load from the cache and run the decoder. Rounds alternate.
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

from segval.dataset.package import DatasetPackage  # noqa: E402
from segval.demo.shapes import write_shapes_package  # noqa: E402
from segval.relabel.embeddings import EmbeddingCache, compute_embeddings, embeddings_for  # noqa: E402
from segval.relabel.sam2_backend import Sam2Backend, preprocess, prompts_for  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", choices=["tiny", "large"], default="tiny")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--images", type=int, default=12)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=4)
    args = ap.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device here")
    backend = Sam2Backend(f"{args.model}_random", architecture=args.model, device=args.device)
    dev = backend.device
    with tempfile.TemporaryDirectory() as tmp:
        root = write_shapes_package(Path(tmp) / "shapes", images={"train": args.images, "val": 1}, size=(240, 320))
        sd = DatasetPackage.open(root).split("train")
        items = []
        for rec in sd.images:
            insts = sd.instances(rec)
            for i in insts:
                items.append((rec, prompts_for(i.mask, [o.mask for o in insts if o is not i], None)))
        # warm-up (kernels, allocator)
        emb = backend.encode(preprocess([sd.read_image(sd.images[0])], backend.image_size))
        backend.predict(emb, items[0][1], 240, 320)
        recompute, cached, embed_rates = [], [], []
        for r in range(args.rounds):
            cache = EmbeddingCache(Path(tmp) / f"cache{r}", backend.model_id)
            _sync(dev)
            t0 = time.perf_counter()
            res = compute_embeddings(backend, sd, sd.images, cache, batch_size=args.batch_size, progress=False)
            _sync(dev)
            embed_rates.append(res["computed"] / (time.perf_counter() - t0))
            t0 = time.perf_counter()
            for rec, prompt in items:
                backend.predict(embeddings_for(backend, sd, rec, cache), prompt, rec.height, rec.width)
            _sync(dev)
            cached.append(len(items) / (time.perf_counter() - t0))
            t0 = time.perf_counter()
            for rec, prompt in items:
                backend.predict(embeddings_for(backend, sd, rec, None), prompt, rec.height, rec.width)
            _sync(dev)
            recompute.append(len(items) / (time.perf_counter() - t0))
    c, rc, e = statistics.median(cached), statistics.median(recompute), statistics.median(embed_rates)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"SAM 2 {args.model} (random init, image_size {backend.image_size}) on {name}; {len(items)} items on "
          f"{args.images} images of 320x240, median of {args.rounds} rounds")
    print(f"embeddings/s (Lightning predict loop, batch {args.batch_size}): {e:.2f}")
    print(f"proposals/s recomputing embeddings: {rc:.2f}")
    print(f"proposals/s with cached embeddings: {c:.2f}")
    print(f"cached / recompute: {c / rc:.2f}x (goal >= 5x)")


if __name__ == "__main__":
    main()
