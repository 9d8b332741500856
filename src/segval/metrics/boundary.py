"""The Boundary IoU ``Metric``: per-class intersection / union of boundaries, summed across ranks.

The definition and how it is computed are in :mod:`segval.metrics.functional.boundary`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from segval.metrics.functional.boundary import _check_ratio, boundary_counts, boundary_iou_from_counts
from segval.metrics.functional.semantic import _check_ignore_index, _check_num_classes, _to_tensor

__all__ = ["BoundaryIoU"]


class BoundaryIoU(Metric):
    """Accumulated per-class Boundary IoU (Cheng et al. 2021) of semantic predictions.

    States: ``intersection`` and ``union``, ``int64[C]``, summed across processes, so ``compute()``
    under DDP gives the value of the whole split on every rank. See :func:`boundary_counts`.

    Args:
        num_classes: number of classes ``C``.
        ignore_index: void label of the target (255), or None.
        dilation_ratio: erosion depth as a fraction of the image diagonal (0.02).
        **kwargs: passed to :class:`torchmetrics.Metric`.

    Example:
        >>> metric = BoundaryIoU(num_classes=2)
        >>> target = torch.zeros(1, 6, 6, dtype=torch.long)
        >>> target[0, 1:5, 1:5] = 1
        >>> metric.update(target, target)
        >>> metric.compute()
        tensor([1., 1.], dtype=torch.float64)
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = True

    intersection: Tensor
    union: Tensor

    def __init__(
        self, num_classes: int, ignore_index: int | None = 255, dilation_ratio: float = 0.02, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.num_classes = _check_num_classes(num_classes)
        self.ignore_index = _check_ignore_index(ignore_index)
        self.dilation_ratio = _check_ratio(dilation_ratio)
        for name in ("intersection", "union"):
            self.add_state(name, default=torch.zeros(self.num_classes, dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Add a batch: labels ``int[B, H, W]`` and train indices ``int[B, H, W]``."""
        if not isinstance(target, Tensor):
            target = _to_tensor(target, "target").to(self.union.device)
        inter, union = boundary_counts(preds, target, self.num_classes, self.ignore_index, self.dilation_ratio)
        self.intersection += inter.to(self.intersection.device)
        self.union += union.to(self.union.device)

    def compute(self) -> Tensor:
        """``float64[C]`` per-class boundary IoU on the CPU (NaN: no boundary in GT nor prediction)."""
        return boundary_iou_from_counts(self.intersection, self.union)
