"""A mosaic of the worst images: image | ground truth | prediction | error map, in the taxonomy's colours.

Which images: the ``worst_images`` of the weak classes in ``findings.json`` (weakest class first,
taken in turn), then the lowest ``label_quality`` rows of ``per_image.csv``. Predictions come from
a checkpoint when one is given; without one the mosaic shows image | ground truth and says why.
The mosaic is bounded: at most :data:`MAX_IMAGES` rows, each image downscaled to ``max_side``.

Example:
    >>> import numpy as np
    >>> img = np.zeros((8, 8, 3), np.uint8); gt = np.zeros((8, 8), np.uint8); gt[2:5, 2:5] = 1
    >>> png = render_mosaic([MosaicItem(1, img, gt, gt.copy(), "image 1")], ["bg", "cube"], [(0, 0, 0), (200, 0, 0)])
    >>> png[:4] == b"\\x89PNG"
    True
"""

from __future__ import annotations

import io
import math
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from segval.report.plots import mpl_text

__all__ = [
    "ERROR_COLOR",
    "IGNORE_COLOR",
    "MAX_IMAGES",
    "MosaicItem",
    "colorize",
    "crop_box",
    "error_map",
    "fit",
    "load_items",
    "outline",
    "overlay",
    "predict",
    "render_mosaic",
    "select_worst_images",
]

IGNORE = 255
IGNORE_COLOR = (128, 128, 128)
ERROR_COLOR = (230, 0, 0)
#: hard upper bound on the rows of a mosaic (whatever ``k`` is asked for)
MAX_IMAGES = 12


@dataclass
class MosaicItem:
    """One row of the mosaic.

    Attributes:
        image_id: COCO image id.
        image: uint8[H, W, 3] RGB.
        gt: int[H, W] train indices, 255 = ignore.
        pred: int[H, W] predicted train indices, or None.
        caption: why the image is shown (e.g. ``"disc: most missed pixels"``).
    """

    image_id: int
    image: np.ndarray
    gt: np.ndarray
    pred: np.ndarray | None = None
    caption: str = ""


# ---------------------------------------------------------------------------------------- pixels
def _palette(colors: Sequence[Sequence[int]]) -> np.ndarray:
    """uint8[256, 3]: class colours, then :data:`IGNORE_COLOR` for every other value (255 = ignore)."""
    pal = np.tile(np.asarray(IGNORE_COLOR, dtype=np.uint8), (256, 1))
    if len(colors):
        pal[: len(colors)] = np.asarray(colors, dtype=np.uint8).reshape(-1, 3)
    return pal


def colorize(labels: np.ndarray, colors: Sequence[Sequence[int]]) -> np.ndarray:
    """int[H, W] train indices -> uint8[H, W, 3] taxonomy colours; 255 (and unknown values) grey."""
    lab = np.asarray(labels)
    return _palette(colors)[np.clip(lab, 0, 255).astype(np.uint8)]


def overlay(
    image: np.ndarray,
    labels: np.ndarray,
    colors: Sequence[Sequence[int]],
    *,
    alpha: float = 0.55,
    background_index: int | None = None,
) -> np.ndarray:
    """Blend class colours over ``image`` (uint8[H, W, 3]); the background class stays unpainted.

    Returns:
        uint8[H, W, 3].
    """
    img = np.asarray(image, dtype=np.float32)
    lab = np.asarray(labels)
    paint = np.ones(lab.shape, dtype=bool)
    if background_index is not None:
        paint &= lab != background_index
    col = colorize(lab, colors).astype(np.float32)
    out = img.copy()
    out[paint] = (1 - alpha) * img[paint] + alpha * col[paint]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def error_map(image: np.ndarray, gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Wrong pixels red, ignore pixels grey, correct pixels a dimmed grey copy of the image.

    Returns:
        uint8[H, W, 3].
    """
    gray = np.asarray(image, dtype=np.float32).mean(axis=-1, keepdims=True) * 0.35 + 20.0
    out = np.repeat(gray, 3, axis=-1).astype(np.uint8)
    gt, pred = np.asarray(gt), np.asarray(pred)
    ignore = gt == IGNORE
    out[(gt != pred) & ~ignore] = ERROR_COLOR
    out[ignore] = IGNORE_COLOR
    return out


def outline(image: np.ndarray, mask: np.ndarray, color: Sequence[int], *, thickness: int = 1) -> np.ndarray:
    """Draw the inner boundary of ``mask`` on a copy of ``image``: the mask pixels within ``thickness`` px
    (4-connected) of a pixel outside it or of the image border.

    Args:
        image: uint8[H, W, 3].
        mask: bool[H, W].
        color: RGB.
        thickness: boundary width in pixels (>= 1).

    Returns:
        uint8[H, W, 3].

    >>> m = np.zeros((5, 5), bool); m[1:4, 1:4] = True
    >>> int((outline(np.zeros((5, 5, 3), np.uint8), m, (255, 0, 0))[..., 0] > 0).sum())   # the ring of a 3x3
    8
    """
    m = np.asarray(mask, dtype=bool)
    inner = m.copy()
    for _ in range(max(1, int(thickness))):
        p = np.pad(inner, 1, constant_values=False)
        inner = inner & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    out = np.array(image, dtype=np.uint8, copy=True)
    out[m & ~inner] = np.asarray(color, dtype=np.uint8)
    return out


def crop_box(bbox: Sequence[float], height: int, width: int, *, pad: float = 0.25,
             min_side: int = 24) -> tuple[int, int, int, int]:
    """The window ``(x0, y0, x1, y1)`` (end exclusive, inside the image) around a COCO ``bbox`` [x, y, w, h],
    widened by ``pad`` x its size on each side and to at least ``min_side`` px where the image allows.

    >>> crop_box([10, 10, 4, 4], 100, 100, pad=0.5, min_side=8)
    (8, 8, 16, 16)
    """
    x, y, w, h = (float(v) for v in bbox)
    cx, cy = x + w / 2, y + h / 2
    half_w = max(w * (0.5 + pad), min_side / 2)
    half_h = max(h * (0.5 + pad), min_side / 2)
    x0, x1 = int(np.floor(max(0.0, cx - half_w))), int(np.ceil(min(float(width), cx + half_w)))
    y0, y1 = int(np.floor(max(0.0, cy - half_h))), int(np.ceil(min(float(height), cy + half_h)))
    return x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)


def fit(arr: np.ndarray, side: int, *, nearest: bool) -> np.ndarray:
    """Scale so the longest side is ``side`` px (up or down; nearest neighbour for labels / masks, PIL for
    images: bicubic up, box filter down)."""
    h, w = arr.shape[:2]
    scale = side / max(h, w)
    if scale <= 1:
        return _downscale(arr, side, nearest=nearest)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if nearest:
        ys = np.minimum((np.arange(size[1]) + 0.5) * h / size[1], h - 1).astype(int)
        xs = np.minimum((np.arange(size[0]) + 0.5) * w / size[0], w - 1).astype(int)
        return arr[ys[:, None], xs[None, :]]
    from PIL import Image

    return np.asarray(Image.fromarray(arr).resize(size, Image.Resampling.BICUBIC))


def _downscale(arr: np.ndarray, max_side: int, *, nearest: bool) -> np.ndarray:
    """Shrink so the longest side is at most ``max_side`` (integer stride for labels, PIL box filter for images)."""
    h, w = arr.shape[:2]
    scale = max(h, w) / max_side
    if scale <= 1:
        return arr
    size = (max(1, round(w / scale)), max(1, round(h / scale)))
    from PIL import Image

    if nearest:
        ys = np.minimum((np.arange(size[1]) + 0.5) * h / size[1], h - 1).astype(int)
        xs = np.minimum((np.arange(size[0]) + 0.5) * w / size[0], w - 1).astype(int)
        return arr[ys[:, None], xs[None, :]]
    return np.asarray(Image.fromarray(arr).resize(size, Image.Resampling.BOX))


# ---------------------------------------------------------------------------------------- figure
def render_mosaic(
    items: Sequence[MosaicItem],
    class_names: Sequence[str],
    colors: Sequence[Sequence[int]],
    *,
    background_index: int | None = None,
    max_side: int = 256,
    missing_predictions: str | None = None,
    title: str | None = None,
) -> bytes:
    """Draw the mosaic: one row per item, columns image | GT | prediction | errors (or image | GT).

    Args:
        items: at most :data:`MAX_IMAGES` are drawn (the first ones).
        class_names, colors: the taxonomy's names and RGB colours in train-index order.
        background_index: train index of the background class (not painted over the image).
        max_side: each image is downscaled so its longest side is at most this.
        missing_predictions: why there are no predictions (shown in the figure when no item has one).
        title: figure title.

    Returns:
        PNG bytes.

    Raises:
        ValueError: no items, or an item whose masks do not match its image size.
    """
    items = list(items)[:MAX_IMAGES]
    if not items:
        raise ValueError("render_mosaic needs at least one item")
    with_pred = any(it.pred is not None for it in items)
    cols = ["image", "ground truth", "prediction", "errors (red: wrong, grey: ignore)"] if with_pred else [
        "image", "ground truth"]
    rows = []
    for it in items:
        if it.gt.shape != it.image.shape[:2] or (it.pred is not None and it.pred.shape != it.gt.shape):
            raise ValueError(
                f"image {it.image_id}: image {it.image.shape[:2]}, ground truth {it.gt.shape} and prediction "
                f"{None if it.pred is None else it.pred.shape} must have the same height and width"
            )
        img = _downscale(np.asarray(it.image, dtype=np.uint8), max_side, nearest=False)
        gt = _downscale(np.asarray(it.gt), max_side, nearest=True)
        panels = [img, overlay(img, gt, colors, background_index=background_index)]
        if with_pred:
            if it.pred is None:
                panels += [None, None]
            else:
                pred = _downscale(np.asarray(it.pred), max_side, nearest=True)
                panels += [overlay(img, pred, colors, background_index=background_index), error_map(img, gt, pred)]
        rows.append(panels)

    aspect = max(min(r[0].shape[0] / r[0].shape[1], 2.0) for r in rows)
    cell_w = 2.7
    fig = Figure(figsize=(cell_w * len(cols), len(rows) * (cell_w * aspect + 0.55) + 0.9))
    axes = fig.subplots(len(rows), len(cols), squeeze=False)
    for r, (it, panels) in enumerate(zip(items, rows)):
        for c, panel in enumerate(panels):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if panel is None:
                ax.text(0.5, 0.5, "no prediction", ha="center", va="center", transform=ax.transAxes, fontsize=8)
            else:
                ax.imshow(panel, interpolation="nearest")
            label = cols[c] if c else "\n".join(textwrap.wrap(mpl_text(f"#{r + 1} image {it.image_id}: {it.caption}"),
                                                               48)[:2])
            ax.set_title(label, fontsize=7.5, loc="left" if c == 0 else "center")

    present: set[int] = set()
    for it in items:
        present.update(int(v) for v in np.unique(it.gt) if v != IGNORE)
        if it.pred is not None:
            present.update(int(v) for v in np.unique(it.pred) if v != IGNORE)
    handles = [Patch(facecolor=np.asarray(colors[i]) / 255.0, edgecolor="black", linewidth=0.3,
                     label=mpl_text(class_names[i])) for i in sorted(present) if 0 <= i < len(class_names)]
    handles.append(Patch(facecolor=np.asarray(IGNORE_COLOR) / 255.0, label="ignore"))
    if with_pred:
        handles.append(Patch(facecolor=np.asarray(ERROR_COLOR) / 255.0, label="wrong pixel"))
    fig.legend(handles=handles, loc="lower center", ncol=min(6, len(handles)), fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, 0.0))
    heading = title or "Worst images"
    if not with_pred:
        why = missing_predictions or "no checkpoint"
        heading += "\n" + "\n".join(textwrap.wrap(f"predictions not available: {why}", 90))
    fig.suptitle(mpl_text(heading), fontsize=10)
    fig.subplots_adjust(left=0.02, right=0.98, top=1 - 0.75 / fig.get_figheight(), bottom=0.45 / fig.get_figheight(),
                        hspace=0.35, wspace=0.04)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight", facecolor="white")
    return buf.getvalue()


# ---------------------------------------------------------------------------------------- which images
def _float(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


def select_worst_images(
    findings: Mapping[str, Any] | None,
    per_image: Sequence[Mapping[str, Any]] | None = None,
    k: int = 8,
) -> list[dict[str, Any]]:
    """The images to show: ``[{"image_id", "reason"}]``, at most ``min(k, MAX_IMAGES)``, no repeats.

    First the ``worst_images`` of the weak classes (weakest IoU first, one image of each class in
    turn, in the order findings ranks them), then the rows of ``per_image.csv`` with the lowest
    ``label_quality`` (lower = more likely a label error), then the lowest per-image ``mIoU``.
    """
    k = max(0, min(int(k), MAX_IMAGES))
    picks: dict[int, str] = {}
    weak = [c for c in (findings or {}).get("classes") or [] if c.get("status") == "weak" and c.get("worst_images")]
    weak.sort(key=lambda c: (_float(c.get("IoU")) if _float(c.get("IoU")) is not None else 2.0))
    queues = [[(w, c["name"]) for w in c["worst_images"]] for c in weak]
    depth = 0
    while len(picks) < k and any(depth < len(q) for q in queues):
        for q in queues:
            if depth < len(q) and len(picks) < k:
                w, name = q[depth]
                iid = int(w["image_id"])
                if iid not in picks:
                    reason = str(w.get("reason") or "").strip()
                    picks[iid] = f"{name}: {reason}" if reason else f"worst for {name}"
        depth += 1
    rows = [r for r in per_image or [] if r.get("image_id") is not None]
    for key, what in (("label_quality", "label quality"), ("mIoU", "image mIoU")):
        if len(picks) >= k:
            break
        scored = sorted((r for r in rows if _float(r.get(key)) is not None), key=lambda r: _float(r.get(key)))
        for r in scored:
            if len(picks) >= k:
                break
            iid = int(r["image_id"])
            if iid not in picks:
                picks[iid] = f"low {what} {_float(r.get(key)):.3f}"
    return [{"image_id": iid, "reason": reason} for iid, reason in picks.items()]


# ---------------------------------------------------------------------------------------- pixels of a split
def predict(model: Any, image: Any) -> np.ndarray:
    """Predicted train indices int64[H, W] of one normalised image float[3, H, W] (the model's device)."""
    import torch

    device = next(model.parameters()).device
    with torch.inference_mode():
        logits = model(image.unsqueeze(0).to(device))  # (1, C, H, W)
    return logits.argmax(dim=1)[0].cpu().numpy()


def load_items(
    dataset: Any,
    picks: Sequence[Mapping[str, Any]],
    *,
    model: Any = None,
) -> tuple[list[MosaicItem], list[int]]:
    """Read the picked images through an evaluation dataset (``SegmentationDataModule.dataset(split)``).

    The image shown is the network input with the normalisation undone, so image, ground truth and
    prediction are aligned whatever the evaluation transforms are.

    Args:
        dataset: a :class:`segval.datamodules.dataset.SegmentationDataset` (``records``, ``normalize``).
        picks: ``[{"image_id", "reason"}]`` from :func:`select_worst_images`.
        model: a :class:`segval.models.SegmentationModule` in eval mode, or None (no predictions).

    Returns:
        (items, image ids not in the dataset).
    """
    index = {int(rec.id): i for i, rec in enumerate(dataset.records)}
    items, missing = [], []
    norm = dataset.normalize
    for pick in picks:
        iid = int(pick["image_id"])
        if iid not in index:
            missing.append(iid)
            continue
        sample = dataset[index[iid]]
        x = sample["image"]  # (3, H, W) normalised
        rgb = (x.numpy().transpose(1, 2, 0) + norm.shift) / norm.scale  # undo Normalize
        image = np.clip(rgb + 0.5, 0, 255).astype(np.uint8)
        pred = predict(model, x) if model is not None else None
        items.append(MosaicItem(iid, image, sample["mask"].numpy(), pred, str(pick.get("reason", ""))))
    return items, missing
