"""Propagate an item's mask through its video with ``Sam2VideoModel``; disagreeing frames join the queue.

For a queue item in a video (``video_id`` set) whose mask is known (its SAM 2 proposal, the
corrected mask, or else the current annotation), the mask is the prompt on the item's frame and
SAM 2's memory carries it ``window`` frames forward and backward. On every other frame the
propagated mask is compared with the label: the best-IoU annotation of the item's class there
(IoU 0 when the class is not labelled). A frame where the IoU is under ``min_iou`` (0.5, the
seed's temporal threshold) becomes a new queue item (``evidence.kind = "propagation"``); items
whose evidence is a class change are not propagated (their mask is right, their class is not). A frame
where SAM 2 says the object is gone (object score logit <= 0, e.g. it left the frame) gives an
empty propagated mask, and agrees with a label that has no such object.

Our own code does the frame pre-processing (:func:`segval.relabel.sam2_backend.preprocess`) and
drives transformers' ``Sam2VideoInferenceSession`` directly (its processor needs torchvision).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from segval.errors import ConfigError
from segval.relabel.sam2_backend import build_config, load_model, pick_device, postprocess_masks, preprocess

log = logging.getLogger("segval")

__all__ = ["FramePropagation", "Sam2VideoBackend", "propagate_queue", "propagation_items"]


@dataclass
class FramePropagation:
    """The propagated mask of one frame."""

    image_id: int
    frame_index: int
    mask: np.ndarray  # bool[H, W]
    object_score: float  # > 0: SAM 2 thinks the object is visible


class Sam2VideoBackend:
    """``Sam2VideoModel`` built like :class:`~segval.relabel.sam2_backend.Sam2Backend` (same presets)."""

    def __init__(self, name: str, *, pretrained: str | None = None, architecture: str | None = None,
                 device: str = "auto", seed: int = 0) -> None:
        from transformers import Sam2VideoModel

        self.name = name
        self.device = pick_device(device)
        self.random_init = pretrained is None
        self.model, self.source = load_model(
            Sam2VideoModel, name, pretrained=pretrained, architecture=architecture, seed=seed,
            build=lambda: build_config(architecture, video=True), what=", video")
        self.model.eval().to(self.device)
        self.image_size = int(self.model.config.image_size)

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> Sam2VideoBackend:
        return cls(str(cfg.get("name") or "sam2"), pretrained=cfg.get("pretrained"),
                   architecture=cfg.get("architecture"), device=str(cfg.get("device") or "auto"),
                   seed=int(cfg.get("seed") or 0))

    @torch.no_grad()
    def propagate(self, frames: Sequence[np.ndarray], start: int, mask: np.ndarray,
                  frame_ids: Sequence[tuple[int, int]]) -> list[FramePropagation]:
        """Propagate ``mask`` (bool[H, W] on ``frames[start]``) to every frame of ``frames``.

        Args:
            frames: uint8[H, W, 3] RGB frames in temporal order (same size).
            start: index of the prompted frame.
            mask: the prompt mask.
            frame_ids: ``(image_id, frame_index)`` per frame.

        Returns:
            one :class:`FramePropagation` per frame, in order (the prompted frame included).
        """
        from transformers.models.sam2_video.modeling_sam2_video import Sam2VideoInferenceSession

        if not 0 <= start < len(frames) or len(frame_ids) != len(frames):
            raise ValueError(f"start={start} must index frames ({len(frames)}) and frame_ids must match them")
        h, w = frames[0].shape[:2]
        if mask.shape != (h, w):
            raise ValueError(f"mask shape {mask.shape} != frame size {(h, w)}")
        video = preprocess(frames, self.image_size)  # (T, 3, S, S)
        session = Sam2VideoInferenceSession(video=video, video_height=h, video_width=w, inference_device=self.device,
                                            video_storage_device="cpu", inference_state_device=self.device,
                                            dtype=torch.float32)
        obj_idx = session.obj_id_to_idx(1)
        m = torch.from_numpy(mask.astype(np.float32))[None, None]
        m = torch.nn.functional.interpolate(m, size=(self.image_size, self.image_size), mode="bilinear",
                                            align_corners=False, antialias=True)
        session.add_mask_inputs(obj_idx, start, (m >= 0.5).float().to(self.device))
        session.obj_with_new_inputs = [1]
        outs: dict[int, Any] = {}
        first = self.model(session, frame_idx=start)
        outs[start] = first
        for o in self.model.propagate_in_video_iterator(session, start_frame_idx=start):
            outs[int(o.frame_idx)] = o
        if start > 0:
            for o in self.model.propagate_in_video_iterator(session, start_frame_idx=start, reverse=True):
                outs[int(o.frame_idx)] = o
        res = []
        for t in range(len(frames)):
            o = outs[t]
            score = float(o.object_score_logits.reshape(-1)[0])
            pm = postprocess_masks(o.pred_masks[0, 0].cpu(), h, w).numpy()
            if score <= 0:
                pm = np.zeros_like(pm)
            res.append(FramePropagation(frame_ids[t][0], frame_ids[t][1], pm, score))
        return res


def _best_iou(mask: np.ndarray, others: Sequence[np.ndarray]) -> tuple[float, int | None]:
    best, k = 0.0, None
    for i, o in enumerate(others):
        u = int((mask | o).sum())
        v = float((mask & o).sum() / u) if u else 0.0
        if v > best:
            best, k = v, i
    return best, k


def propagation_items(
    queue: dict[str, Any],
    split: Any,
    backend: Sam2VideoBackend,
    *,
    window: int = 4,
    min_iou: float = 0.5,
    max_items: int = 20,
    masks: Mapping[str, np.ndarray] | None = None,
) -> list[dict[str, Any]]:
    """Propagate up to ``max_items`` video items of ``queue`` and return the new items (see the module doc).

    Args:
        masks: ``{item_id: bool[H, W]}`` prompts (proposals or corrected masks); items without
            one use the union of their annotations.
    """
    from segval.relabel.evidence import videos_of

    if not 0.0 <= min_iou <= 1.0 or window < 1:
        raise ConfigError(f"relabel.video: min_iou must be in [0, 1] and window >= 1, got {min_iou}, {window}")
    videos = videos_of(split.images)
    queued = {(int(it["image_id"]), it.get("category_id")) for it in queue["items"]}
    new: list[dict[str, Any]] = []
    done = 0
    for it in queue["items"]:
        if done >= max_items:
            break
        vid = it.get("video_id")
        if vid is None or it.get("category_id") is None or it["evidence"].get("kind") == "propagation":
            continue
        if it["evidence"].get("temporal_class"):
            continue  # a class change: the mask is right, the class is not; propagating it shows nothing
        recs = videos.get(int(vid), [])
        pos = next((k for k, r in enumerate(recs) if r.id == it["image_id"]), None)
        if pos is None or len(recs) < 2:
            continue
        rec = recs[pos]
        prompt = None if masks is None else masks.get(it["item_id"])
        if prompt is None:
            insts = {i.annotation_id: i for i in split.instances(rec)}
            ids = [a for a in it["annotation_ids"] if a in insts]
            if not ids:
                continue
            prompt = np.zeros((rec.height, rec.width), bool)
            for a in ids:
                prompt |= insts[a].mask
        if not prompt.any():
            continue
        lo, hi = max(0, pos - window), min(len(recs), pos + window + 1)
        span = recs[lo:hi]
        frames = [split.read_image(r) for r in span]
        props = backend.propagate(frames, pos - lo, prompt, [(r.id, r.frame_index) for r in span])
        done += 1
        for r, fp in zip(span, props):
            if r.id == rec.id:
                continue
            same = [i.mask for i in split.instances(r) if i.category_id == it["category_id"] and not i.iscrowd]
            if not fp.mask.any() and not same:
                continue  # gone in both: agreement
            iou, k = _best_iou(fp.mask, same)
            if iou >= min_iou or (r.id, it["category_id"]) in queued:
                continue
            queued.add((r.id, it["category_id"]))
            ys, xs = np.nonzero(fp.mask) if fp.mask.any() else (np.array([]), np.array([]))
            region = ([float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)]
                      if xs.size else None)
            ann_ids = []
            if k is not None:
                ann_ids = [i.annotation_id for i in split.instances(r)
                           if i.category_id == it["category_id"] and np.array_equal(i.mask, same[k])][:1]
            new.append({
                "rank": 0, "item_id": f"{r.id}:prop{it['item_id'].replace(':', '-')}", "image_id": r.id,
                "file_name": r.file_name, "video_id": r.video_id, "frame_index": r.frame_index,
                "class": it.get("class"), "category_id": it["category_id"], "annotation_ids": ann_ids,
                "region": region,
                "reason": (f"SAM 2 propagated {it.get('class')} from frame {rec.frame_index} (item {it['item_id']}); "
                           f"it overlaps the label with IoU {iou:.2f} < {min_iou:g}"),
                "score": round(float(it["score"]) * (1.0 - iou), 6), "expected_gain": 0.0,
                "evidence": {"kind": "propagation", "temporal_iou": round(iou, 4), "from_item": it["item_id"],
                             "from_frame": rec.frame_index, "object_score": round(fp.object_score, 4),
                             "random_init": backend.random_init},
                "proposal": None,
            })
    return new


def propagate_queue(queue: dict[str, Any], split: Any, backend: Sam2VideoBackend, out_dir: Any, *, window: int,
                    min_iou: float, max_items: int, note: str) -> None:
    """Propagate the video items of ``queue`` from their proposals (``proposals/*.png`` under ``out_dir``) and
    write ``propagation.json``; the disagreeing frames join the queue (re-ranked), unless the model is random
    init (its frames are written for inspection, never queued). Sets ``queue["video_propagation"]``."""
    from pathlib import Path

    from PIL import Image

    from segval.io import write_json

    out = Path(out_dir)
    masks = {}
    for it in queue["items"]:
        p = it.get("proposal")
        if p and p.get("file"):
            masks[it["item_id"]] = np.array(Image.open(out / p["file"])) > 127
    new = propagation_items(queue, split, backend, window=window, min_iou=min_iou, max_items=max_items, masks=masks)
    joined = [] if backend.random_init else new
    queue["items"].extend(joined)
    for r, it in enumerate(queue["items"], 1):
        it["rank"] = r
    write_json(out / "propagation.json", {"model": backend.source, "random_init": backend.random_init,
                                          "note": note, "items": new})
    queue["video_propagation"] = {"frames_disagreeing": len(new), "items_added": len(joined), "window": window,
                                  "min_iou": min_iou, "random_init": backend.random_init, "file": "propagation.json"}
