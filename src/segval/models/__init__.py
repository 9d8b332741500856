"""Models: one LightningModule (:class:`SegmentationModule`) and an adapter per architecture.

An adapter maps ``(images[B, 3, H, W], masks[B, H, W] | None)`` to ``(loss | None, logits[B, C, H, W])``
with logits at the label resolution, so the module never branches on the architecture.
"""

from segval.models.module import SegmentationModule

__all__ = ["SegmentationModule"]
