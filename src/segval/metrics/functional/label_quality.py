"""Per-image scores of a validation: pure torch per batch (the rows of ``per_image.csv``).

One row per image, in this order (:mod:`segval.metrics.per_image_csv` streams them to disk)::

    image_id, pixels, mIoU, pixel_acc, label_quality, top_confused_gt, top_confused_pred,
    top_confused_pixels, disagree_<metric_name> (one per class)

* ``pixels``: pixels whose target is not ``ignore_index`` (the pixels every other figure uses);
* ``mIoU``: MMSegmentation's nan-mean of per-class IoU over the classes present in the image's
  ground truth or prediction (a class predicted but absent from the ground truth counts as 0);
* ``pixel_acc``: correct / ``pixels``;
* ``label_quality``: cleanlab.segmentation's ``softmin`` image score
  (``rank._get_label_quality_per_image(method="softmin", temperature=0.1)``) of the per-pixel
  self-confidence ``s = softmax(logits)[given label]``, void pixels dropped:
  ``sum(s * exp(-s / T)) / sum(exp(-s / T))``; lower = more likely a label error;
* ``top_confused_*``: the off-diagonal ``(gt, pred)`` pair with most pixels in the image (class
  names; empty with 0 pixels when the image has no error); ties go to the lowest ``gt * C + pred``;
* ``disagree_<name>``: pixels of that ground-truth class predicted as another class.

Figures that have no pixel to be computed on (an image that is all void) are NaN, written ``nan``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from segval.metrics.functional.boundary import _void_and_check
from segval.metrics.functional.semantic import _check_ignore_index

__all__ = ["per_image_confusion", "per_image_scores"]

def _confusion(preds: Tensor, target: Tensor, void: Tensor, num_classes: int) -> Tensor:
    """int64[B, C, C] per-image confusion matrices of checked labels (void pixels dropped)."""
    b = target.shape[0]
    c2 = num_classes * num_classes
    idx = target.long() * num_classes + preds.long()  # (B, H, W); garbage at void pixels, dropped below
    idx += torch.arange(0, b * c2, c2, device=target.device).view(b, 1, 1)  # one block of C*C bins per image
    idx.masked_fill_(void, b * c2)  # void pixels: an extra bin, dropped
    conf = torch.bincount(idx.flatten(), minlength=b * c2 + 1)[: b * c2]
    return conf.view(b, num_classes, num_classes)


def per_image_confusion(preds: Tensor, target: Tensor, num_classes: int, ignore_index: int | None = 255) -> Tensor:
    """One confusion matrix ``conf[b, gt, pred]`` per image, ``int64[B, C, C]``, with one ``bincount``.

    Args:
        preds: labels ``int[B, H, W]`` (values in ``[0, C)`` at non-void pixels).
        target: train indices ``int[B, H, W]``, ``ignore_index`` for void pixels (dropped with
            their predictions).
        num_classes: ``C``.
        ignore_index: void value of the target, or None.

    Raises:
        ValueError: shapes that differ or are not ``[B, H, W]``; labels outside ``[0, C)`` (named).
    """
    if preds.shape != target.shape or target.ndim != 3:
        raise ValueError(f"preds {tuple(preds.shape)} and target {tuple(target.shape)} must both be [B, H, W]")
    preds = preds.to(target.device)
    void = _void_and_check(preds, target, num_classes, _check_ignore_index(ignore_index))
    return _confusion(preds, target, void, num_classes)


def _softmin(log_scores: Tensor, void: Tensor, temperature: float) -> Tensor:
    """float64[B]: per image ``sum(s * w) / sum(w)``, ``w = exp(-s / T)``, ``s = exp(log_scores)``
    over non-void pixels (NaN when there is none).

    ``s`` lies in [0, 1], so ``w`` lies in [exp(-1/T), 1]: in float32 (sums in float64) while that
    cannot underflow (T >= 0.02); below, in float64 with the weights shifted by the image's lowest
    score as cleanlab's ``softmax(shift=True)`` does (the factor cancels in the ratio).
    """
    b = log_scores.shape[0]
    keep = ~void.reshape(b, -1)
    if temperature >= 0.02:
        s = log_scores.reshape(b, -1).float().exp()  # (B, N) self-confidence in [0, 1]
        w = s.mul(-1.0 / temperature).exp_().mul_(keep)  # (B, N), 0 at void
    else:
        s = log_scores.reshape(b, -1).double().exp()
        s_min = s.masked_fill(~keep, math.inf).amin(dim=1, keepdim=True) if s.shape[1] else s.new_zeros(b, 1)
        w = (s - s_min).mul_(-1.0 / temperature).exp_().mul_(keep)
    den = w.sum(dim=1, dtype=torch.float64)
    num = (s * w).sum(dim=1, dtype=torch.float64)
    return torch.where(den > 0, num / den, torch.full_like(den, math.nan))


def per_image_scores(
    logits: Tensor,
    target: Tensor,
    ignore_index: int | None = 255,
    *,
    preds: Tensor | None = None,
    nll: Tensor | None = None,
    temperature: float = 0.1,
) -> list[dict[str, Any]]:
    """The per-image figures of a batch (one dict per image, in batch order).

    Args:
        logits: ``float[B, C, H, W]`` at label resolution.
        target: train indices ``int[B, H, W]``, ``ignore_index`` for void.
        ignore_index: void value (255) or None.
        preds: ``long[B, H, W]`` = ``logits.argmax(1)`` when already computed (saves one argmax).
        nll: ``float[B, H, W]`` = ``-log softmax(logits)[label]`` per pixel when already computed
            (``F.cross_entropy(logits, target, reduction="none")``; any value at void pixels):
            saves the softmax over all the logits, the dominant cost here.
        temperature: softmin temperature of the label-quality score (cleanlab's 0.1).

    Returns:
        ``[{"pixels": int, "mIoU": float, "pixel_acc": float, "label_quality": float,
        "top_confused_gt": int | None, "top_confused_pred": int | None, "top_confused_pixels": int,
        "disagree": list[int] (C)}]``: class *indices*; :class:`PerImageCsvWriter` writes names.

    Example:
        >>> logits = torch.zeros(1, 2, 2, 2)
        >>> logits[0, 1, 0, :] = 5.0  # predicts class 1 on the top row, class 0 (tie -> 0) below
        >>> target = torch.tensor([[[1, 0], [1, 255]]])
        >>> row = per_image_scores(logits, target)[0]
        >>> row["pixels"], round(row["mIoU"], 4), round(row["pixel_acc"], 4), row["disagree"]
        (3, 0.1667, 0.3333, [1, 1])
        >>> row["top_confused_gt"], row["top_confused_pred"], row["top_confused_pixels"]
        (0, 1, 1)
    """
    ignore_index = _check_ignore_index(ignore_index)
    if not isinstance(temperature, (int, float)) or isinstance(temperature, bool) or not temperature > 0:
        raise ValueError(f"temperature must be a number > 0 (cleanlab uses 0.1), got {temperature!r}")
    if logits.ndim != 4 or not logits.is_floating_point():
        raise ValueError(f"logits must be float[B, C, H, W], got {logits.dtype} {tuple(logits.shape)}")
    b, num_classes = logits.shape[:2]
    if tuple(target.shape) != (b, *logits.shape[2:]):
        raise ValueError(
            f"target shape {tuple(target.shape)} does not match logits {tuple(logits.shape)}: "
            f"expected [B, H, W] = {(b, *logits.shape[2:])} (logits at label resolution)"
        )
    if target.is_floating_point() or (preds is not None and preds.is_floating_point()):
        raise ValueError("target and preds must hold integer labels (train indices, 255 = ignore)")
    target = target.to(logits.device)
    if preds is None:
        preds = logits.argmax(dim=1)
    if preds.shape != target.shape:
        raise ValueError(f"preds shape {tuple(preds.shape)} does not match target shape {tuple(target.shape)}")
    preds = preds.to(logits.device)
    void = _void_and_check(preds, target, num_classes, ignore_index)  # (B, H, W)
    conf = _confusion(preds, target, void, num_classes)  # (B, C, C)
    if nll is not None:
        if tuple(nll.shape) != tuple(target.shape):
            raise ValueError(f"nll shape {tuple(nll.shape)} does not match target shape {tuple(target.shape)}")
        log_s = -nll.to(logits.device)  # (B, H, W) log self-confidence
    else:
        # log softmax then gather: the fastest exact route on the CPU (logits scored in >= float32)
        label = target.long().masked_fill(void, 0).unsqueeze(1)  # (B, 1, H, W)
        log_s = F.log_softmax(logits.float(), dim=1).gather(1, label).squeeze(1)  # (B, H, W)
    quality = _softmin(log_s, void, float(temperature)).cpu()  # (B,)

    conf = conf.cpu()
    tp = conf.diagonal(dim1=1, dim2=2)  # (B, C)
    gt = conf.sum(dim=2)  # (B, C)
    pr = conf.sum(dim=1)  # (B, C)
    pixels = gt.sum(dim=1)  # (B,)
    tp_f, gt_f, pr_f = tp.double(), gt.double(), pr.double()
    iou = tp_f / (gt_f + pr_f - tp_f)  # NaN where the class is absent from both
    miou = torch.nanmean(iou, dim=1)  # (B,) NaN when every class is NaN
    acc = tp_f.sum(dim=1) / pixels.double()  # (B,) NaN for an all-void image
    disagree = gt - tp  # (B, C)
    off = conf.clone()
    off.diagonal(dim1=1, dim2=2).zero_()
    top_pixels, top_idx = off.flatten(1).max(dim=1)  # first maximum: lowest gt * C + pred

    rows = []
    for i in range(b):
        n_top = int(top_pixels[i])
        k = int(top_idx[i])
        rows.append(
            {
                "pixels": int(pixels[i]),
                "mIoU": float(miou[i]),
                "pixel_acc": float(acc[i]),
                "label_quality": float(quality[i]),
                "top_confused_gt": k // num_classes if n_top else None,
                "top_confused_pred": k % num_classes if n_top else None,
                "top_confused_pixels": n_top,
                "disagree": disagree[i].tolist(),
            }
        )
    return rows
