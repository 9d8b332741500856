"""A torch Dataset over one split of a dataset package."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

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

    def __init__(
        self, split: Any, source: str, transform: Any, normalize: Normalize, indices: list[int] | None = None
    ) -> None:
        if source not in {"coco", "label_map"}:
            raise ValueError(f"source must be 'coco' or 'label_map', got {source!r}")
        self.split = split
        self.source = source
        self.transform = transform
        self.normalize = normalize
        self.records = [split.images[i] for i in indices] if indices is not None else list(split.images)
        self._seeded_for: tuple[int, int | None] | None = None  # (pid, worker id) the transform was seeded in

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        rec = self.records[index]
        image = self.split.read_image(rec)  # (H, W, 3) uint8
        mask = self.split.semantic_target(rec, source=self.source)  # (H, W) uint8, 255 = ignore
        if self.transform is not None:
            self._seed_transform()
            out = self.transform(image=image, mask=mask)
            image, mask = out["image"], out["mask"]
        return {
            "image": self.normalize(image),
            "mask": torch.from_numpy(np.ascontiguousarray(mask)).long(),
            "image_id": int(rec.id),
        }

    def _seed_transform(self) -> None:
        """Seed the albumentations pipeline once per process from torch's seed.

        albumentations 2.0 draws from its own generators, seeded from OS entropy when the
        pipeline is built: forked DataLoader workers would then share one stream (identical
        augmentations in every worker) and ``seed=`` would not make a run reproducible. Each
        worker is seeded from its torch worker seed (which follows ``seed_everything`` and
        changes with every loader iterator), the main process from ``torch.initial_seed()``;
        the distributed rank is mixed in so ranks do not repeat each other's augmentations.
        """
        info = get_worker_info()
        key = (os.getpid(), None if info is None else info.id)
        if self._seeded_for == key or not hasattr(self.transform, "set_random_seed"):
            return
        base = info.seed if info is not None else torch.initial_seed()
        dist = torch.distributed
        rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        seed = int(np.random.SeedSequence([base % 2**63, rank]).generate_state(1)[0])
        self.transform.set_random_seed(seed)
        self._seeded_for = key


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
