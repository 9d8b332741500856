"""A torch Dataset over one split of a dataset package."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from segval.datamodules.transforms import Normalize
from segval.dataset.taxonomy import TASKS


class SegmentationDataset(Dataset):
    """Items ``{"image": float[3, H, W], "mask": long[H, W] (train indices, 255 = ignore), "image_id": int}``.

    For ``task="instance"`` / ``"panoptic"`` an item also holds ``"instance_masks": bool[N, H, W]``,
    ``"instance_labels": long[N]`` (train indices) and ``"size": (H, W)``, transformed with the image
    (albumentations ``masks=``): instance = the non-crowd instances of thing classes (crowd ones are
    left out, as Detectron2 does; COCOeval ignores predictions on them), panoptic = the non-crowd
    segments of :class:`~segval.dataset.panoptic.PanopticSplit` (things + stuff).

    Args:
        split: a :class:`segval.dataset.package.SplitData`.
        source: ``"coco"`` (decode the split's annotations) or ``"label_map"`` (read its PNG label maps).
        transform: an albumentations ``Compose`` applied to image and mask, or None.
        normalize: uint8 image -> normalised float tensor.
        indices: a subset of the split's images (positions in ``split.images``), or None for all.
        task: ``"semantic"``, ``"instance"`` or ``"panoptic"``.
        panoptic: the split's :class:`~segval.dataset.panoptic.PanopticSplit` (panoptic task; built
            from COCO when None).
    """

    def __init__(
        self, split: Any, source: str, transform: Any, normalize: Normalize, indices: list[int] | None = None,
        task: str = "semantic", panoptic: Any = None,
    ) -> None:
        if source not in {"coco", "label_map"}:
            raise ValueError(f"source must be 'coco' or 'label_map', got {source!r}")
        if task not in TASKS:
            raise ValueError(f"task must be one of {list(TASKS)}, got {task!r}")
        self.task = task
        if task == "panoptic" and panoptic is None:
            from segval.dataset.panoptic import PanopticSplit

            panoptic = PanopticSplit(split)
        self.panoptic = panoptic
        self._thing = {c.id for c in split.taxonomy.categories if c.isthing}
        self._index = {c: split.taxonomy.index_of(c) for c in split.taxonomy.ids}
        self.split = split
        self.source = source
        self.transform = transform
        self.normalize = normalize
        self.records = [split.images[i] for i in indices] if indices is not None else list(split.images)
        self._seeded_for: tuple[int, int | None] | None = None  # (pid, worker id) the transform was seeded in

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        """``key``: a position, or ``(position, augmentation seed)`` as
        :class:`~segval.datamodules.sampler.ResumableSampler` yields them (the transform is then seeded
        per sample, so augmentations follow the data order, not the worker or the process)."""
        index, seed = key if isinstance(key, tuple) else (key, None)
        rec = self.records[index]
        image = self.split.read_image(rec)  # (H, W, 3) uint8
        mask = self.split.semantic_target(rec, source=self.source)  # (H, W) uint8, 255 = ignore
        if self.task != "semantic":
            return self._with_instances(rec, image, mask, seed)
        if self.transform is not None:
            self._seed_transform(seed)
            out = self.transform(image=image, mask=mask)
            image, mask = out["image"], out["mask"]
        return {
            "image": self.normalize(image),
            "mask": torch.from_numpy(np.ascontiguousarray(mask)).long(),
            "image_id": int(rec.id),
        }

    # -- instance / panoptic targets ---------------------------------------------------------------
    def instance_targets(self, rec: Any) -> tuple[np.ndarray, np.ndarray]:
        """The task's per-image targets: ``(masks uint8[N, H, W] of 0/1, labels int64[N] train indices)``."""
        if self.task == "instance":
            pairs = [(i.mask, i.category_id) for i in self.split.instances(rec)
                     if i.category_id in self._thing and not i.iscrowd and i.mask.any()]
        else:
            ids, segments = self.panoptic.target(rec)
            pairs = [(ids == s["id"], s["category_id"]) for s in segments if not s["iscrowd"]]
        masks = np.zeros((len(pairs), rec.height, rec.width), dtype=np.uint8)
        for k, (m, _) in enumerate(pairs):
            masks[k] = m
        labels = np.array([self._index[c] for _, c in pairs], dtype=np.int64)
        return masks, labels

    def _with_instances(self, rec: Any, image: np.ndarray, mask: np.ndarray, seed: int | None) -> dict[str, Any]:
        masks, labels = self.instance_targets(rec)
        if self.transform is not None:
            self._seed_transform(seed)
            if len(masks):
                out = self.transform(image=image, mask=mask, masks=masks)
                masks = np.asarray(out["masks"]) == 1  # padding fills masks with 255: not the instance
            else:
                out = self.transform(image=image, mask=mask)
                masks = np.zeros((0, *out["mask"].shape), dtype=bool)
            image, mask = out["image"], out["mask"]
        keep = masks.reshape(len(masks), -1).any(axis=1)  # instances cropped away are no target
        return {
            "image": self.normalize(image),
            "mask": torch.from_numpy(np.ascontiguousarray(mask)).long(),
            "image_id": int(rec.id),
            "instance_masks": torch.from_numpy(np.ascontiguousarray(masks[keep])).bool(),
            "instance_labels": torch.from_numpy(labels[keep]),
            "size": tuple(mask.shape),
        }

    def coco_ground_truth(self, image_ids: Sequence[int] | None = None) -> dict[str, Any]:
        """COCO ground truth of the thing classes for COCOeval (see :func:`segval.metrics.functional.instance`)."""
        from segval.metrics.functional.instance import coco_ground_truth

        recs = self.records if image_ids is None else [self.split.image(int(i)) for i in image_ids]
        return coco_ground_truth(self.split, recs)

    def panoptic_ground_truth(self, image_id: int) -> tuple[np.ndarray, list[dict[str, int]]]:
        """``(ids int32[H, W], segments)`` of an image at its original size (PQ ground truth)."""
        if self.panoptic is None:
            from segval.dataset.panoptic import PanopticSplit

            self.panoptic = PanopticSplit(self.split)
        return self.panoptic.target(self.split.image(int(image_id)))

    def _seed_transform(self, seed: int | None = None) -> None:
        """Seed the albumentations pipeline: with ``seed`` when the sample carries one, else once per
        process from torch's seed.

        albumentations 2.0 draws from its own generators, seeded from OS entropy when the
        pipeline is built: forked DataLoader workers would then share one stream (identical
        augmentations in every worker) and ``seed=`` would not make a run reproducible. Each
        worker is seeded from its torch worker seed (which follows ``seed_everything`` and
        changes with every loader iterator), the main process from ``torch.initial_seed()``;
        the distributed rank is mixed in so ranks do not repeat each other's augmentations.
        """
        if not hasattr(self.transform, "set_random_seed"):
            return
        if seed is not None:
            self.transform.set_random_seed(seed)
            self._seeded_for = None
            return
        info = get_worker_info()
        key = (os.getpid(), None if info is None else info.id)
        if self._seeded_for == key:
            return
        base = info.seed if info is not None else torch.initial_seed()
        dist = torch.distributed
        rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        seed = int(np.random.SeedSequence([base % 2**63, rank]).generate_state(1)[0])
        self.transform.set_random_seed(seed)
        self._seeded_for = key


def pad_collate(items: list[dict[str, Any]], ignore_index: int = 255) -> dict[str, Any]:
    """Stack items, padding images with 0 and masks with ``ignore_index`` to the largest H, W.

    Items with instance targets add ``"targets"``: per image ``{"masks": bool[N, H, W] (padded with
    False), "labels": long[N]}``, and ``"size": long[B, 2]`` (each image's size before padding).
    """
    h = max(it["image"].shape[-2] for it in items)
    w = max(it["image"].shape[-1] for it in items)
    images = torch.zeros(len(items), 3, h, w, dtype=items[0]["image"].dtype)
    masks = torch.full((len(items), h, w), ignore_index, dtype=torch.long)
    for i, it in enumerate(items):
        ih, iw = it["image"].shape[-2:]
        images[i, :, :ih, :iw] = it["image"]
        masks[i, :ih, :iw] = it["mask"]
    batch: dict[str, Any] = {"image": images, "mask": masks, "image_id": torch.tensor([it["image_id"] for it in items])}
    if "instance_masks" in items[0]:
        targets = []
        for it in items:
            m = it["instance_masks"]
            padded = torch.zeros((m.shape[0], h, w), dtype=torch.bool)
            padded[:, : m.shape[1], : m.shape[2]] = m
            targets.append({"masks": padded, "labels": it["instance_labels"]})
        batch["targets"] = targets
        batch["size"] = torch.tensor([it["size"] for it in items], dtype=torch.long)
    return batch
