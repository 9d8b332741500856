"""The panoptic-quality ``Metric``: per-category (IoU sum, TP, FP, FN), summed across ranks.

The definition (panopticapi's) is in :mod:`segval.metrics.functional.panoptic`; :func:`pq_summary` turns the
state into PQ / SQ / RQ.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric

from segval.metrics.functional.panoptic import pq_image_stats, pq_summary

__all__ = ["PanopticQualityStats", "pq_summary"]


class PanopticQualityStats(Metric):
    """Per-category (IoU sum, TP, FP, FN), float64[K, 4], summed across ranks.

    Args:
        category_ids: the K category ids (rows in this order).
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = True

    stats: Tensor

    def __init__(self, category_ids: Sequence[int], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.category_ids = [int(c) for c in category_ids]
        self.add_state("stats", default=torch.zeros(len(self.category_ids), 4, dtype=torch.float64),
                       dist_reduce_fx="sum")

    def update(self, gt_ids: Any, gt_segments: Sequence[Mapping[str, Any]], pred_ids: Any,
               pred_segments: Sequence[Mapping[str, Any]]) -> None:
        """Add one image (arguments as :func:`pq_image_stats`)."""
        gt_np = gt_ids.cpu().numpy() if isinstance(gt_ids, Tensor) else np.asarray(gt_ids)
        pred_np = pred_ids.cpu().numpy() if isinstance(pred_ids, Tensor) else np.asarray(pred_ids)
        st = pq_image_stats(gt_np, gt_segments, pred_np, pred_segments, self.category_ids)
        self.stats += torch.from_numpy(st).to(self.stats.device)

    def compute(self) -> Tensor:
        return self.stats.clone()
