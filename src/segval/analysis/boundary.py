"""Boundary IoU (Cheng et al., CVPR 2021) per class of semantic predictions, in pure torch.

Definition followed (the paper and its reference code, ``bowenc0221/boundary-iou-api``,
``boundary_iou_api/utils/boundary_utils.py``): for each class ``c`` take the binary masks
``G = (target == c)`` and ``P = (pred == c)``; the boundary of a mask is ``mask - erode(mask)``
where the mask is padded by one pixel of zeros and eroded ``d`` times with a 3x3 kernel,
``d = max(1, round(dilation_ratio * sqrt(H**2 + W**2)))``; the boundary IoU of the class is
``|Gb & Pb| / |Gb | Pb|``. Counts of a whole split are sums over images, so a split's value is
``sum(intersection) / sum(union)`` (NaN when the union is 0: the class has no boundary pixel in
the ground truth nor in the prediction anywhere).

How it is computed. Eroding a one-pixel-zero-padded mask ``d`` times with a 3x3 kernel equals a
``(2d+1) x (2d+1)`` min filter whose outside is 0. A pixel of class ``c`` therefore survives the
erosion of ``(L == c)`` exactly when its ``(2d+1)`` window lies inside the image and holds ``c``
only, i.e. when the window of the label map ``L`` is *uniform* (its max equals its min) and does
not cross the image border. So, for every class at once, the boundary of ``(L == c)`` is
``{p : L[p] == c and not uniform(p)}``: one max filter and one min filter of the label map (as
separable ``max_pool2d`` passes over ``[B, 4, H, W]``: ground truth and prediction, each with its
negation) and three ``bincount`` calls per batch, with no per-class loop, no one-hot and no
index narrower than int64. (This is not Detectron2's semantic shortcut, which min-erodes the label
*values* — wrong wherever a class meets a class with a smaller index — and builds its index in
uint8; the tests check every class against an independent per-class OpenCV implementation.)

Ignore pixels (``target == ignore_index``): the reference has no void label. Here an ignored
pixel belongs to no class in the ground truth (it is background of every class mask) *and* the
prediction there is set to "no class" too, so for both masks an ignored region acts exactly like
the outside of the image: mask pixels next to it are boundary pixels of the ground truth and of
the prediction alike, and nothing inside it is ever counted. Padding added by a collate function
with ``ignore_index`` therefore behaves as the image border does in the reference. The dilation
``d`` comes from the size of the tensors passed in (for padded batches, the padded size).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import Metric

from segval.analysis.functional import (
    _check_ignore_index,
    _check_num_classes,
    _format_values,
    _is_integer,
    _to_tensor,
)

__all__ = ["BoundaryIoU", "boundary_counts", "boundary_dilation", "boundary_iou_from_counts"]


def boundary_dilation(height: int, width: int, dilation_ratio: float = 0.02) -> int:
    """Erosion iterations of the reference: ``max(1, round(dilation_ratio * image diagonal))``.

    Python's ``round`` (half to even), as in ``boundary_utils.mask_to_boundary``.

    Example:
        >>> boundary_dilation(240, 320), boundary_dilation(64, 64), boundary_dilation(4, 4)
        (8, 2, 1)
    """
    return max(1, int(round(float(dilation_ratio) * math.sqrt(height**2 + width**2))))


def _check_ratio(dilation_ratio: Any) -> float:
    try:
        ratio = float(dilation_ratio)
    except (TypeError, ValueError):
        ratio = float("nan")
    if isinstance(dilation_ratio, bool) or not ratio > 0 or math.isinf(ratio):
        raise ValueError(f"dilation_ratio must be a finite number > 0 (0.02 in the paper), got {dilation_ratio!r}")
    return ratio


def _non_uniform(labels: Tensor, d: int) -> Tensor:
    """bool[B, K, H, W]: the (2d+1) square window around the pixel crosses the border or holds two values.

    ``labels`` float[B, K, H, W] holds values >= 0; the outside is padded with -1, so a window that
    crosses the border has min -1 != max.
    """
    k = 2 * d + 1
    x = F.pad(labels, (d, d, d, d), value=-1.0)  # (B, K, H+2d, W+2d)
    both = torch.cat([x, -x], dim=1)  # max filter of x and of -x (= -min filter of x)
    both = F.max_pool2d(both, kernel_size=(1, k), stride=1)  # (B, 2K, H+2d, W)
    both = F.max_pool2d(both, kernel_size=(k, 1), stride=1)  # (B, 2K, H, W)
    kk = labels.shape[1]
    return both[:, :kk] != -both[:, kk:]


def boundary_counts(
    preds: Any,
    target: Any,
    num_classes: int,
    ignore_index: int | None = 255,
    dilation_ratio: float = 0.02,
) -> tuple[Tensor, Tensor]:
    """Per-class boundary intersection and union pixel counts of a batch (Boundary IoU paper).

    Args:
        preds: predicted labels ``int[B, H, W]`` (or ``int[H, W]``), values in ``[0, C)`` wherever
            the target is not ``ignore_index``. A tensor or a numpy array.
        target: ground-truth train indices of the same shape, values in ``[0, C)`` or ``ignore_index``.
        num_classes: number of classes ``C`` (>= 1).
        ignore_index: target value of void pixels (255); they belong to no class in the ground
            truth and the prediction there is dropped (see the module docstring); None: no void.
        dilation_ratio: erosion depth as a fraction of the image diagonal (0.02 in the paper).

    Returns:
        ``(intersection, union)``: two ``int64[C]`` tensors on ``target``'s device with, per class
        ``c``, ``|Gb_c & Pb_c|`` and ``|Gb_c | Pb_c|`` summed over the batch. Summing them over
        batches and dividing (:func:`boundary_iou_from_counts`) gives the split's boundary IoU.

    Raises:
        ValueError: bad ``num_classes`` / ``ignore_index`` / ``dilation_ratio``; shapes that differ
            or are not 2-D / 3-D; non-integer inputs; labels outside ``[0, C)`` (named).

    Example:
        >>> target = torch.zeros(1, 6, 6, dtype=torch.long)
        >>> target[0, 1:5, 1:5] = 1  # a 4x4 square of class 1 on class 0
        >>> preds = target.clone()
        >>> preds[0, 1, 1:5] = 0  # the prediction misses the top row of the square
        >>> inter, union = boundary_counts(preds, target, num_classes=2)
        >>> inter.tolist(), union.tolist()  # d = round(0.02 * 8.49) -> 1 (at least 1)
        ([20, 8], [24, 14])
    """
    num_classes = _check_num_classes(num_classes)
    ignore_index = _check_ignore_index(ignore_index)
    ratio = _check_ratio(dilation_ratio)
    preds = _to_tensor(preds, "preds")
    target = _to_tensor(target, "target")
    if not _is_integer(target) or not _is_integer(preds):
        raise ValueError(
            f"preds and target must hold integer labels, got dtypes {preds.dtype} and {target.dtype}; "
            "pass preds = logits.argmax(dim=1)"
        )
    if preds.shape != target.shape or target.ndim not in (2, 3):
        raise ValueError(
            f"preds shape {tuple(preds.shape)} and target shape {tuple(target.shape)} must be equal and "
            "[B, H, W] (or [H, W])"
        )
    if target.ndim == 2:
        preds, target = preds[None], target[None]
    device = target.device
    inter = torch.zeros(num_classes, dtype=torch.int64, device=device)
    if target.numel() == 0:
        return inter, inter.clone()
    h, w = target.shape[-2:]
    d = boundary_dilation(h, w, ratio)

    target = target.long()
    preds = preds.to(device=device, dtype=torch.long)
    void = (target == ignore_index) if ignore_index is not None else torch.zeros_like(target, dtype=torch.bool)
    t_chk, p_chk = target.masked_fill(void, 0), preds.masked_fill(void, 0)
    t_min, t_max, p_min, p_max = torch.stack([*torch.aminmax(t_chk), *torch.aminmax(p_chk)]).tolist()
    if t_min < 0 or t_max >= num_classes:
        bad = t_chk[(t_chk < 0) | (t_chk >= num_classes)]
        raise ValueError(
            f"target holds values outside [0, {num_classes}) that are not ignore_index={ignore_index}: "
            f"{_format_values(bad)}; check num_classes and that targets are train indices"
        )
    if p_min < 0 or p_max >= num_classes:
        bad = p_chk[(p_chk < 0) | (p_chk >= num_classes)]
        raise ValueError(f"preds holds labels outside [0, {num_classes}) at non-ignored pixels: {_format_values(bad)}")
    # C = "no class": void in the ground truth, and the prediction at void pixels
    gt = target.masked_fill(void, num_classes)  # (B, H, W) values in [0, C]
    pr = preds.masked_fill(void, num_classes)  # (B, H, W)

    labels = torch.stack([gt, pr], dim=1).to(torch.float32)  # (B, 2, H, W), exact up to 2^24
    edge = _non_uniform(labels, d)  # (B, 2, H, W)
    gb = edge[:, 0] & ~void  # ground-truth boundary pixels (of the class gt[p])
    pb = edge[:, 1] & ~void  # predicted boundary pixels (of the class pr[p])
    both = gb & pb & (gt == pr)

    dump = num_classes  # masked-out pixels go to an extra bin that is dropped
    n = num_classes + 1
    g_cnt = torch.bincount(gt.masked_fill(~gb, dump).flatten(), minlength=n)[:num_classes]
    p_cnt = torch.bincount(pr.masked_fill(~pb, dump).flatten(), minlength=n)[:num_classes]
    inter = torch.bincount(gt.masked_fill(~both, dump).flatten(), minlength=n)[:num_classes]
    return inter, g_cnt + p_cnt - inter


def boundary_iou_from_counts(intersection: Any, union: Any) -> Tensor:
    """float64[C] = intersection / union on the CPU, NaN where the union is 0."""
    inter = _to_tensor(intersection, "intersection").detach().cpu().to(torch.float64)
    union = _to_tensor(union, "union").detach().cpu().to(torch.float64)
    return torch.where(union > 0, inter / union.clamp(min=1), torch.full_like(union, float("nan")))


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
