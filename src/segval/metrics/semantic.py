"""torchmetrics ``Metric`` classes: one confusion-matrix state, summed across ranks.

Every figure is derived from the accumulated matrix with :func:`segval.metrics.functional.semantic.semantic_metrics`,
so a distributed evaluation gives exactly the numbers of a single process on all the data.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from segval.metrics.functional.semantic import (
    _check_ignore_index,
    _check_num_classes,
    _to_tensor,
    confusion_matrix,
    semantic_metrics,
)

__all__ = ["ConfusionMatrix", "SemanticMetrics"]


class ConfusionMatrix(Metric):
    """Accumulated confusion matrix ``conf[gt, pred]`` (int64) of semantic predictions.

    State: ``confmat`` ``int64[C, C]``, summed across processes (``dist_reduce_fx="sum"``), so
    ``compute()`` under DDP returns the matrix of the whole evaluation set on every rank.

    Args:
        num_classes: number of classes ``C`` (int >= 1).
        ignore_index: target value whose pixels are dropped with their predictions (255); None keeps all.
        **kwargs: passed to :class:`torchmetrics.Metric` (e.g. ``sync_on_compute``, ``process_group``).

    Example:
        >>> metric = ConfusionMatrix(num_classes=2)
        >>> metric.update(torch.tensor([[0, 1]]), torch.tensor([[0, 0]]))
        >>> metric.update(torch.tensor([[1, 1]]), torch.tensor([[1, 255]]))
        >>> metric.compute()
        tensor([[1, 1],
                [0, 1]])
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = None

    confmat: Tensor

    def __init__(self, num_classes: int, ignore_index: int | None = 255, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_classes = _check_num_classes(num_classes)
        self.ignore_index = _check_ignore_index(ignore_index)
        self.add_state(
            "confmat",
            default=torch.zeros(self.num_classes, self.num_classes, dtype=torch.int64),
            dist_reduce_fx="sum",
        )

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Add a batch.

        Args:
            preds: labels ``int[B, H, W]`` (the target's shape) or logits ``float[B, C, H, W]``.
            target: train indices ``int[B, H, W]``, ``ignore_index`` for pixels to leave out.
        """
        if not isinstance(target, Tensor):  # numpy: count on the metric's device
            target = _to_tensor(target, "target").to(self.confmat.device)
        conf = confusion_matrix(preds, target, self.num_classes, self.ignore_index)
        self.confmat += conf.to(self.confmat.device)

    def compute(self) -> Tensor:
        """The accumulated ``int64[C, C]`` matrix (synced across ranks)."""
        return self.confmat.clone()


class SemanticMetrics(ConfusionMatrix):
    """Same state as :class:`ConfusionMatrix`; ``compute()`` returns the :func:`semantic_metrics` dict.

    Per-class figures are ``float64[C]`` CPU tensors, scalars are python floats, and the dict also
    holds ``confmat`` (the synced ``int64[C, C]`` matrix) and ``definitions``. Not for ``self.log``
    (a dict, not a tensor): log its scalars instead.
    """

    def compute(self) -> dict[str, Any]:  # type: ignore[override]
        """The :func:`semantic_metrics` dict of the accumulated matrix, plus ``confmat``."""
        conf = self.confmat.clone()
        return {"confmat": conf, **semantic_metrics(conf)}
