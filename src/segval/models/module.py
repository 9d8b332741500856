"""The LightningModule every architecture trains through."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from segval.metrics.functional.semantic import semantic_metrics
from segval.metrics.functional.instance import evaluate_segm, instance_results
from segval.metrics.instance import gather_results
from segval.metrics.semantic import ConfusionMatrix
from segval.metrics.panoptic import PanopticQualityStats, pq_summary
from segval.dataset.taxonomy import TASKS
from segval.errors import ConfigError, TrainingError
from segval.models.speed import (
    adamw,
    attention_for,
    batch_channels_last,
    compile_module,
    resolve_flag,
    set_attention,
    to_channels_last,
)

log = logging.getLogger(__name__)


def checkpoint_step(path: str | Path) -> int:
    """The global step a Lightning checkpoint was saved at (read safely, memory-mapped)."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    return int(ckpt.get("global_step", 0))


def _plain(obj: Any) -> Any:
    return OmegaConf.to_container(obj, resolve=True) if isinstance(obj, DictConfig) else obj


class SegmentationModule(pl.LightningModule):
    """Semantic segmentation training and evaluation with exact, rank-summed metrics.

    Args:
        num_classes: C, the number of train indices (255 = ignore).
        class_names: C names in train-index order; metrics are logged per name.
        adapter: config of the architecture adapter (``_target_`` + its arguments); it is built here
            with ``num_classes`` and ``class_names``, so hyper-parameters stay plain data and a
            checkpoint loads with ``weights_only=True``.
        optimizer: AdamW settings: lr, weight_decay, betas, head_lr_mult.
        scheduler: polynomial decay per step: power, warmup_steps, min_lr.
        ignore_index: label value left out of loss and metrics.
        dataset: name / version / taxonomy ids of the data the model is trained on (stored in the
            checkpoint so ``segval eval`` can refuse another taxonomy).
        nan_check_interval: a non-finite loss is recorded on the device every step without a
            host sync, and raised every this many steps and always before a validation or a
            checkpoint, so no NaN weights are ever saved.
        task: ``"semantic"``, ``"instance"`` or ``"panoptic"``. Every task trains on the batch's
            targets and keeps the semantic metrics (from the adapter's semantic logits); instance
            and panoptic need an adapter with ``predict_instances`` (Mask2Former) and add COCO AP
            (:mod:`segval.metrics.functional.instance`) or PQ (:mod:`segval.metrics.functional.panoptic`),
            scored against the evaluated dataset's ground truth at the original image size.
        compile: ``torch.compile`` the adapter's network (:meth:`compile_targets` of the adapter, else the
            adapter): ``"auto"`` (on when training on a CUDA device), True or False. A compiler failure
            falls back to eager with one warning (:class:`segval.models.speed.CompiledForward`).
        compile_options: ``torch.compile`` keyword arguments (``mode``, ``backend``, ``dynamic``).
        channels_last: the model's convolution weights and the batch images in ``channels_last`` memory
            format (``"auto"``, True or False); values and results are unchanged.

    ``compile``, ``compile_options`` and ``channels_last`` are how the model runs, not what it is: they are
    not stored in the checkpoint's hyper-parameters, and ``optimizer.fused`` (``"auto"``: on CUDA) picks the
    single-kernel AdamW with the same update rule.
    """

    def __init__(
        self,
        num_classes: int,
        class_names: Sequence[str],
        adapter: Mapping[str, Any],
        optimizer: Mapping[str, Any] | None = None,
        scheduler: Mapping[str, Any] | None = None,
        ignore_index: int = 255,
        dataset: Mapping[str, Any] | None = None,
        nan_check_interval: int = 50,
        task: str = "semantic",
        compile: bool | str = False,
        compile_options: Mapping[str, Any] | None = None,
        channels_last: bool | str = False,
    ) -> None:
        super().__init__()
        adapter, optimizer, scheduler, dataset = map(_plain, (adapter, optimizer, scheduler, dataset))
        class_names = list(_plain(class_names))
        if len(class_names) != num_classes:
            raise ConfigError(f"class_names has {len(class_names)} names for num_classes={num_classes}")
        self.save_hyperparameters(ignore=["compile", "compile_options", "channels_last"])
        for name, value in (("model.compile", compile), ("model.channels_last", channels_last)):
            resolve_flag(value, cuda=False, name=name)  # a bad value fails here, not after the data is loaded
        self.speed = {"compile": compile, "channels_last": channels_last,
                      "compile_options": dict(_plain(compile_options) or {})}
        #: what :meth:`apply_speed_options` switched on: {"compile": bool, "channels_last": bool}
        self.speed_applied: dict[str, bool] | None = None
        self.class_names = class_names
        # names as metric keys: "/" would nest them in W&B ("tv/monitor" -> "tv_monitor")
        self.metric_names = [n.replace("/", "_") for n in class_names]
        self.adapter = instantiate(
            adapter, num_classes=num_classes, class_names=class_names, ignore_index=ignore_index, _convert_="all"
        )
        self.val_confmat = ConfusionMatrix(num_classes, ignore_index=ignore_index)
        self.task = "semantic"
        self.set_task(task)
        self._instance_results: list[dict[str, Any]] = []  # COCO results of this rank (instance task)
        self._evaluated_ids: list[int] = []
        self.val_pq: PanopticQualityStats | None = None
        #: metrics of the last finished validation: semantic_metrics(...) plus "confmat" and "step"
        self.last_metrics: dict[str, Any] | None = None
        self.nan_check_interval = max(1, int(nan_check_interval))
        # first step whose training loss was not finite (-1: none); updated on the device, no sync
        self.register_buffer("first_nonfinite_step", torch.tensor(-1, dtype=torch.long), persistent=False)

    def set_task(self, task: str) -> None:
        """Switch what validation scores (``segval eval task=...``); checks the adapter can do it."""
        if task not in TASKS:
            raise ConfigError(f"task must be one of {list(TASKS)}, got {task!r}")
        if task != "semantic" and not hasattr(self.adapter, "predict_instances"):
            raise ConfigError(
                f"task={task} needs a model that predicts instances (model=mask2former_tiny / mask2former_swin_t / "
                f"mask2former_swin_l); {type(self.adapter).__name__} predicts semantic segmentation only"
            )
        self.task = task

    # -- speed options -------------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        self.apply_speed_options(self.trainer.strategy.root_device.type == "cuda")

    def apply_speed_options(self, cuda: bool) -> dict[str, bool]:
        """Switch on ``channels_last`` and ``torch.compile`` as configured (``"auto"`` = ``cuda``); once per module."""
        if self.speed_applied is not None:
            return self.speed_applied
        compile_on = resolve_flag(self.speed["compile"], cuda=cuda, name="model.compile")
        channels_last = resolve_flag(self.speed["channels_last"], cuda=cuda, name="model.channels_last")
        request = getattr(self.adapter, "attention_request", None)
        if request is not None and attention_for(request, cuda=cuda) != attention_for(request, cuda=False):
            # "auto" on a CUDA device: SDPA instead of the CPU's eager attention (same outputs)
            self.adapter.attn_implementation = set_attention(
                self.adapter.model, attention_for(request, cuda=cuda),
                submodel=getattr(self.adapter, "attention_submodel", None))
        if channels_last:
            to_channels_last(self.adapter)
        if compile_on:
            targets = self.adapter.compile_targets() if hasattr(self.adapter, "compile_targets") else [self.adapter]
            for target in targets:
                compile_module(target, self.speed["compile_options"])
        self.speed_applied = {"compile": compile_on, "channels_last": channels_last}
        log.info("model speed options: %s, attention %s", self.speed_applied,
                 getattr(self.adapter, "attn_implementation", None))
        return self.speed_applied

    def _images(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """``batch["image"]`` float[B, 3, H, W], in ``channels_last`` memory format when that option is on (not
        in ``on_after_batch_transfer``: Lightning warns when a module overrides it next to a DataModule)."""
        if self.speed_applied and self.speed_applied["channels_last"]:
            return batch_channels_last(dict(batch))["image"]
        return batch["image"]

    # -- steps ---------------------------------------------------------------------------------------
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images float[B, 3, H, W] -> logits float[B, C, H, W]."""
        return self.adapter(images)[1]

    def _targets(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        if self.task == "semantic":
            return {}
        if "targets" not in batch:
            raise ConfigError(f"task={self.task} but the batches carry no instance targets: set data.task={self.task} "
                              "too (the data configs follow the top-level task= by default)")
        return {"targets": batch["targets"]}

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> torch.Tensor:
        # the training step discards the logits: an adapter that can skip them (Mask2Former) does
        loss, _ = self.adapter(self._images(batch), batch["mask"], **self._targets(batch), **self._no_logits)
        first = self.first_nonfinite_step
        hit = ~torch.isfinite(loss.detach()) & (first < 0)
        first.copy_(torch.where(hit, torch.full_like(first, self.global_step), first))
        if self.global_step % self.nan_check_interval == 0:
            self.raise_if_nonfinite()
        # not prog_bar=True: Lightning would turn it into a Python float (a host sync) at every step; the
        # progress bar reads it only when it redraws (segval.callbacks.progress.StepProgressBar)
        self.log("train/loss", loss, batch_size=batch["image"].shape[0])
        return loss

    @property
    def _no_logits(self) -> dict[str, bool]:
        return {"need_logits": False} if getattr(self.adapter, "can_skip_logits", False) else {}

    def raise_if_nonfinite(self) -> None:
        """Stop training (naming the step) if a training loss was NaN or infinite (one host sync)."""
        step = int(self.first_nonfinite_step)
        if step >= 0:
            raise TrainingError(
                f"the training loss became NaN or infinite at step {step}; lower model.optimizer.lr, check the "
                "data (`segval data check`), or resume from the last good checkpoint with "
                "ckpt_path=<run>/checkpoints/last.ckpt"
            )

    def on_validation_start(self) -> None:
        if self.trainer.training or self.trainer.state.fn == "fit":
            self.raise_if_nonfinite()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.raise_if_nonfinite()  # never save weights trained through a NaN

    def on_train_end(self) -> None:
        self.raise_if_nonfinite()

    def validation_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> dict[str, torch.Tensor]:
        """Returns ``{"logits": float[B, C, H, W], "preds": long[B, H, W]}`` for the analysis callbacks
        (Lightning hands them to ``on_validation_batch_end`` and keeps nothing)."""
        if self.task == "semantic":
            loss, logits = self.adapter(self._images(batch), batch["mask"])
        else:
            loss, logits = self._instance_step(batch)
        preds = logits.argmax(dim=1)
        self.val_confmat.update(preds, batch["mask"])
        if loss is not None:
            self.log("val/loss", loss, batch_size=batch["image"].shape[0], sync_dist=True)
        return {"logits": logits.detach(), "preds": preds}

    # -- instance / panoptic evaluation ------------------------------------------------------------
    def _eval_dataset(self) -> Any:
        loaders = self.trainer.val_dataloaders
        loader = loaders[0] if isinstance(loaders, (list, tuple)) else loaders
        ds = getattr(loader, "dataset", None)
        if not hasattr(ds, "coco_ground_truth"):
            raise ConfigError(f"task={self.task} evaluates against the dataset's ground truth; the validation "
                              "loader must serve a segval SegmentationDataset")
        return ds

    def _instance_step(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor | None, torch.Tensor]:
        ds = self._eval_dataset()
        tax = ds.split.taxonomy
        ids = [int(i) for i in batch["image_id"]]
        recs = [ds.split.image(i) for i in ids]
        loss, logits, preds = self.adapter.predict_instances(
            self._images(batch), batch["mask"], **self._targets(batch), task=self.task,
            sizes=batch["size"].tolist(), out_sizes=[(r.height, r.width) for r in recs],
            thing=[c.isthing for c in tax.categories],
        )
        self._evaluated_ids.extend(ids)
        if self.task == "instance":
            for i, p in zip(ids, preds):
                self._instance_results.extend(instance_results(i, p, tax.ids))
        else:
            if self.val_pq is None:
                self.val_pq = PanopticQualityStats(tax.ids).to(self.device)
            for i, p in zip(ids, preds):
                gt_ids, gt_segments = ds.panoptic_ground_truth(i)
                segs = [{"id": s["id"], "category_id": tax.ids[s["label"]]} for s in p["segments"]]
                self.val_pq.update(gt_ids, gt_segments, p["ids"], segs)
        return loss, logits

    def _instance_metrics(self) -> dict[str, Any]:
        """AP (instance task) or PQ (panoptic task) of the finished validation, on every rank."""
        ds = self._eval_dataset()
        tax = ds.split.taxonomy
        if self.task == "instance":
            image_ids = sorted(set(gather_results(self._evaluated_ids)))
            results = gather_results(self._instance_results)
            return {"instance": evaluate_segm(ds.coco_ground_truth(image_ids), results)}
        if self.val_pq is None:
            self.val_pq = PanopticQualityStats(tax.ids).to(self.device)
        stats = self.val_pq.compute().cpu()  # summed over ranks
        return {"panoptic": pq_summary(stats, tax.names, [c.isthing for c in tax.categories])}

    def _reset_instance_state(self) -> None:
        self._instance_results, self._evaluated_ids = [], []
        if self.val_pq is not None:
            self.val_pq.reset()

    def on_validation_epoch_start(self) -> None:
        self.val_confmat.reset()
        self._reset_instance_state()

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:  # a few batches only: never mistaken for a validation
            self.val_confmat.reset()
            self._reset_instance_state()
            return
        confmat = self.val_confmat.compute().cpu()  # (C, C) int64, summed over ranks
        self.val_confmat.reset()
        metrics = semantic_metrics(confmat)
        self.last_metrics = {**metrics, "confmat": confmat, "step": int(self.global_step), "task": self.task}
        if self.task != "semantic":
            extra = self._instance_metrics()
            self._reset_instance_state()
            self.last_metrics.update(extra)
            block = extra.get("instance") or extra.get("panoptic")
            for key, value in block.items():
                if key != "per_class" and not key.startswith("n"):
                    self.log(f"val/{key}", float(value), prog_bar=key in ("AP", "PQ"), rank_zero_only=True)
        # scalars; NaN (no ground truth and no prediction anywhere) is logged as NaN, never as 0
        for key in ("mIoU", "mAcc", "aAcc", "fwIoU", "mDice"):
            self.log(f"val/{key}", float(metrics[key]), prog_bar=key == "mIoU", sync_dist=False, rank_zero_only=True)
        for i, name in enumerate(self.metric_names):
            self.log(f"val/iou/{name}", float(metrics["IoU"][i]), rank_zero_only=True)
            self.log(f"val/acc/{name}", float(metrics["Acc"][i]), rank_zero_only=True)

    # -- optimisation ----------------------------------------------------------------------------
    def configure_optimizers(self) -> dict[str, Any]:
        opt = dict(lr=1e-4, weight_decay=0.01, betas=(0.9, 0.999), head_lr_mult=1.0, fused=False) | dict(
            self.hparams.optimizer or {})
        sched = dict(power=1.0, warmup_steps=0, min_lr=0.0) | dict(self.hparams.scheduler or {})
        lr = float(opt["lr"])
        groups: list[dict[str, Any]]
        if hasattr(self.adapter, "param_groups") and float(opt["head_lr_mult"]) != 1.0:
            body, head = self.adapter.param_groups()
            groups = [{"params": body, "lr": lr}, {"params": head, "lr": lr * float(opt["head_lr_mult"])}]
        else:
            groups = [{"params": list(self.adapter.parameters()), "lr": lr}]
        fused = resolve_flag(opt["fused"], cuda=self.device.type == "cuda", name="model.optimizer.fused")
        optimizer = adamw(groups, fused=fused, lr=lr, weight_decay=float(opt["weight_decay"]), betas=tuple(opt["betas"]))
        max_steps = self.trainer.max_steps if self.trainer.max_steps and self.trainer.max_steps > 0 else None
        if max_steps is None:
            max_steps = int(self.trainer.estimated_stepping_batches)
        if not max_steps or max_steps <= 0 or math.isinf(max_steps):
            raise ConfigError("the polynomial schedule needs a finite trainer.max_steps (e.g. trainer.max_steps=40000)")
        power, warmup, min_lr = float(sched["power"]), int(sched["warmup_steps"]), float(sched["min_lr"])

        def factor(step: int) -> float:
            # MMSeg PolyLR: (base - min) * (1 - t / T) ** power + min, t counted per iteration
            poly = (1.0 - min(step, max_steps) / max_steps) ** power
            f = poly * (1.0 - min_lr / lr) + min_lr / lr
            if warmup > 0 and step < warmup:
                f *= (step + 1) / warmup
            return f

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1}}

    # -- checkpoints -----------------------------------------------------------------------------
    @classmethod
    def from_checkpoint(cls, path: str | Path, map_location: str | torch.device = "cpu") -> SegmentationModule:
        """Load a checkpoint written by ``segval train`` safely (``weights_only=True``).

        The adapter is rebuilt with ``pretrained=None`` (its weights come from the checkpoint), so no
        pretrained download is attempted.
        """
        from segval.errors import SegvalError

        path = Path(path)
        if not path.is_file():
            raise SegvalError(f"checkpoint not found: {path}; pass ckpt_path=<run dir>/checkpoints/<file>.ckpt")
        try:
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
        except Exception as err:  # unpickling refused or a corrupt file
            raise SegvalError(f"{path}: cannot read this checkpoint safely ({type(err).__name__}: {err})") from err
        hparams = dict(ckpt.get("hyper_parameters") or {})
        if "adapter" not in hparams or "num_classes" not in hparams:
            raise SegvalError(f"{path}: not a segval checkpoint (no adapter / num_classes hyper-parameters)")
        hparams["adapter"] = {**hparams["adapter"], "pretrained": None}
        model = cls(**hparams)
        model.load_state_dict(ckpt["state_dict"])
        model.loaded_step = int(ckpt.get("global_step", 0))
        return model
