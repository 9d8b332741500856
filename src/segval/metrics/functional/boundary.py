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
only, i.e. when the window of the label map ``L`` is *uniform* and does not cross the image
border. So, for every class at once, the boundary of ``(L == c)`` is
``{p : L[p] == c and not uniform(p)}``. A window is uniform when each of its rows and its centre
column are constant, which cumulative sums of the "label changes" between neighbours answer for
every pixel in a few integer ops whatever ``d`` is; then three ``bincount`` calls give the counts.
No per-class
loop, no one-hot, no float, and labels are never combined into an index (they are stored as
uint8 up to 254 classes, where only equality is used). (This is not Detectron2's semantic
shortcut, which min-erodes the label *values* — wrong wherever a class meets a class with a
smaller index — and builds its index in uint8; the tests check every class against an
independent per-class OpenCV implementation.)

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
from torch import Tensor

from segval.metrics.functional.semantic import (
    _check_ignore_index,
    _check_num_classes,
    _format_values,
    _is_integer,
    _to_tensor,
)

__all__ = ["boundary_counts", "boundary_dilation", "boundary_iou_from_counts"]


def _void_and_check(preds: Tensor, target: Tensor, num_classes: int, ignore_index: int | None) -> Tensor:
    """bool[*S] void pixels (``target == ignore_index``) after checking every other label is in ``[0, C)``.

    One ``aminmax`` of each input and a single host sync in the common case; the masked checks run
    only when a value lies outside ``[0, C)`` (void values, or predictions at void pixels).

    Raises:
        ValueError: a target value outside ``[0, C)`` that is not ``ignore_index``, or a predicted
            label outside ``[0, C)`` at a non-void pixel (the values are named).
    """
    void = target == ignore_index if ignore_index is not None else torch.zeros_like(target, dtype=torch.bool)
    if target.numel() == 0:
        return void
    t_min, t_max, p_min, p_max = torch.stack(
        [v.long() for v in (*torch.aminmax(target), *torch.aminmax(preds))]
    ).tolist()
    if t_min < 0 or t_max >= num_classes:
        bad = ((target < 0) | (target >= num_classes)) & ~void
        if bool(bad.any()):
            raise ValueError(
                f"target holds values outside [0, {num_classes}) that are not ignore_index={ignore_index}: "
                f"{_format_values(target[bad])}; check num_classes and that targets are train indices, "
                "not category ids"
            )
    if p_min < 0 or p_max >= num_classes:
        bad = ((preds < 0) | (preds >= num_classes)) & ~void
        if bool(bad.any()):
            raise ValueError(
                f"preds holds labels outside [0, {num_classes}) at non-ignored pixels: {_format_values(preds[bad])}"
            )
    return void


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


def _window_sums(x: Tensor, width: int, dim: int, dtype: torch.dtype) -> Tensor:
    """Sums of ``width`` consecutive entries of the bool tensor ``x`` along ``dim`` (one cumulative sum).

    Entry ``i`` of the result covers entries ``i .. i + width - 1``; the length along ``dim`` is
    ``x.shape[dim] - width + 1``. ``dtype`` must hold ``x.shape[dim]``.
    """
    n = x.shape[dim]
    shape = list(x.shape)
    shape[dim] = n + 1
    s = torch.zeros(shape, dtype=dtype, device=x.device)
    torch.cumsum(x, dim, dtype=dtype, out=s.narrow(dim, 1, n))
    return s.narrow(dim, width, n + 1 - width) - s.narrow(dim, 0, n + 1 - width)


def _non_uniform(labels: Tensor, d: int) -> Tensor:
    """bool[B, K, H, W]: the (2d+1) square window around the pixel crosses the border or holds two values.

    A window inside the image is uniform exactly when each of its rows is constant and its centre
    column is constant. Both are counts of "label changes" between neighbours
    (``labels[x] != labels[x + 1]``) over sliding 1-D windows, computed with cumulative sums:
    exact integer arithmetic, and a cost that does not depend on ``d``. Pixels closer than ``d`` to
    the border are always non-uniform (their window reaches the zero padding of the reference).
    """
    b, k, h, w = labels.shape
    out = torch.ones(b, k, h, w, dtype=torch.bool, device=labels.device)
    if h <= 2 * d or w <= 2 * d:  # no window fits inside the image
        return out
    dt = torch.int16 if max(h, w) < 2**15 else torch.int32  # counts never exceed H or W
    change_x = labels[..., :, 1:] != labels[..., :, :-1]  # (B, K, H, W-1): pair (x, x+1)
    # row y of the window of (y, x) is constant <=> no change among the pairs x-d .. x+d-1
    row_changes = _window_sums(change_x, 2 * d, -1, dt).bool()  # (B, K, H, W-2d), column j <-> x = j + d
    rows_bad = _window_sums(row_changes, 2 * d + 1, -2, dt)  # (B, K, H-2d, W-2d): rows y-d .. y+d
    centre = labels[..., d : w - d]
    change_y = centre[..., 1:, :] != centre[..., :-1, :]  # (B, K, H-1, W-2d): pair (y, y+1) at column x
    col_bad = _window_sums(change_y, 2 * d, -2, dt)  # (B, K, H-2d, W-2d): pairs y-d .. y+d-1
    out[..., d : h - d, d : w - d] = rows_bad.bool() | col_bad.bool()  # counts >= 0: bool() is "> 0"
    return out


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

    preds = preds.to(device)
    void = _void_and_check(preds, target, num_classes, ignore_index)  # (B, H, W)

    # Label maps shifted by one: class c -> c + 1, and C + 1 = "no class" (void in the ground truth,
    # and the prediction at void pixels), so that 0 can mean "not counted" in the bincounts below.
    # Stored in the narrowest dtype holding C + 1: labels are only compared for equality and counted,
    # never combined into an index, so uint8 is exact up to 254 classes.
    dtype = torch.uint8 if num_classes <= 254 else torch.int16 if num_classes < 2**15 - 1 else torch.int32
    labels = torch.empty((target.shape[0], 2, h, w), dtype=dtype, device=device)  # (B, 2, H, W)
    labels[:, 0] = target  # values at void pixels may wrap around here: they are overwritten below
    labels[:, 1] = preds
    labels += 1
    # void -> C + 1 by arithmetic (multiplying by a mask is far faster than masked_fill on the CPU)
    void_l = void.unsqueeze(1).to(dtype)  # (B, 1, H, W) 0 / 1
    labels *= 1 - void_l
    labels += void_l * (num_classes + 1)
    edge = _non_uniform(labels, d)  # (B, 2, H, W)
    edge &= ~void.unsqueeze(1)  # void pixels belong to no class
    gt, pr = labels[:, 0], labels[:, 1]
    gb, pb = edge[:, 0], edge[:, 1]  # boundary pixels of the ground truth / prediction (of class gt / pr)
    both = gb & pb & (gt == pr)

    # masks applied by multiplying with bools: far faster than masked_fill with scattered masks (CPU)
    n = num_classes + 1  # bin 0: pixels not counted; bins 1..C: classes 0..C-1
    g_cnt = torch.bincount((gt * gb).flatten(), minlength=n)[1:n]
    p_cnt = torch.bincount((pr * pb).flatten(), minlength=n)[1:n]
    inter = torch.bincount((gt * both).flatten(), minlength=n)[1:n]
    return inter.long(), (g_cnt + p_cnt - inter).long()


def boundary_iou_from_counts(intersection: Any, union: Any) -> Tensor:
    """float64[C] = intersection / union on the CPU, NaN where the union is 0."""
    inter = _to_tensor(intersection, "intersection").detach().cpu().to(torch.float64)
    union = _to_tensor(union, "union").detach().cpu().to(torch.float64)
    return torch.where(union > 0, inter / union.clamp(min=1), torch.full_like(union, float("nan")))
