"""Training dynamics per pixel: the margin of the labelled class, and the ``dynamics.npz`` record of a run.

:class:`segval.callbacks.training_dynamics.TrainingDynamicsCallback` records, every N steps, running per-pixel
statistics of the margin ``z_y - max_{c != y} z_c`` (area under the margin, Pleiss et al. 2020; dataset
cartography, Swayamdipta et al. 2020); :func:`load_dynamics` reads them back (all DDP ranks merged) for
:mod:`segval.relabel.dynamics`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["Dynamics", "load_dynamics", "pixel_margins"]


def pixel_margins(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = 255
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Margin of the labelled class per pixel.

    Args:
        logits: float[B, C, H, W].
        target: long[B, H, W] train indices, ``ignore_index`` = void.

    Returns:
        ``(margin float[B, H, W] (0 at void), other long[B, H, W] (best class other than the label),
        nll float[B, H, W] (0 at void))``.

    >>> z = torch.tensor([[[[2.0]], [[0.5]], [[1.0]]]])  # (1, 3, 1, 1)
    >>> m, o, _ = pixel_margins(z, torch.tensor([[[0]]]))
    >>> float(m), int(o)
    (1.0, 2)
    """
    void = target == ignore_index
    y = target.masked_fill(void, 0).unsqueeze(1)  # (B, 1, H, W)
    z = logits.float()
    zy = z.gather(1, y)  # (B, 1, H, W)
    others = z.scatter(1, y, float("-inf"))
    zo, other = others.max(dim=1)  # (B, H, W)
    margin = (zy.squeeze(1) - zo).masked_fill(void, 0.0)
    nll = (torch.logsumexp(z, dim=1) - zy.squeeze(1)).masked_fill(void, 0.0)
    return margin, other, nll


@dataclass
class Dynamics:
    """What :class:`TrainingDynamicsCallback` recorded, all ranks merged.

    Attributes:
        steps: int[T] steps of the passes.
        image_ids: int[N].
        loss: float32[T, N] mean cross-entropy per pass and image.
        pixels: ``{image_id: {"aum", "learned", "first", "other", "target": arrays [h, w]}}``.
        meta: scale, passes, pass_seconds (the largest over ranks), class_names.
    """

    steps: np.ndarray
    image_ids: np.ndarray
    loss: np.ndarray
    pixels: dict[int, dict[str, np.ndarray]]
    meta: dict[str, Any]


def load_dynamics(path: str | os.PathLike) -> Dynamics:
    """Read ``dynamics.npz`` (a file, or a run folder holding it or its ``.rankR`` parts)."""
    p = Path(path)
    files = [p] if p.is_file() else sorted(p.glob("dynamics.npz")) or sorted(p.glob("dynamics.rank*.npz"))
    if not files:
        raise FileNotFoundError(f"no dynamics.npz under {p}: train with the training_dynamics callback")
    ids, losses, pixels, meta, steps = [], [], {}, {}, None
    for f in files:
        with np.load(f) as z:
            m = json.loads(bytes(z["meta"]).decode())
            meta = {**m, "pass_seconds": max(meta.get("pass_seconds", 0.0), m["pass_seconds"])}
            steps = z["steps"]
            ids.append(z["image_ids"])
            losses.append(z["loss"])
            for i in z["image_ids"].tolist():
                pixels[i] = {k: z[f"{k}_{i}"] for k in ("aum", "learned", "first", "other", "target")}
    return Dynamics(steps, np.concatenate(ids), np.concatenate(losses, axis=1), pixels, meta)
