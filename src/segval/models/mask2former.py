"""Mask2Former adapter on transformers' ``Mask2FormerForUniversalSegmentation`` (Swin backbone).

One model for the three tasks, with the inference of the Mask2Former paper's code (Detectron2
``MaskFormer.semantic_inference`` / ``instance_inference`` / ``panoptic_inference``):

* semantic scores ``S[c, y, x] = sum_q softmax(class_q)[c] * sigmoid(mask_q[y, x])`` (the no-object
  column dropped). The adapter returns ``log S`` as the logits of the contract, so ``argmax`` is
  Mask2Former's semantic prediction and ``softmax`` is ``S`` normalised over the classes, and every
  semantic metric and analysis callback reads them as it reads SegFormer's.
* instances: the top-k (query, class) pairs of thing classes, mask = mask logit > 0, score = class
  probability x mean mask probability inside the mask.
* panoptic: queries whose best class is not no-object and scores above ``object_mask_threshold``,
  pixels given to the query of largest ``score x mask probability``, segments kept when at least
  ``overlap_threshold`` of their own mask survives; stuff segments merged per class.

The model is always built offline from ``Mask2FormerConfig(backbone_config=SwinConfig(...))``
(``backbone="..."`` would contact the hub); pretrained weights come from a local directory or a
cached hub id (:func:`segval.models.pretrained.resolve_pretrained`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from segval.errors import ConfigError
from segval.models.pretrained import label_config, load_failed, resolve_pretrained
from segval.models.speed import set_attention

log = logging.getLogger(__name__)

SWIN_STAGES = ["stage1", "stage2", "stage3", "stage4"]


class Mask2FormerAdapter(nn.Module):
    """Mask2Former with the adapter contract ``(loss, logits[B, C, H, W])`` plus :meth:`predict_instances`.

    Args:
        num_classes: number of classes C (train indices 0..C-1); the model has C + 1 outputs per query
            (the last is "no object").
        class_names: C names, stored as the model's ``id2label``.
        pretrained: None for random init on purpose, else a local directory or a hub id of a
            Mask2Former checkpoint (e.g. ``facebook/mask2former-swin-large-ade-semantic``).
        backbone: ``SwinConfig`` fields (embed_dim, depths, num_heads, window_size, ...); ignored with
            ``pretrained`` (the architecture comes from the weights).
        config: ``Mask2FormerConfig`` fields (num_queries, hidden_dim, decoder_layers,
            train_num_points, ...); with ``pretrained`` only loss / inference fields apply.
        ignore_index: label value of the semantic target left out of the targets (its pixels are
            negative for every mask, as in Mask2Former's semantic training).
        object_mask_threshold, overlap_threshold: panoptic inference thresholds (0.8 / 0.8 as in
            Mask2Former's configs).
        topk_per_image: instances kept per image (100, COCO's maxDets).
        attn_implementation: transformers' attention of the Swin backbone (``"auto"``: eager here, SDPA once
            a CUDA trainer sets the model up; ``"sdpa"``, ``"eager"``, None: the installed default). Mask2Former's pixel decoder (deformable attention) and transformer decoder
            have no attention interface in transformers, so they keep their own implementation.
    """

    #: the training step may ask for the loss only (``need_logits=False``)
    can_skip_logits = True
    #: the sub-config whose attention implementation is switched (the decoders have no attention interface)
    attention_submodel = "backbone_config"

    def __init__(
        self,
        num_classes: int,
        class_names: Sequence[str] | None = None,
        pretrained: str | None = None,
        backbone: Mapping[str, Any] | None = None,
        config: Mapping[str, Any] | None = None,
        ignore_index: int = 255,
        object_mask_threshold: float = 0.8,
        overlap_threshold: float = 0.8,
        topk_per_image: int = 100,
        attn_implementation: str | None = "auto",
    ) -> None:
        super().__init__()
        from transformers import Mask2FormerConfig, Mask2FormerForUniversalSegmentation, SwinConfig

        labels = label_config(num_classes, class_names)
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.object_mask_threshold = float(object_mask_threshold)
        self.overlap_threshold = float(overlap_threshold)
        self.topk_per_image = int(topk_per_image)
        overrides = dict(config or {})
        if "backbone" in overrides or "backbone_config" in overrides:
            raise ConfigError("set the Swin backbone with model.adapter.backbone.<field>=..., not config.backbone "
                              "(a backbone name would be fetched from the hub)")
        if pretrained is None:
            sw = dict(backbone or {})
            sw.setdefault("out_features", SWIN_STAGES)
            cfg = Mask2FormerConfig(backbone_config=SwinConfig(**sw), use_pretrained_backbone=False,
                                    **overrides, **labels)
            self.model = Mask2FormerForUniversalSegmentation(cfg)
        else:
            source, local_only = resolve_pretrained(pretrained)
            keep = {k: v for k, v in overrides.items() if k in {
                "train_num_points", "oversample_ratio", "importance_sample_ratio", "no_object_weight",
                "class_weight", "mask_weight", "dice_weight", "dropout"}}
            try:
                self.model = Mask2FormerForUniversalSegmentation.from_pretrained(
                    source, local_files_only=local_only, ignore_mismatched_sizes=True, use_safetensors=True,
                    **keep, **labels,
                )
            except (OSError, ValueError) as err:
                raise load_failed(str(pretrained), err) from err
            log.info("Mask2Former weights loaded from %s", source)
        #: the configured attention ("auto" resolves per device: :func:`segval.models.speed.attention_for`)
        self.attention_request = attn_implementation
        self.attn_implementation = set_attention(self.model, attn_implementation, submodel=self.attention_submodel)

    def compile_targets(self) -> list[nn.Module]:
        """What ``model.compile`` compiles: backbone + pixel decoder + transformer decoder (the matching loss
        runs SciPy's Hungarian algorithm on the host, so it stays eager)."""
        return [self.model.model]

    # -- targets ------------------------------------------------------------------------------------
    def semantic_targets(self, masks: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """Semantic target long[B, H, W] -> per image one binary mask per present class (ignore left out)."""
        out = []
        for m in masks:
            classes = torch.unique(m)
            classes = classes[classes != self.ignore_index]
            out.append({"masks": m.unsqueeze(0) == classes[:, None, None], "labels": classes})
        return out

    # -- forward ------------------------------------------------------------------------------------
    def _run(
        self, images: torch.Tensor, masks: torch.Tensor | None, targets: Sequence[Mapping[str, torch.Tensor]] | None
    ) -> Any:
        if targets is None and masks is not None:
            targets = self.semantic_targets(masks)
        if targets is None:
            return self.model(pixel_values=images)
        return self.model(
            pixel_values=images,
            mask_labels=[t["masks"].to(images.dtype) for t in targets],
            class_labels=[t["labels"].long() for t in targets],
        )

    def forward(
        self,
        images: torch.Tensor,
        masks: torch.Tensor | None = None,
        targets: Sequence[Mapping[str, torch.Tensor]] | None = None,
        need_logits: bool = True,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Args: images float[B, 3, H, W]; masks long[B, H, W] (255 = ignore) or None; targets (instance /
        panoptic tasks) per image ``{"masks": bool[N, H, W], "labels": long[N]}``, else built from ``masks``;
        need_logits: False skips the semantic scores (the training step uses the loss only).

        Returns: (Mask2Former's matching loss or None, logits float[B, C, H, W] = log semantic scores, or None
        when ``need_logits`` is False).
        """
        out = self._run(images, masks, targets)
        return out.loss, self.semantic_logits(out, images.shape[-2:]) if need_logits else None

    def semantic_logits(self, out: Any, size: Sequence[int]) -> torch.Tensor:
        """log of the semantic scores at ``size`` (B, C, H, W), float32."""
        probs = out.class_queries_logits.float().softmax(-1)[..., :-1]  # (B, Q, C)
        mask_logits = out.masks_queries_logits.float()  # (B, Q, H/4, W/4)
        if self.training:
            # the training step discards the logits: score at 1/4 resolution, upsample the C channels
            seg = torch.einsum("bqc,bqhw->bchw", probs, mask_logits.sigmoid())
            seg = F.interpolate(seg, size=tuple(size), mode="bilinear", align_corners=False)
        else:  # as Mask2Former: upsample the mask logits, then sigmoid
            mask_logits = F.interpolate(mask_logits, size=tuple(size), mode="bilinear", align_corners=False)
            seg = torch.einsum("bqc,bqhw->bchw", probs, mask_logits.sigmoid())
        return torch.log(seg.clamp_min(1e-12))

    @torch.no_grad()
    def predict_instances(
        self,
        images: torch.Tensor,
        masks: torch.Tensor | None = None,
        targets: Sequence[Mapping[str, torch.Tensor]] | None = None,
        *,
        task: str,
        sizes: Sequence[Sequence[int]],
        out_sizes: Sequence[Sequence[int]] | None = None,
        thing: Sequence[bool],
    ) -> tuple[torch.Tensor | None, torch.Tensor, list[dict[str, Any]]]:
        """One forward pass giving the loss, the semantic logits and the instance / panoptic predictions.

        Args:
            images, masks, targets: as :meth:`forward`.
            task: ``"instance"`` or ``"panoptic"``.
            sizes: per image (h, w) of the image inside the padded batch.
            out_sizes: per image (H, W) the predictions are resized to (the original image size);
                default ``sizes``.
            thing: C booleans, True for thing classes.

        Returns:
            ``(loss, logits[B, C, H, W], predictions)``; predictions per image: instance task
            ``{"masks": bool[K, H, W], "labels": long[K], "scores": float[K]}``, panoptic task
            ``{"ids": int32[H, W] (0 = void), "segments": [{"id", "label", "isthing", "score"}]}``.
        """
        if task not in ("instance", "panoptic"):
            raise ValueError(f"task must be 'instance' or 'panoptic', got {task!r}")
        out = self._run(images, masks, targets)
        logits = self.semantic_logits(out, images.shape[-2:])
        thing_t = torch.as_tensor(list(thing), dtype=torch.bool, device=images.device)
        if thing_t.numel() != self.num_classes:
            raise ValueError(f"thing has {thing_t.numel()} entries for {self.num_classes} classes")
        mask_all = F.interpolate(out.masks_queries_logits.float(), size=images.shape[-2:], mode="bilinear",
                                 align_corners=False)  # (B, Q, H, W) at the padded input size
        preds = []
        for b in range(images.shape[0]):
            h, w = (int(v) for v in sizes[b])
            mask_b = mask_all[b, :, :h, :w]
            oh, ow = (int(v) for v in (out_sizes[b] if out_sizes is not None else (h, w)))
            if (oh, ow) != (h, w):
                mask_b = F.interpolate(mask_b[None], size=(oh, ow), mode="bilinear", align_corners=False)[0]
            cls_b = out.class_queries_logits[b].float()
            if task == "instance":
                preds.append(self._instances(cls_b, mask_b, thing_t))
            else:
                preds.append(self._panoptic(cls_b, mask_b, thing_t))
        return out.loss, logits, preds

    def _instances(self, cls: torch.Tensor, mask: torch.Tensor, thing: torch.Tensor) -> dict[str, torch.Tensor]:
        """Mask2Former's instance inference over the thing classes (cls (Q, C+1), mask logits (Q, H, W))."""
        q, c = cls.shape[0], self.num_classes
        scores = cls.softmax(-1)[:, :-1]  # (Q, C)
        scores = scores.masked_fill(~thing[None, :], -1.0)  # stuff classes are never instances
        k = min(self.topk_per_image, q * int(thing.sum()))
        top_scores, top_idx = scores.flatten().topk(k, sorted=True)
        labels = top_idx % c
        query = top_idx // c
        m = mask[query]  # (K, H, W)
        binary = m > 0
        mask_score = (m.sigmoid() * binary).flatten(1).sum(1) / (binary.flatten(1).sum(1) + 1e-6)
        return {"masks": binary, "labels": labels, "scores": top_scores * mask_score}

    def _panoptic(self, cls: torch.Tensor, mask: torch.Tensor, thing: torch.Tensor) -> dict[str, Any]:
        """Mask2Former's panoptic inference (cls (Q, C+1), mask logits (Q, H, W))."""
        scores, labels = cls.softmax(-1).max(-1)
        prob = mask.sigmoid()
        keep = labels.ne(self.num_classes) & (scores > self.object_mask_threshold)
        cur_scores, cur_classes, cur_masks = scores[keep], labels[keep], prob[keep]
        ids = torch.zeros(mask.shape[-2:], dtype=torch.int32, device=mask.device)
        segments: list[dict[str, Any]] = []
        if cur_masks.shape[0] == 0:
            return {"ids": ids, "segments": segments}
        cur_ids = (cur_scores.view(-1, 1, 1) * cur_masks).argmax(0)
        stuff: dict[int, int] = {}
        next_id = 0
        for k in range(cur_classes.shape[0]):
            label = int(cur_classes[k])
            is_thing = bool(thing[label])
            owned = cur_ids == k
            mask_area = int(owned.sum())
            original_area = int((cur_masks[k] >= 0.5).sum())
            m = owned & (cur_masks[k] >= 0.5)
            if mask_area > 0 and original_area > 0 and bool(m.any()):
                if mask_area / original_area < self.overlap_threshold:
                    continue
                if not is_thing and label in stuff:
                    ids[m] = stuff[label]
                    continue
                next_id += 1
                if not is_thing:
                    stuff[label] = next_id
                ids[m] = next_id
                segments.append({"id": next_id, "label": label, "isthing": is_thing, "score": float(cur_scores[k])})
        return {"ids": ids, "segments": segments}

    def param_groups(self) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        """(backbone parameters, pixel decoder + transformer decoder parameters)."""
        body = [p for n, p in self.model.named_parameters() if ".pixel_level_module.encoder." in f".{n}"]
        ids = {id(p) for p in body}
        return body, [p for p in self.model.parameters() if id(p) not in ids]
