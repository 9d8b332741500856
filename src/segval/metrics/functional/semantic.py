"""Pure-torch semantic segmentation metrics: one confusion matrix, every figure derived from it.

The confusion matrix is ``conf[gt, pred]`` with int64 counts (no float rounding, unlike
MMSegmentation's float32 histograms above 2^24 pixels per class). Every figure follows an upstream
definition exactly so that numbers can be compared with the literature; :data:`METRIC_DEFINITIONS`
says which (the README's "Metrics" section has the table):

* per-class ``IoU``, ``Acc``, ``Dice``, ``Precision`` and ``aAcc``, ``mIoU``, ``mAcc``, ``mDice``:
  MMSegmentation ``IoUMetric`` (means are nan-means; a class predicted but absent from the ground
  truth has IoU 0 and counts in ``mIoU``; a class absent from both is NaN and does not count);
* ``fwIoU`` and ``mIoU_detectron2``: Detectron2 ``SemSegEvaluator`` (main since 2022, which leaves
  classes without ground truth out of its mIoU).

Both functions accept numpy arrays as well as tensors.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["METRIC_DEFINITIONS", "confusion_matrix", "semantic_metrics"]

METRIC_DEFINITIONS: dict[str, str] = {
    "confusion_matrix": "conf[gt, pred], int64 pixel counts; pixels whose target is ignore_index are "
    "dropped together with their predictions",
    "IoU": "MMSegmentation IoUMetric: TP / (GT + pred - TP) per class; NaN when the class is absent "
    "from both ground truth and prediction",
    "Acc": "MMSegmentation IoUMetric: TP / GT per class; NaN when the class has no ground-truth pixel",
    "Dice": "MMSegmentation IoUMetric: 2 TP / (GT + pred) per class; NaN when absent from both",
    "Precision": "MMSegmentation IoUMetric: TP / pred per class; NaN when the class is never predicted",
    "aAcc": "MMSegmentation IoUMetric (= Detectron2 pACC): sum TP / sum GT; NaN with no valid pixel",
    "mIoU": "MMSegmentation IoUMetric: nan-mean of per-class IoU (a class predicted but absent from "
    "the ground truth counts as IoU 0)",
    "mAcc": "MMSegmentation IoUMetric (= Detectron2 mACC): nan-mean of per-class Acc",
    "mDice": "MMSegmentation IoUMetric: nan-mean of per-class Dice",
    "fwIoU": "Detectron2 SemSegEvaluator: sum over classes with GT > 0 of IoU * GT / sum GT; "
    "0.0 with no valid pixel",
    "mIoU_detectron2": "Detectron2 SemSegEvaluator (main, since 2022): mean IoU over classes with "
    "GT > 0 only; NaN with no valid pixel",
}


def _check_num_classes(num_classes: Any) -> int:
    """Return ``num_classes`` as an int, or raise a ValueError naming the argument and value."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or num_classes < 1:
        raise ValueError(f"num_classes must be an integer >= 1, got {num_classes!r}")
    return int(num_classes)


def _check_ignore_index(ignore_index: Any) -> int | None:
    """Return ``ignore_index`` as an int (or None), or raise a ValueError naming the argument."""
    if ignore_index is None:
        return None
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, numbers.Integral):
        raise ValueError(f"ignore_index must be an integer or None, got {ignore_index!r}")
    return int(ignore_index)


def _to_tensor(x: Any, name: str) -> Tensor:
    """Tensor view of a tensor / numpy array / nested sequence (numpy with negative strides is copied)."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, np.ndarray):
        x = np.ascontiguousarray(x)
    try:
        return torch.as_tensor(x)
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"{name} must be a tensor or a numpy array, got {type(x).__name__}: {err}") from err


def _is_integer(t: Tensor) -> bool:
    return not (t.is_floating_point() or t.is_complex())


def _format_values(values: Tensor, limit: int = 10) -> str:
    uniq = torch.unique(values).tolist()
    shown = ", ".join(str(v) for v in uniq[:limit])
    return f"[{shown}{', ...' if len(uniq) > limit else ''}] ({len(uniq)} distinct)"


def confusion_matrix(preds: Any, target: Any, num_classes: int, ignore_index: int | None = 255) -> Tensor:
    """Confusion matrix ``conf[gt, pred]`` of a batch of semantic predictions.

    Pixels whose target equals ``ignore_index`` are dropped together with their predictions (a
    prediction at an ignored pixel may be anything, even out of range). The counts are int64 and
    computed with a single ``torch.bincount``, on the device of ``target``.

    Args:
        preds: predicted labels ``int[*S]`` with the same shape as ``target`` (e.g. ``long[B, H, W]``),
            or logits / scores ``float[B, C, *S]`` for a target ``[B, *S]`` (argmax over dim 1).
            A tensor or a numpy array.
        target: ground-truth train indices ``int[*S]`` (e.g. ``uint8[B, H, W]``), values in
            ``[0, num_classes)`` or ``ignore_index``. A tensor or a numpy array.
        num_classes: number of classes ``C`` (>= 1).
        ignore_index: target value to leave out (255 by default); None keeps every pixel.

    Returns:
        ``int64[C, C]`` on ``target``'s device; row = ground-truth class, column = predicted class.

    Raises:
        ValueError: bad ``num_classes`` / ``ignore_index``; shapes that do not match (both named);
            floating-point target; target values outside ``[0, C)`` that are not ``ignore_index``
            or predicted labels outside ``[0, C)`` (the offending values are named).

    Example:
        >>> target = torch.tensor([[0, 1, 1], [2, 255, 2]])
        >>> preds = torch.tensor([[0, 1, 2], [2, 7, 2]])
        >>> confusion_matrix(preds, target, num_classes=3)
        tensor([[1, 0, 0],
                [0, 1, 1],
                [0, 0, 2]])
        >>> logits = torch.nn.functional.one_hot(torch.tensor([[0, 2]]), 3).permute(0, 2, 1).float()
        >>> confusion_matrix(logits, torch.tensor([[0, 1]]), num_classes=3)  # logits [1, 3, 2]
        tensor([[1, 0, 0],
                [0, 0, 1],
                [0, 0, 0]])
    """
    num_classes = _check_num_classes(num_classes)
    ignore_index = _check_ignore_index(ignore_index)
    preds = _to_tensor(preds, "preds")
    target = _to_tensor(target, "target")

    if not _is_integer(target):
        raise ValueError(
            f"target must hold integer class indices, got dtype {target.dtype}; "
            "convert the label map with .long() (255 = ignore)"
        )
    if _is_integer(preds):
        if preds.shape != target.shape:
            raise ValueError(
                f"preds shape {tuple(preds.shape)} does not match target shape {tuple(target.shape)}: "
                "labels must have the target's shape, logits must be floating point [B, C, *S]"
            )
    else:
        if preds.shape == target.shape:
            raise ValueError(
                f"preds has the target's shape {tuple(target.shape)} but dtype {preds.dtype}: pass integer "
                "labels, or logits float[B, C, *S] with the class dimension at dim 1"
            )
        expected = (*target.shape[:1], num_classes, *target.shape[1:])
        if target.ndim < 1 or tuple(preds.shape) != expected:
            unbatched = tuple(preds.shape) == (num_classes, *target.shape)
            raise ValueError(
                f"logits preds shape {tuple(preds.shape)} does not match target shape {tuple(target.shape)}: "
                f"expected [B, C, *S] = {expected} for num_classes={num_classes}"
                + ("; for one image add the batch dimension: preds[None], target[None]" if unbatched else "")
            )
        preds = preds.argmax(dim=1)  # (B, *S)

    device = target.device
    target = target.reshape(-1).long()  # (N,)
    preds = preds.reshape(-1).to(device=device, dtype=torch.long)  # (N,)
    # Ignored pixels are set to class 0 for the range checks and sent to an extra bin C*C that is
    # dropped: cheaper than boolean indexing (no gather, one bincount over N).
    invalid = (target == ignore_index) if ignore_index is not None else None
    t_chk = target.masked_fill(invalid, 0) if invalid is not None else target
    p_chk = preds.masked_fill(invalid, 0) if invalid is not None else preds
    if target.numel():
        t_min, t_max, p_min, p_max = torch.stack([*torch.aminmax(t_chk), *torch.aminmax(p_chk)]).tolist()
        if t_min < 0 or t_max >= num_classes:
            bad = t_chk[(t_chk < 0) | (t_chk >= num_classes)]
            raise ValueError(
                f"target holds values outside [0, {num_classes}) that are not ignore_index={ignore_index}: "
                f"{_format_values(bad)}; check num_classes, ignore_index, and that targets are train "
                "indices, not category ids"
            )
        if p_min < 0 or p_max >= num_classes:
            bad = p_chk[(p_chk < 0) | (p_chk >= num_classes)]
            raise ValueError(
                f"preds holds labels outside [0, {num_classes}) at non-ignored pixels: {_format_values(bad)}"
            )

    idx = t_chk * num_classes + p_chk  # (N,) a new tensor: the inputs are never written to
    if invalid is not None:
        idx.masked_fill_(invalid, num_classes * num_classes)
    conf = torch.bincount(idx, minlength=num_classes * num_classes + 1)[: num_classes * num_classes]
    return conf.reshape(num_classes, num_classes)


def semantic_metrics(confmat: Any) -> dict[str, Any]:
    """Every semantic figure from a confusion matrix ``conf[gt, pred]``.

    Computed in float64 on the CPU. Per-class values are NaN where their denominator is 0.

    Args:
        confmat: ``int[C, C]`` counts (tensor or numpy), row = ground truth, column = prediction,
            e.g. from :func:`confusion_matrix`.

    Returns:
        A dict with

        * per class (``float64[C]`` tensors): ``IoU`` = TP / (GT + pred - TP), ``Acc`` = TP / GT,
          ``Dice`` = 2 TP / (GT + pred), ``Precision`` = TP / pred;
        * per class (``int64[C]``): ``gt_pixels`` (row sums), ``pred_pixels`` (column sums);
        * scalars (python floats): ``aAcc`` (NaN with no valid pixel), ``mIoU``, ``mAcc``, ``mDice``
          (nan-means as MMSegmentation; NaN when every class is NaN), ``fwIoU`` (Detectron2; 0.0 with
          no valid pixel), ``mIoU_detectron2`` (Detectron2 main: mean over classes with GT > 0);
        * ``definitions``: a copy of :data:`METRIC_DEFINITIONS` (figure -> upstream definition).

    Raises:
        ValueError: ``confmat`` is not a square 2-D matrix or holds negative / non-finite counts.

    Example:
        >>> m = semantic_metrics(torch.tensor([[3, 1, 0], [0, 0, 0], [0, 2, 0]]))
        >>> m["IoU"]  # class 1: predicted, never in GT -> 0; class 2: in GT, never right -> 0
        tensor([0.7500, 0.0000, 0.0000], dtype=torch.float64)
        >>> m["Acc"]
        tensor([0.7500,    nan, 0.0000], dtype=torch.float64)
        >>> round(m["mIoU"], 6), round(m["aAcc"], 6), round(m["fwIoU"], 6)
        (0.25, 0.5, 0.5)
    """
    conf = _to_tensor(confmat, "confmat")
    if conf.ndim != 2 or conf.shape[0] != conf.shape[1] or conf.shape[0] < 1:
        raise ValueError(f"confmat must be a square matrix [C, C] with C >= 1, got shape {tuple(conf.shape)}")
    conf = conf.detach().cpu()
    if conf.is_complex():
        raise ValueError(f"confmat must hold real counts, got dtype {conf.dtype}")
    conf = conf.to(torch.float64)
    if not torch.isfinite(conf).all() or (conf < 0).any():
        raise ValueError("confmat must hold finite, non-negative counts")

    tp = conf.diagonal()  # (C,)
    gt = conf.sum(dim=1)  # (C,) ground-truth pixels per class
    pred = conf.sum(dim=0)  # (C,) predicted pixels per class
    # tp <= min(gt, pred), so a zero denominator always meets a zero numerator: 0/0 -> NaN, never inf
    iou = tp / (gt + pred - tp)
    acc = tp / gt
    dice = 2 * tp / (gt + pred)
    precision = tp / pred

    total = gt.sum()
    has_gt = gt > 0
    return {
        "IoU": iou,
        "Acc": acc,
        "Dice": dice,
        "Precision": precision,
        "gt_pixels": gt.round().to(torch.int64),
        "pred_pixels": pred.round().to(torch.int64),
        "aAcc": float(tp.sum() / total),
        "mIoU": float(torch.nanmean(iou)),
        "mAcc": float(torch.nanmean(acc)),
        "mDice": float(torch.nanmean(dice)),
        "fwIoU": float((iou[has_gt] * (gt[has_gt] / total)).sum()) if total > 0 else 0.0,
        "mIoU_detectron2": float(iou[has_gt].mean()) if has_gt.any() else float("nan"),
        "definitions": dict(METRIC_DEFINITIONS),
    }
