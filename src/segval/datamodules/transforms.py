"""albumentations pipelines built from config, plus normalisation to tensors."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import albumentations as A  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from hydra.utils import instantiate  # noqa: E402
from omegaconf import DictConfig, ListConfig, OmegaConf  # noqa: E402

from segval.errors import ConfigError  # noqa: E402


def build_pipeline(steps: Sequence[Any] | None) -> A.Compose | None:
    """Compose albumentations transforms from config entries (``_target_`` + arguments) or objects.

    Masks are resized with nearest neighbour by albumentations, and padding must fill masks with 255
    (``fill_mask: 255``) so padded pixels are ignored.
    """
    if steps is None:
        return None
    if isinstance(steps, (DictConfig, ListConfig)):
        steps = OmegaConf.to_container(steps, resolve=True)
    built = []
    for i, step in enumerate(steps):
        if isinstance(step, dict):
            try:
                step = instantiate(step)
            except Exception as err:
                raise ConfigError(f"transform #{i} ({step.get('_target_')}) cannot be built: {err}") from err
        if not isinstance(step, A.BasicTransform | A.BaseCompose):
            raise ConfigError(f"transform #{i} is {type(step).__name__}, not an albumentations transform")
        built.append(step)
    return A.Compose(built) if built else None


class Normalize:
    """uint8[H, W, 3] RGB -> float[3, H, W] normalised with ``mean`` / ``std`` (0..1 scale)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        self.scale = (1.0 / (255.0 * np.asarray(std, dtype=np.float32))).reshape(1, 1, 3)
        self.shift = (np.asarray(mean, dtype=np.float32) / np.asarray(std, dtype=np.float32)).reshape(1, 1, 3)

    def __call__(self, image: np.ndarray) -> torch.Tensor:
        out = image.astype(np.float32) * self.scale - self.shift  # (H, W, 3)
        return torch.from_numpy(np.ascontiguousarray(out.transpose(2, 0, 1)))
