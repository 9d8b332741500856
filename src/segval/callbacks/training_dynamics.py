"""Training dynamics of every train image, per pixel, recorded during one in-sample training run.

A network fits clean labels early and wrong labels late or never (area under the margin, Pleiss et
al. 2020; dataset cartography, Swayamdipta et al. 2020). :class:`TrainingDynamicsCallback` makes a
cheap pass over the train split every ``every_n_steps`` optimizer steps: full images, no
augmentation, downscaled by ``scale``, forward only. For every pixel with a label ``y`` it computes
the margin ``m = z_y - max_{c != y} z_c`` of the logits ``z`` and keeps running statistics only
(nothing per checkpoint is kept per pixel, so the file stays small):

* ``aum``: the margin averaged over the passes (area under the margin; < 0: the label is never the
  model's choice on average);
* ``learned``: number of passes where ``m > 0`` (the label is the model's argmax);
* ``first``: index of the pass from which ``m > 0`` held up to the last pass (-1: not learned at the
  end), i.e. *when* the pixel was learned for good;
* ``other``: the best other class ``argmax_{c != y} z_c`` at the last pass (what the model would
  say instead);
* ``target``: the label at the recorded resolution (255 = void);
* ``loss``: per pass and image, the mean cross-entropy of the image (float32[T, N]).

The file ``<dirpath>/dynamics[.rankR].npz`` (one per DDP rank; each rank scores its own shard of the
images, so the cost does not grow with the number of ranks) is read back by :func:`segval.metrics.training_dynamics.load_dynamics`.
:mod:`segval.relabel.dynamics` turns it into per-annotation evidence. The time spent in the passes
is stored (``pass_seconds``) so the training slowdown can be checked (goal <= 10 %).
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
import torch.nn.functional as F

from segval.metrics.training_dynamics import pixel_margins

log = logging.getLogger("segval")

__all__ = ["TrainingDynamicsCallback"]


class TrainingDynamicsCallback(pl.Callback):
    """Record per-pixel training dynamics of the train split (see the module doc).

    Args:
        dirpath: folder of ``dynamics.npz`` (the run directory).
        every_n_steps: optimizer steps between two passes (the last step always gets one).
        scale: downscaling of the images for the passes (0.5: a quarter of the pixels).
        batch_size: images per forward of a pass.
        start_step: first step recorded (default ``every_n_steps``).
        split: the split recorded (default: the datamodule's train split).
        filename: the file written (``.rankR`` inserted under DDP).
    """

    def __init__(self, dirpath: str | os.PathLike, every_n_steps: int = 100, scale: float = 0.5,
                 batch_size: int = 16, start_step: int | None = None, split: str | None = None,
                 filename: str = "dynamics.npz") -> None:
        super().__init__()
        if every_n_steps < 1 or not 0 < scale <= 1:
            raise ValueError(f"every_n_steps >= 1 and 0 < scale <= 1, got {every_n_steps}, {scale}")
        self.dirpath, self.every, self.scale = Path(dirpath), int(every_n_steps), float(scale)
        self.batch_size, self.start = int(batch_size), int(start_step if start_step is not None else every_n_steps)
        self.split, self.filename = split, filename
        self._images: list[torch.Tensor] = []  # per image float[3, h, w] (normalised, downscaled)
        self._targets: list[torch.Tensor] = []  # per image long[h, w]
        self._ids: list[int] = []
        self._stats: dict[str, list[torch.Tensor]] = {}
        self._steps: list[int] = []
        self._loss: list[list[float]] = []
        self.pass_seconds = 0.0
        self._last_step = -1

    # -- data ------------------------------------------------------------------------------------
    def _load(self, trainer: pl.Trainer) -> None:
        dm = trainer.datamodule
        split = self.split or ("train" if getattr(dm, "plain_coco", False) else dm.train_split)
        ds = dm.dataset(split)  # val transforms: the full image
        rank, world = trainer.global_rank, trainer.world_size
        for k in range(rank, len(ds), world):
            it = ds[k]
            img, tgt = it["image"], it["mask"]
            h, w = tgt.shape
            hs, ws = max(8, round(h * self.scale)), max(8, round(w * self.scale))
            if (hs, ws) != (h, w):
                img = F.interpolate(img[None], size=(hs, ws), mode="bilinear", align_corners=False,
                                    antialias=True)[0]
                tgt = F.interpolate(tgt[None, None].float(), size=(hs, ws), mode="nearest")[0, 0].long()
            self._images.append(img.half())
            self._targets.append(tgt.to(torch.uint8))
            self._ids.append(int(it["image_id"]))
        for i, t in enumerate(self._targets):
            shape = t.shape
            self._stats.setdefault("aum", []).append(torch.zeros(shape))
            self._stats.setdefault("learned", []).append(torch.zeros(shape, dtype=torch.int16))
            self._stats.setdefault("first", []).append(torch.full(shape, -1, dtype=torch.int16))
            self._stats.setdefault("other", []).append(torch.zeros(shape, dtype=torch.uint8))

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        start = time.perf_counter()
        if not self._ids:
            self._load(trainer)
        self.pass_seconds += time.perf_counter() - start

    # -- passes ----------------------------------------------------------------------------------
    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        step = int(trainer.global_step)
        last = trainer.max_steps is not None and step >= trainer.max_steps > 0
        if step == self._last_step or not (last or (step >= self.start and step % self.every == 0)):
            return
        self._last_step = step
        self._pass(pl_module, step)

    @torch.no_grad()
    def _pass(self, pl_module: pl.LightningModule, step: int) -> None:
        start = time.perf_counter()
        was_training = pl_module.training
        pl_module.eval()
        t = len(self._steps)
        losses = []
        dev = pl_module.device
        order = sorted(range(len(self._ids)), key=lambda i: tuple(self._targets[i].shape))  # same sizes together
        for k in range(0, len(order), self.batch_size):
            idx = order[k: k + self.batch_size]
            groups: dict[tuple, list[int]] = {}
            for i in idx:
                groups.setdefault(tuple(self._targets[i].shape), []).append(i)
            for members in groups.values():
                imgs = torch.stack([self._images[i] for i in members]).to(dev).float()
                tgt = torch.stack([self._targets[i] for i in members]).to(dev).long()
                logits = pl_module(imgs)  # (B, C, h, w)
                if logits.shape[-2:] != tgt.shape[-2:]:
                    logits = F.interpolate(logits, size=tgt.shape[-2:], mode="bilinear", align_corners=False)
                margin, other, nll = pixel_margins(logits, tgt)
                valid = (tgt != 255).float()
                img_loss = (nll * valid).sum((1, 2)) / valid.sum((1, 2)).clamp_min(1)
                for b, i in enumerate(members):
                    m = margin[b].cpu()
                    self._stats["aum"][i] += m
                    pos = m > 0
                    self._stats["learned"][i] += pos.to(torch.int16)
                    first = self._stats["first"][i]
                    first[~pos] = -1
                    first[pos & (first < 0)] = t
                    self._stats["other"][i] = other[b].cpu().to(torch.uint8)
                    losses.append((i, float(img_loss[b])))
        row = [0.0] * len(self._ids)
        for i, v in losses:
            row[i] = v
        self._loss.append(row)
        self._steps.append(step)
        if was_training:
            pl_module.train()
        self.pass_seconds += time.perf_counter() - start

    # -- output ----------------------------------------------------------------------------------
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._steps:
            return
        n_pass = len(self._steps)
        arrays: dict[str, np.ndarray] = {
            "image_ids": np.asarray(self._ids, np.int64),
            "steps": np.asarray(self._steps, np.int64),
            "loss": np.asarray(self._loss, np.float32).T.copy().T,  # (T, N)
        }
        for k, i in enumerate(self._ids):
            arrays[f"aum_{i}"] = (self._stats["aum"][k] / n_pass).numpy().astype(np.float16)
            arrays[f"learned_{i}"] = self._stats["learned"][k].numpy().astype(np.uint8 if n_pass < 256 else np.int16)
            arrays[f"first_{i}"] = self._stats["first"][k].numpy()
            arrays[f"other_{i}"] = self._stats["other"][k].numpy()
            arrays[f"target_{i}"] = self._targets[k].numpy()
        meta = {"scale": self.scale, "every_n_steps": self.every, "passes": n_pass, "pass_seconds": self.pass_seconds,
                "rank": trainer.global_rank, "world_size": trainer.world_size,
                "class_names": list(getattr(pl_module, "class_names", []))}
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        self.dirpath.mkdir(parents=True, exist_ok=True)
        name = self.filename if trainer.world_size == 1 else self.filename.replace(".npz", f".rank{trainer.global_rank}.npz")
        tmp = self.dirpath / f".{name}.tmp.npz"
        np.savez_compressed(tmp, **arrays)
        os.replace(tmp, self.dirpath / name)
        log.info("training dynamics: %d passes over %d images in %.1f s -> %s", n_pass, len(self._ids),
                 self.pass_seconds, self.dirpath / name)
