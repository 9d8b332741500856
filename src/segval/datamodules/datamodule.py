"""The LightningDataModule of a segval dataset package or a plain COCO export."""

from __future__ import annotations

import logging
import zlib
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch.distributed as dist
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader

from segval.datamodules.dataset import SegmentationDataset, pad_collate
from segval.datamodules.sampler import ResumableDataLoader, ResumableSampler
from segval.datamodules.transforms import Normalize, build_pipeline
from segval.errors import ConfigError

log = logging.getLogger(__name__)

PLAIN_COCO_SPLIT = "train"


class SegmentationDataModule(pl.LightningDataModule):
    """Semantic segmentation batches ``{"image": float[B, 3, H, W], "mask": long[B, H, W], "image_id": long[B]}``.

    Masks hold train indices (taxonomy order) with 255 = ignore. Two sources:

    * a segval dataset package (``root``): splits as the package defines them;
    * a plain COCO export (``annotations`` + ``images``): one split, from which a deterministic
      ``val_fraction`` is held out (whole videos when images carry ``video_id``).

    Args:
        root: dataset package folder (holds dataset.yaml).
        annotations, images: a plain COCO JSON and the folder its ``file_name`` entries are relative to.
        background: plain COCO only: "auto", "none" or a category name (see ``Taxonomy.from_coco_categories``).
        bbox_only: plain COCO only: annotations with a box but no mask: "ignore_box" (255 in the semantic target
            where no annotation lies), "drop" or "error".
        val_fraction: plain COCO only: share held out for validation.
        format: "coco" (decode annotations) or "label_map" (read PNG label maps).
        train_split, val_split: split names in the package.
        batch_size, val_batch_size, num_workers: loader settings (batch size per process); workers persist
            across epochs and validations.
        pin_memory: page-locked batches for asynchronous host-to-GPU copies: True, False or ``"auto"`` (on
            when the trainer runs on a CUDA device).
        prefetch_factor: batches each worker prepares ahead (with ``num_workers > 0``; None: PyTorch's 2).
        max_pixels: images above this pixel count are refused before decoding.
        validate: check every image and annotation of the used splits before training.
        crop_size: (H, W) of training crops (used by the transform configs).
        mean, std: normalisation of 0..1 RGB.
        train_transforms, val_transforms: albumentations steps (config entries or objects).
        exclude_train_ids: image ids of the train split left out of training: a list, or a JSON file holding one
            (cross-fitting: ``segval relabel find find.folds=K`` trains each fold's model without its images).
        task: ``"semantic"`` (batches as above), ``"instance"`` or ``"panoptic"``: batches also carry
            ``"targets"`` (per image ``{"masks": bool[N, H, W], "labels": long[N]}``) and ``"size"``
            from the same loader; the semantic ``"mask"`` is always there, so semantic metrics and the
            analysis callbacks work for every task. Panoptic targets come from the package's
            ``panoptic/`` when present, else from COCO (:mod:`segval.dataset.panoptic`).
    """

    def __init__(
        self,
        root: str | Path | None = None,
        annotations: str | Path | None = None,
        images: str | Path | None = None,
        background: str = "auto",
        bbox_only: str = "ignore_box",
        val_fraction: float = 0.2,
        format: str = "coco",
        train_split: str = "train",
        val_split: str = "val",
        batch_size: int = 4,
        val_batch_size: int | None = None,
        num_workers: int = 0,
        pin_memory: bool | str = False,
        prefetch_factor: int | None = None,
        max_pixels: int = 64_000_000,
        validate: bool = True,
        crop_size: Sequence[int] = (512, 512),
        mean: Sequence[float] = (0.485, 0.456, 0.406),
        std: Sequence[float] = (0.229, 0.224, 0.225),
        train_transforms: Sequence[Any] | None = None,
        val_transforms: Sequence[Any] | None = None,
        task: str = "semantic",
        exclude_train_ids: str | Path | Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        from segval.dataset.taxonomy import TASKS

        if task not in TASKS:
            raise ConfigError(f"task must be one of {list(TASKS)}, got {task!r}")
        self.task = task
        if format not in {"coco", "label_map"}:
            raise ConfigError(f"data.format must be 'coco' or 'label_map', got {format!r}")
        if (annotations is None) != (images is None):
            given, missing = ("annotations", "images") if images is None else ("images", "annotations")
            raise ConfigError(f"data.{given} is set but data.{missing} is not: a plain COCO export needs both "
                              "data.annotations=<file.json> and data.images=<folder the file_name entries are "
                              "relative to>")
        if annotations is None and root is None:
            raise ConfigError("set data.root=<dataset package> or data.annotations=<coco.json> data.images=<folder>")
        if not 0.0 < val_fraction < 1.0:
            raise ConfigError(f"data.val_fraction must be in (0, 1), got {val_fraction}")
        if batch_size < 1:
            raise ConfigError(f"data.batch_size must be >= 1, got {batch_size}")
        self.root = None if root is None else Path(root)
        self.annotations = None if annotations is None else Path(annotations)
        self.images = None if images is None else Path(images)
        self.background = background
        self.bbox_only = bbox_only
        self.val_fraction = val_fraction
        self.format = format
        self.train_split = train_split
        self.val_split = val_split
        self.batch_size = batch_size
        self.val_batch_size = val_batch_size or batch_size
        self.num_workers = num_workers
        if not (isinstance(pin_memory, bool) or str(pin_memory).lower() in {"auto", "true", "false"}):
            raise ConfigError(f"data.pin_memory must be auto, true or false, got {pin_memory!r}")
        if prefetch_factor is not None and int(prefetch_factor) < 1:
            raise ConfigError(f"data.prefetch_factor must be >= 1 or null, got {prefetch_factor}")
        self.pin_memory = pin_memory
        self.prefetch_factor = None if prefetch_factor is None else int(prefetch_factor)
        self.max_pixels = max_pixels
        self.validate = validate
        self.crop_size = tuple(crop_size)
        self.normalize = Normalize(mean, std)
        self.train_transform = build_pipeline(train_transforms)
        self.val_transform = build_pipeline(val_transforms)
        self.package: Any = None
        self.exclude_train_ids = _read_ids(exclude_train_ids)
        self._holdout: dict[str, list[int]] | None = None
        self._validated = False
        #: the split validation runs on when set (segval eval / analyze); else val_split
        self.eval_split: str | None = None
        self.data_train: SegmentationDataset | None = None
        self.data_val: SegmentationDataset | None = None

    # -- the package ---------------------------------------------------------------------------
    @property
    def plain_coco(self) -> bool:
        return self.annotations is not None

    def load(self) -> Any:
        """Open the package (cheap checks only) once; returns it."""
        if self.package is None:
            from segval.dataset.package import DatasetPackage

            if self.plain_coco:
                if self.root is not None:
                    log.info("data.annotations is set: reading the plain COCO export, not data.root=%s", self.root)
                self.package = DatasetPackage.from_coco(
                    self.annotations, self.images, split=PLAIN_COCO_SPLIT, background=self.background,
                    bbox_only=self.bbox_only, max_pixels=self.max_pixels,
                )
                for line in self.package.warnings:  # the export's COCO dialect, one line per kind
                    log.warning("%s: %s", self.annotations, line)
            else:
                self.package = DatasetPackage.open(self.root, max_pixels=self.max_pixels)
                for key, split in (("train_split", self.train_split), ("val_split", self.val_split)):
                    if split not in self.package.splits:
                        raise ConfigError(
                            f"data.{key}={split!r} is not a split of {self.root}/dataset.yaml "
                            f"(splits: {self.package.splits}); set data.{key} to one of them"
                        )
        return self.package

    @property
    def taxonomy(self) -> Any:
        return self.load().taxonomy

    @property
    def num_classes(self) -> int:
        return self.taxonomy.num_classes

    @property
    def class_names(self) -> list[str]:
        return list(self.taxonomy.names)

    def dataset_info(self) -> dict[str, Any]:
        """name, version, source, content hash and taxonomy ids: logged, and stored in checkpoints."""
        from segval.dataset.content_hash import dataset_content_hash

        pkg = self.load()
        return {
            "name": pkg.name,
            "version": str(pkg.version),
            "source": str(self.annotations if self.plain_coco else self.root),
            # sha256 over dataset.yaml, annotations, label maps, panoptic and image bytes (computed once per package)
            "content_hash": dataset_content_hash(pkg),
            "taxonomy_ids": list(self.taxonomy.ids),
            "class_names": self.class_names,
        }

    def _split_and_indices(self, split: str) -> tuple[Any, list[int] | None]:
        pkg = self.load()
        if not self.plain_coco:
            if split not in pkg.splits:
                raise ConfigError(f"split {split!r} is not in the package (splits: {pkg.splits})")
            data = pkg.split(split)
            self._check_format(data)
            self._check_task(data)
            return data, None
        data = pkg.split(PLAIN_COCO_SPLIT)
        self._check_format(data)
        self._check_task(data)
        if self._holdout is None:
            self._holdout = holdout_split(data.images, self.val_fraction)
        if split not in self._holdout:
            raise ConfigError(f"a plain COCO export has the splits {sorted(self._holdout)}, not {split!r}")
        return data, self._holdout[split]

    def _check_format(self, data: Any) -> None:
        if self.format == "label_map" and not data.has_label_maps:
            where = "a plain COCO export has none" if self.plain_coco else f"no {self.root}/label_maps/{data.name}/"
            raise ConfigError(f"data.format=label_map but split {data.name!r} has no label maps ({where}); "
                              "use data.format=coco")

    def _check_task(self, data: Any) -> None:
        if self.task == "instance" and not any(c.isthing for c in data.taxonomy.categories):
            where = self.annotations if self.plain_coco else self.root / "dataset.yaml"
            raise ConfigError(
                f"task=instance needs thing classes, but no category of {where} has isthing: true "
                f"(classes: {data.taxonomy.names}); mark the countable classes isthing: true in the taxonomy, "
                "or use task=semantic"
            )

    def _make_dataset(self, data: Any, transform: Any, idx: list[int] | None) -> SegmentationDataset:
        panoptic = None
        if self.task == "panoptic":
            from segval.dataset.panoptic import PanopticSplit

            panoptic = PanopticSplit.for_split(data, None if self.plain_coco else self.root)
        return SegmentationDataset(data, self.format, transform, self.normalize, idx, task=self.task,
                                   panoptic=panoptic)

    # -- Lightning hooks -------------------------------------------------------------------------
    def prepare_data(self) -> None:
        # rank 0 only: the full check reads every image header and decodes every annotation
        if self.validate and not self._validated:  # once: fit and the validation after it both call this
            from segval.dataset.validate import validate_package

            pkg = self.load()
            if self.plain_coco:
                splits = [PLAIN_COCO_SPLIT]
            elif self.eval_split is not None:
                splits = [self.eval_split]
            else:
                splits = sorted({self.train_split, self.val_split})
            validate_package(pkg, splits=splits)
            self._validated = True

    def evaluate_on(self, split: str) -> None:
        """Make ``split`` the one validation runs on (``segval eval split=...``); checked at once."""
        self._split_and_indices(split)
        self.eval_split = split
        self.data_val = None

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit") and self.data_train is None:
            split, idx = self._split_and_indices("train" if self.plain_coco else self.train_split)
            if self.exclude_train_ids:
                idx = [p for p in (range(len(split.images)) if idx is None else idx)
                       if split.images[p].id not in self.exclude_train_ids]
                if not idx:
                    raise ConfigError(f"data.exclude_train_ids leaves no image of split {split.name!r} to train on")
            self.data_train = self._make_dataset(split, self.train_transform, idx)
        if stage in (None, "fit", "validate") and self.data_val is None:
            name = self.eval_split or ("val" if self.plain_coco else self.val_split)
            split, idx = self._split_and_indices(name)
            self.data_val = self._make_dataset(split, self.val_transform, idx)

    def dataset(self, split: str) -> SegmentationDataset:
        """An evaluation dataset (val transforms) of any split."""
        data, idx = self._split_and_indices(split)
        return self._make_dataset(data, self.val_transform, idx)

    def _loader(self, dataset: SegmentationDataset, batch_size: int, shuffle: bool, drop_last: bool) -> DataLoader:
        if len(dataset) == 0:
            raise ConfigError(f"the {'training' if shuffle else 'evaluation'} split is empty")
        common = dict(
            batch_size=batch_size,
            drop_last=drop_last and len(dataset) >= batch_size,
            num_workers=self.num_workers,
            pin_memory=self._pin_memory(),
            persistent_workers=self.num_workers > 0,
            prefetch_factor=self.prefetch_factor if self.num_workers > 0 else None,
            collate_fn=partial(pad_collate, ignore_index=255),
        )
        if shuffle:
            # training: an order that a resumed run continues exactly (position saved in the checkpoint),
            # every sample augmented from its own seed (the same whatever the workers or the rank)
            return ResumableDataLoader(dataset, sampler=ResumableSampler(dataset), **common)
        sampler = None
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            # evaluation under DDP: every image on exactly one rank (Lightning's DistributedSampler would
            # repeat images to even out the ranks, and they would count twice in the confusion matrix)
            sampler = UnrepeatedDistributedSampler(dataset, shuffle=False)
        return DataLoader(dataset, sampler=sampler, **common)

    def _pin_memory(self) -> bool:
        """``pin_memory`` with ``"auto"`` resolved: on when the attached trainer runs on a CUDA device."""
        value = self.pin_memory
        if isinstance(value, bool) or str(value).lower() != "auto":
            return str(value).lower() == "true" if isinstance(value, str) else value
        trainer = getattr(self, "trainer", None)
        if trainer is not None:
            return trainer.strategy.root_device.type == "cuda"
        return False

    def train_dataloader(self) -> DataLoader:
        assert self.data_train is not None, "setup('fit') first"
        return self._loader(self.data_train, self.batch_size, shuffle=True, drop_last=True)

    def val_dataloader(self) -> DataLoader:
        assert self.data_val is not None, "setup('validate') first"
        return self._loader(self.data_val, self.val_batch_size, shuffle=False, drop_last=False)

    def eval_dataloader(self, split: str) -> DataLoader:
        return self._loader(self.dataset(split), self.val_batch_size, shuffle=False, drop_last=False)


def holdout_split(images: Sequence[Any], val_fraction: float) -> dict[str, list[int]]:
    """Deterministic train/val positions: whole videos (``video_id``) or images, ordered by a hash.

    Returns ``{"train": [...], "val": [...]}``, positions into ``images``; val holds at least one group
    and train at least one when there are two groups or more.
    """
    groups: dict[str, list[int]] = {}
    for pos, rec in enumerate(images):
        key = f"video:{rec.video_id}" if getattr(rec, "video_id", None) is not None else f"image:{rec.id}"
        groups.setdefault(key, []).append(pos)
    keys = sorted(groups, key=lambda k: (zlib.crc32(k.encode()), k))
    # at least one group in val and, with two groups or more, at least one left to train on
    n_val = min(max(1, round(len(keys) * val_fraction)), len(keys) - 1) if len(keys) > 1 else 0
    val_keys = set(keys[:n_val])
    out: dict[str, list[int]] = {"train": [], "val": []}
    for k in sorted(groups, key=lambda k: groups[k][0]):
        out["val" if k in val_keys else "train"].extend(groups[k])
    if not out["val"]:  # a single image: evaluate on what we train on, and say so
        log.warning("only one image/video in the export: validating on the training images")
        out["val"] = list(out["train"])
    return out


def _read_ids(ids: str | Path | Sequence[int] | None) -> frozenset[int]:
    """Image ids from a list, or from a JSON file holding a list (ConfigError naming the file otherwise)."""
    if ids is None:
        return frozenset()
    if isinstance(ids, (str, Path)):
        import json

        path = Path(ids)
        try:
            ids = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise ConfigError(f"data.exclude_train_ids={path}: cannot read a JSON list of image ids ({err})") from None
    try:
        return frozenset(int(i) for i in ids)
    except (TypeError, ValueError):
        raise ConfigError(f"data.exclude_train_ids must be image ids (or a JSON file of them), got {ids!r}") from None
