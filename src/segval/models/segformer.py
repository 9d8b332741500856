"""SegFormer adapter on transformers' ``SegformerForSemanticSegmentation``."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from segval.models.pretrained import label_config, load_failed, resolve_pretrained
from segval.models.speed import set_attention

log = logging.getLogger(__name__)


class SegformerAdapter(nn.Module):
    """SegFormer with the adapter contract ``(loss, logits[B, C, H, W])`` at label resolution.

    SegFormer predicts at 1/4 of the input resolution; logits are upsampled bilinearly to the size
    of the images (= labels) before the loss and the metrics.

    Args:
        num_classes: number of classes C (train indices 0..C-1).
        class_names: C names, stored as the model's ``id2label``.
        pretrained: None for random init on purpose, else a local directory or a hub id.
        config: ``SegformerConfig`` fields (depths, hidden_sizes, ...); with ``pretrained`` only
            fields given here override the pretrained config.
        ignore_index: label value left out of the loss.
        attn_implementation: transformers' attention for the efficient self-attention (``"auto"``: eager
            here, SDPA once a CUDA trainer sets the model up; ``"sdpa"``: PyTorch's fused
            ``scaled_dot_product_attention``; ``"eager"``: the explicit matmul / softmax; None: the installed
            transformers' default).
    """

    def __init__(
        self,
        num_classes: int,
        class_names: Sequence[str] | None = None,
        pretrained: str | None = None,
        config: Mapping[str, Any] | None = None,
        ignore_index: int = 255,
        attn_implementation: str | None = "auto",
    ) -> None:
        super().__init__()
        from transformers import SegformerConfig, SegformerForSemanticSegmentation

        labels = {**label_config(num_classes, class_names), "semantic_loss_ignore_index": ignore_index}
        overrides = dict(config or {})
        self.ignore_index = ignore_index
        if pretrained is None:
            self.model = SegformerForSemanticSegmentation(SegformerConfig(**overrides, **labels))
        else:
            source, local_only = resolve_pretrained(pretrained)
            # architecture fields come from the weights; only non-architecture overrides apply
            keep = {k: v for k, v in overrides.items() if k in {"drop_path_rate", "classifier_dropout_prob"}}
            try:
                self.model = SegformerForSemanticSegmentation.from_pretrained(
                    source,
                    local_files_only=local_only,
                    ignore_mismatched_sizes=True,
                    use_safetensors=True,
                    **keep,
                    **labels,
                )
            except (OSError, ValueError) as err:
                raise load_failed(str(pretrained), err) from err
            log.info("SegFormer weights loaded from %s", source)
        #: the configured attention ("auto" resolves per device: :func:`segval.models.speed.attention_for`)
        self.attention_request = attn_implementation
        self.attn_implementation = set_attention(self.model, attn_implementation)

    def compile_targets(self) -> list[nn.Module]:
        """What ``model.compile`` compiles: the whole adapter (network, upsampling and loss in one graph)."""
        return [self]

    def forward(
        self, images: torch.Tensor, masks: torch.Tensor | None = None
    ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """Args: images float[B, 3, H, W], masks long[B, H, W] (255 = ignore) or None.

        Returns: (cross-entropy loss or None, logits float[B, C, H, W]).
        """
        logits = self.model(pixel_values=images).logits  # (B, C, H/4, W/4)
        logits = F.interpolate(logits, size=images.shape[-2:], mode="bilinear", align_corners=False)
        loss = None
        if masks is not None:
            loss = F.cross_entropy(logits, masks, ignore_index=self.ignore_index)
        return loss, logits

    def param_groups(self) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        """(encoder parameters, decode-head parameters), for a head learning-rate multiplier."""
        head = [p for n, p in self.model.named_parameters() if n.startswith("decode_head")]
        ids = {id(p) for p in head}
        return [p for p in self.model.parameters() if id(p) not in ids], head
