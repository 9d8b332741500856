"""Per-image scores of a validation (``per_image.csv``): pure torch per batch, streamed to disk.

One row per image with the columns of ANALYSIS.md, in this order::

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

import csv
import heapq
import math
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

import torch
import torch.nn.functional as F
from torch import Tensor

from segval.analysis.boundary import _void_and_check
from segval.analysis.functional import _check_ignore_index
from segval.io import atomic_path

__all__ = [
    "BASE_COLUMNS",
    "PerImageCsvWriter",
    "merge_parts",
    "per_image_columns",
    "per_image_confusion",
    "per_image_scores",
    "read_per_image_csv",
]

#: the columns before the per-class ``disagree_<metric_name>`` ones
BASE_COLUMNS = (
    "image_id",
    "pixels",
    "mIoU",
    "pixel_acc",
    "label_quality",
    "top_confused_gt",
    "top_confused_pred",
    "top_confused_pixels",
)
_INT_COLUMNS = {"image_id", "pixels", "top_confused_pixels"}
_NAME_COLUMNS = {"top_confused_gt", "top_confused_pred"}


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


# ------------------------------------------------------------------------------------------ CSV
def per_image_columns(metric_names: Sequence[str]) -> list[str]:
    """The header of ``per_image.csv`` for classes named (as metric keys) ``metric_names``."""
    return [*BASE_COLUMNS, *(f"disagree_{n}" for n in metric_names)]


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        return "nan" if math.isnan(x) else repr(x)
    return str(x)


class PerImageCsvWriter:
    """Stream per-image rows to ``path``: a temporary file beside it, renamed into place on ``close()``.

    Rows are written as they come (nothing is kept in memory). Used as a context manager, an
    exception removes the temporary file and leaves ``path`` as it was.

    Args:
        path: the CSV to produce.
        class_names: C names in train-index order (written in the ``top_confused_*`` columns).
        metric_names: C names used in the ``disagree_<name>`` headers (default: ``class_names``
            with "/" replaced by "_", as ``SegmentationModule.metric_names``).
    """

    def __init__(self, path: str | os.PathLike, class_names: Sequence[str],
                 metric_names: Sequence[str] | None = None) -> None:
        self.path = Path(path)
        self.class_names = list(class_names)
        self.metric_names = list(metric_names) if metric_names is not None else [
            n.replace("/", "_") for n in self.class_names
        ]
        if len(self.metric_names) != len(self.class_names):
            raise ValueError(f"metric_names has {len(self.metric_names)} names for {len(self.class_names)} classes")
        self.columns = per_image_columns(self.metric_names)
        self.rows_written = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        self._tmp = Path(tmp)
        self._file: TextIO | None = os.fdopen(fd, "w", encoding="utf-8", newline="")
        self._csv = csv.writer(self._file)
        self._csv.writerow(self.columns)

    def write_rows(self, image_ids: Iterable[Any], rows: Sequence[dict[str, Any]]) -> None:
        """Append the rows of :func:`per_image_scores` for these image ids (same order and length)."""
        if self._file is None:
            raise ValueError(f"{self.path}: the writer is closed")
        ids = [int(i) for i in (image_ids.tolist() if isinstance(image_ids, Tensor) else image_ids)]
        if len(ids) != len(rows):
            raise ValueError(f"{len(ids)} image ids for {len(rows)} rows")
        c = len(self.class_names)
        for image_id, row in zip(ids, rows):
            if len(row["disagree"]) != c:
                raise ValueError(f"image {image_id}: {len(row['disagree'])} disagree counts for {c} classes")
            gt, pred = row["top_confused_gt"], row["top_confused_pred"]
            self._csv.writerow(
                [
                    image_id,
                    row["pixels"],
                    _fmt(row["mIoU"]),
                    _fmt(row["pixel_acc"]),
                    _fmt(row["label_quality"]),
                    "" if gt is None else self.class_names[gt],
                    "" if pred is None else self.class_names[pred],
                    row["top_confused_pixels"],
                    *row["disagree"],
                ]
            )
        self.rows_written += len(ids)

    def close(self) -> Path:
        """Finish the file and rename it onto ``path`` (atomic); returns ``path``."""
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None
            os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Drop the temporary file; ``path`` is left as it was."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> PerImageCsvWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _part_rows(path: Path, header: list[str] | None) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    f = open(path, encoding="utf-8", newline="")  # noqa: SIM115 (closed by the generator)
    reader = csv.reader(f)
    own = next(reader, None)
    if own is None:
        f.close()
        raise ValueError(f"{path}: empty part file (no header)")
    if header is not None and own != header:
        f.close()
        raise ValueError(f"{path}: its columns differ from the first part's ({own[:3]}... vs {header[:3]}...)")

    def rows() -> Iterator[tuple[int, list[str]]]:
        with f:
            for row in reader:
                yield int(row[0]), row

    return own, rows()


def _is_sorted(path: Path) -> bool:
    _, rows = _part_rows(path, None)
    last = -math.inf
    for image_id, _ in rows:
        if image_id < last:
            for _ in rows:  # drain: closes the file
                pass
            return False
        last = image_id
    return True


def merge_parts(parts: Sequence[str | os.PathLike], path: str | os.PathLike, *, remove: bool = True) -> int:
    """Merge per-rank part files (same header) into ``path``, sorted by image_id, atomically.

    An image id seen twice is written once (the first row kept): a ``DistributedSampler`` pads
    the last batch of an uneven split with repeats of images that another rank already scored.
    Parts that are each sorted are merged as streams; otherwise their lines are sorted in memory
    (text rows only, a few hundred bytes per image).

    Args:
        parts: the part files (e.g. one per rank).
        path: the merged CSV.
        remove: delete the part files after a successful merge.

    Returns:
        The number of rows written.
    """
    paths = [Path(p) for p in parts]
    if not paths:
        raise ValueError("merge_parts needs at least one part file")
    header, first = _part_rows(paths[0], None)
    streams = [first] + [_part_rows(p, header)[1] for p in paths[1:]]
    if all(_is_sorted(p) for p in paths):
        merged: Iterable[tuple[int, list[str]]] = heapq.merge(*streams, key=lambda r: r[0])
    else:
        merged = sorted((r for s in streams for r in s), key=lambda r: r[0])  # stable: rank order on ties
    n = 0
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        last = None
        for image_id, row in merged:
            if image_id == last:
                continue
            writer.writerow(row)
            last = image_id
            n += 1
    if remove:
        for p in paths:
            p.unlink(missing_ok=True)
    return n


def read_per_image_csv(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of a ``per_image.csv`` as dicts: ints, floats (``nan`` -> NaN), names and empty cells -> None.

    Raises:
        SegvalError: the file has no ``image_id`` column (not a per_image.csv written by segval).
    """
    from segval.errors import SegvalError

    out = []
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or "image_id" not in reader.fieldnames:
            raise SegvalError(f"{path}: no 'image_id' column; is it a per_image.csv written by segval?")
        for row in reader:
            rec: dict[str, Any] = {}
            for key, value in row.items():
                if key in _NAME_COLUMNS or not value:
                    rec[key] = value or None
                elif key in _INT_COLUMNS or key.startswith("disagree_"):
                    rec[key] = int(value)
                else:
                    rec[key] = float(value)
            out.append(rec)
    return out
