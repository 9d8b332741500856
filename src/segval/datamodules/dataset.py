"""A torch Dataset over one split of a dataset package."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from segval.datamodules.transforms import Normalize


class SegmentationDataset(Dataset):
    """Items ``{"image": float[3, H, W], "mask": long[H, W] (train indices, 255 = ignore), "image_id": int}``.

    Args:
        split: a :class:`segval.dataset.package.SplitData`.
        source: ``"coco"`` (decode the split's annotations) or ``"label_map"`` (read its PNG label maps).
        transform: an albumentations ``Compose`` applied to image and mask, or None.
        normalize: uint8 image -> normalised float tensor.
        indices: a subset of the split's images (positions in ``split.images``), or None for all.
    """

    def __init__(self, split: Any, source: str, transform: Any, normalize: Normalize, indices: list[int] | None = None) -> None:
        if source not in {"coco", "label_map"}:
            raise ValueError(f"source must be 'coco' or 'label_map', got {source!r}")
        self.split = split
        self.source = source
        self.transform = transform
        self.normalize = normalize
        self.records = [split.images[i] for i in indices] if indices is not None else list(split.images)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        rec = self.records[index]
        image = self.split.read_image(rec)  # (H, W, 3) uint8
        mask = self.split.semantic_target(rec, source=self.source)  # (H, W) uint8, 255 = ignore
        if self.transform is not None:
            out = self.transform(image=image, mask=mask)
            image, mask = out["image"], out["mask"]
        return {
            "image": self.normalize(image),
            "mask": torch.from_numpy(np.ascontiguousarray(mask)).long(),
            "image_id": int(rec.id),
        }


def pad_collate(items: list[dict[str, Any]], ignore_index: int = 255) -> dict[str, torch.Tensor]:
    """Stack items, padding images with 0 and masks with ``ignore_index`` to the largest H, W."""
    h = max(it["image"].shape[-2] for it in items)
    w = max(it["image"].shape[-1] for it in items)
    images = torch.zeros(len(items), 3, h, w, dtype=items[0]["image"].dtype)
    masks = torch.full((len(items), h, w), ignore_index, dtype=torch.long)
    for i, it in enumerate(items):
        ih, iw = it["image"].shape[-2:]
        images[i, :, :ih, :iw] = it["image"]
        masks[i, :ih, :iw] = it["mask"]
    return {"image": images, "mask": masks, "image_id": torch.tensor([it["image_id"] for it in items])}
