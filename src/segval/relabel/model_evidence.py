"""Still-image evidence from one model's predictions on the images it is asked about.

One full-resolution pass of a checkpoint over a split (the eval transforms) gives, per image, the
cleanlab softmin label quality (the same formula as per_image.csv, :func:`segval.metrics.functional.label_quality.
per_image_scores`) and, per annotation:

* ``disagree``: share of the annotation's visible pixels (one pixel in from its outline) the model
  gives to another class; the class it gives them to most is the suggested class (swap pairs);
* ``missing``: connected regions labelled background that the model gives to an object class (drops),
  value = pixels x mean probability of that class, and each region's look (``missing_looks``: colour histogram,
  mask shape, pooled features, as for annotations) so that :mod:`segval.relabel.still` can ask whether it looks
  like annotated objects;
* ``features``: the decoder's last hidden features (before the classifier) averaged over the
  annotation's visible pixels, for :mod:`segval.relabel.appearance`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import torch

from segval.errors import ConfigError
from segval.relabel.annotations import AnnotationScore, missing_regions

__all__ = ["model_evidence"]

_K3 = np.ones((3, 3), np.uint8)


@torch.no_grad()
def model_evidence(split: Any, ckpt: str, *, mean: Sequence[float], std: Sequence[float], background_id: int | None,
                   images: Sequence[Any] | None = None, batch_size: int = 8, min_missing_px: int = 30,
                   features: bool = True, progress: Any = None) -> dict[str, Any]:
    """Returns ``{"label_quality": {image_id: softmin}, "disagree": rows, "selfconf": rows, "missing": rows,
    "missing_looks": [{"colour", "shape", "model"} per missing row, None where too small], "features":
    {(image_id, annotation_id): float32[D]}}`` (see the module doc) for ``images`` (default: every image of
    ``split``).

    Raises:
        ConfigError: the checkpoint's classes are not the split's.
    """
    from segval.metrics.functional.label_quality import per_image_scores
    from segval.models import SegmentationModule

    model = SegmentationModule.from_checkpoint(ckpt).eval()
    tax = split.taxonomy
    if list(model.class_names) != list(tax.names):
        raise ConfigError(f"the checkpoint {ckpt} was trained on the classes {list(model.class_names)} but the dataset "
                          f"has {list(tax.names)}; score it with a run of this taxonomy")
    bg = tax.index_of(background_id) if background_id is not None else None
    feats_out: dict[str, torch.Tensor] = {}
    hook = None
    if features and hasattr(model.adapter, "model") and hasattr(model.adapter.model, "decode_head"):
        clf = model.adapter.model.decode_head.classifier
        hook = clf.register_forward_pre_hook(lambda mod, inp: feats_out.__setitem__("f", inp[0].detach()))
    m = torch.tensor(mean).view(1, 3, 1, 1)
    s = torch.tensor(std).view(1, 3, 1, 1)
    out: dict[str, Any] = {"label_quality": {}, "disagree": [], "selfconf": [], "missing": [], "missing_looks": [],
                           "features": {}}
    recs = sorted(split.images if images is None else images, key=lambda r: r.id)
    batches = range(0, len(recs), batch_size)
    for k in (progress(batches) if progress else batches):
        chunk = recs[k: k + batch_size]
        imgs = torch.stack([torch.from_numpy(split.read_image(r)).permute(2, 0, 1) for r in chunk]).float() / 255
        logits = model((imgs - m) / s)  # (B, C, H, W)
        target = torch.from_numpy(np.stack([split.semantic_target(r) for r in chunk])).long()
        rows = per_image_scores(logits, target)
        probs = logits.softmax(1).numpy()
        preds = probs.argmax(1)  # (B, H, W)
        fmap = feats_out.get("f")  # (B, D, H/4, W/4)
        for b, rec in enumerate(chunk):
            out["label_quality"][rec.id] = rows[b]["label_quality"]
            tgt = target[b].numpy()
            pred = preds[b]
            for inst in split.instances(rec):
                if inst.iscrowd or inst.category_id == background_id:
                    continue
                ci = tax.index_of(inst.category_id)
                vis = inst.mask & (tgt == ci)
                if vis.sum() < 4:
                    continue
                core = cv2.erode(vis.astype(np.uint8), _K3).astype(bool)
                if core.sum() < 4:
                    core = vis
                wrong = core & (pred != ci)
                share = float(wrong.mean() / core.mean()) if core.any() else 0.0
                sugg = Counter(pred[wrong].tolist()).most_common(1)[0][0] if wrong.any() else None
                conf = float(probs[b, ci][core].mean())
                out["selfconf"].append(AnnotationScore(rec.id, inst.annotation_id, inst.category_id, 1.0 - conf,
                                                       {"model_selfconf": round(conf, 4)}))
                out["disagree"].append(AnnotationScore(rec.id, inst.annotation_id, inst.category_id, share,
                                                       {"model_disagree": round(share, 4)},
                                                       None if sugg is None else int(tax.ids[sugg])))
                if fmap is not None:
                    f = _pooled(fmap[b], vis)
                    if f is not None:
                        out["features"][(rec.id, inst.annotation_id)] = f
            if bg is not None:
                cand = ((tgt == bg) & (pred != bg)).astype(np.uint8)
                hsv = None
                for sel, area, cls, (x, y, w, h) in missing_regions(cand, pred, min_missing_px):
                    conf = float(probs[b, cls][sel].mean())
                    out["missing"].append(AnnotationScore(rec.id, None, int(tax.ids[cls]), area * conf,
                                                          {"model_missing_pixels": area, "model_missing_conf": round(conf, 4),
                                                           "region": [x, y, w, h]}, int(tax.ids[cls])))
                    hsv = cv2.cvtColor(split.read_image(rec), cv2.COLOR_RGB2HSV) if hsv is None else hsv
                    out["missing_looks"].append(_look(hsv, sel, None if fmap is None else fmap[b]))
    if hook is not None:
        hook.remove()
    return out


def _pooled(fmap: torch.Tensor, mask: np.ndarray) -> np.ndarray | None:
    """float32[D]: ``fmap`` (D, h, w) averaged over ``mask`` (bool[H, W], resized to h x w by area), or None."""
    fh, fw = fmap.shape[-2:]
    small = cv2.resize(mask.astype(np.float32), (fw, fh), interpolation=cv2.INTER_AREA)
    wsum = float(small.sum())
    if wsum <= 0:
        return None
    return ((fmap * torch.from_numpy(small)[None]).sum((1, 2)) / wsum).numpy().astype(np.float32)


def _look(hsv: np.ndarray, region: np.ndarray, fmap: torch.Tensor | None) -> dict[str, Any] | None:
    """A region's colour histogram, mask shape and pooled features (None: too small to describe)."""
    from segval.relabel.appearance import colour_histogram, mask_shape

    colour, shape = colour_histogram(hsv, region), mask_shape(region)
    if colour is None or shape is None:
        return None
    return {"colour": colour, "shape": shape, "model": None if fmap is None else _pooled(fmap, region)}
