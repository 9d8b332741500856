"""Lightning callbacks of the analysis stage: boundary IoU, per-image scores, the class table.

Each works on real validations only (never during the sanity check) and reads what
``SegmentationModule.validation_step`` returns (``{"logits": float[B, C, H, W], "preds": long[B, H, W]}``)
and the batch (``{"mask": long[B, H, W], "image_id": long[B]}``). Files are written atomically,
by rank 0, into ``dirpath`` (the run directory):

* :class:`BoundaryIoUCallback` -> ``boundary_iou.json`` (+ logs ``val/mBIoU``, ``val/biou/<name>``);
* :class:`PerImageScoresCallback` -> ``per_image.csv`` (streamed; one part file per rank, merged);
* :class:`ClassTableCallback` -> ``class_table.csv`` and ``plots/confusion_matrix.png`` (+ W&B).

Put :class:`BoundaryIoUCallback` before :class:`ClassTableCallback` in the callback list (or
anywhere: the table reads ``pl_module.last_boundary_iou``, which is set at epoch end, before any
``on_validation_end``).
"""

from __future__ import annotations

import csv
import io
import logging
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch

from segval.metrics.boundary import BoundaryIoU
from segval.metrics.functional.boundary import boundary_iou_from_counts
from segval.metrics.functional.label_quality import per_image_scores
from segval.metrics.per_image_csv import PerImageCsvWriter, merge_parts
from segval.report.plots import confusion_heatmap_figure
from segval.io import optional_float
from segval.io import atomic_path, write_json, write_text

log = logging.getLogger(__name__)

__all__ = ["CLASS_TABLE_COLUMNS", "BoundaryIoUCallback", "ClassTableCallback", "PerImageScoresCallback"]

CLASS_TABLE_COLUMNS = (
    "name", "id", "group", "IoU", "Acc", "Dice", "boundary_IoU", "pixel_share", "instances", "status",
)




def _ignore_index(pl_module: pl.LightningModule) -> int | None:
    hparams = getattr(pl_module, "hparams", {}) or {}
    return hparams.get("ignore_index", 255)


def _skip(trainer: pl.Trainer) -> bool:
    return bool(trainer.sanity_checking)


def _output(outputs: Any, key: str, callback: pl.Callback) -> Any:
    """``outputs[key]`` of ``validation_step``, or an error that says what the callback needs."""
    if not isinstance(outputs, Mapping) or key not in outputs:
        got = sorted(outputs) if isinstance(outputs, Mapping) else type(outputs).__name__
        raise ValueError(
            f"{type(callback).__name__} needs validation_step to return a dict with {key!r} "
            f"(SegmentationModule returns {{'logits', 'preds'}}), got {got}"
        )
    return outputs[key]


# ------------------------------------------------------------------------------------------ boundary IoU
class BoundaryIoUCallback(pl.Callback):
    """Boundary IoU per class over the whole validation split (summed over batches and ranks).

    Logs ``val/mBIoU`` (nan-mean over classes with a boundary in the ground truth or prediction)
    and ``val/biou/<metric_name>``, sets ``pl_module.last_boundary_iou`` (``float64[C]``, CPU) and
    writes ``<dirpath>/boundary_iou.json``::

        {"dilation_ratio": 0.02, "per_class": [{"name", "intersection", "union", "boundary_IoU"}], "mBIoU"}

    Args:
        dirpath: folder of ``boundary_iou.json`` (the run directory).
        dilation_ratio: boundary width as a fraction of the image diagonal (0.02 in the paper).
    """

    def __init__(self, dirpath: str | Path, dilation_ratio: float = 0.02) -> None:
        self.dirpath = Path(dirpath)
        self.dilation_ratio = float(dilation_ratio)
        self.metric: BoundaryIoU | None = None
        #: synced counts of the last validation: {"intersection", "union"} int64[C], "boundary_IoU" float64[C]
        self.last: dict[str, torch.Tensor] | None = None

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if _skip(trainer):
            return
        c = len(pl_module.class_names)
        if self.metric is None or self.metric.num_classes != c:
            self.metric = BoundaryIoU(c, ignore_index=_ignore_index(pl_module), dilation_ratio=self.dilation_ratio)
        self.metric = self.metric.to(pl_module.device)
        self.metric.reset()

    def on_validation_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if _skip(trainer) or self.metric is None:
            return
        self.metric.update(_output(outputs, "preds", self), batch["mask"])

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if _skip(trainer) or self.metric is None:
            return
        with self.metric.sync_context():  # sums the states over ranks (nothing to do in one process)
            inter = self.metric.intersection.detach().cpu().clone()
            union = self.metric.union.detach().cpu().clone()
        self.metric.reset()
        biou = boundary_iou_from_counts(inter, union)  # (C,) float64
        self.last = {"intersection": inter, "union": union, "boundary_IoU": biou}
        pl_module.last_boundary_iou = biou
        mbiou = float(torch.nanmean(biou))
        pl_module.log("val/mBIoU", mbiou, rank_zero_only=True)
        for name, value in zip(pl_module.metric_names, biou.tolist()):
            pl_module.log(f"val/biou/{name}", value, rank_zero_only=True)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if _skip(trainer) or not trainer.is_global_zero or self.last is None:
            return
        write_json(self.dirpath / "boundary_iou.json", self.payload(pl_module.class_names))

    def payload(self, class_names: Sequence[str]) -> dict[str, Any]:
        """The ``boundary_iou.json`` document of the last validation."""
        assert self.last is not None
        biou = self.last["boundary_IoU"]
        per_class = [
            {"name": name, "intersection": int(i), "union": int(u), "boundary_IoU": optional_float(b)}
            for name, i, u, b in zip(class_names, self.last["intersection"].tolist(), self.last["union"].tolist(),
                                     biou.tolist())
        ]
        return {"dilation_ratio": self.dilation_ratio, "per_class": per_class, "mBIoU": optional_float(torch.nanmean(biou))}


# ------------------------------------------------------------------------------------------ per-image scores
class PerImageScoresCallback(pl.Callback):
    """Stream the per-image scores of every validation into ``<dirpath>/per_image.csv``.

    Reads ``outputs["logits"]`` (and ``outputs["preds"]``, ``outputs["nll"]`` = per-pixel
    ``-log softmax(logits)[label]`` when the module returns them, which saves recomputing them).
    Rows are appended to a per-rank part file as batches arrive (memory does not grow with the
    split); at the end of the validation every rank closes its part and rank 0 merges the parts,
    sorted by image_id, into ``per_image.csv`` (atomically; the file of the latest validation).
    Under DDP the part files must be on a filesystem all ranks share (the run directory is).

    Args:
        dirpath: folder of ``per_image.csv`` (the run directory).
        temperature: softmin temperature of the label-quality score (cleanlab's 0.1).
    """

    filename = "per_image.csv"

    def __init__(self, dirpath: str | Path, temperature: float = 0.1) -> None:
        self.dirpath = Path(dirpath)
        self.temperature = float(temperature)
        self._writer: PerImageCsvWriter | None = None

    def part_path(self, rank: int) -> Path:
        return self.dirpath / f".{self.filename}.rank{rank}.part"

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if _skip(trainer):
            return
        self._abort()
        self._writer = PerImageCsvWriter(self.part_path(trainer.global_rank), pl_module.class_names,
                                         pl_module.metric_names)

    def on_validation_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if _skip(trainer) or self._writer is None:
            return
        rows = per_image_scores(_output(outputs, "logits", self), batch["mask"], _ignore_index(pl_module),
                                preds=outputs.get("preds"), nll=outputs.get("nll"), temperature=self.temperature)
        self._writer.write_rows(batch["image_id"], rows)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if _skip(trainer) or self._writer is None:
            return
        self._writer.close()
        self._writer = None
        trainer.strategy.barrier("per_image_parts_written")
        if trainer.is_global_zero:
            parts = [self.part_path(r) for r in range(trainer.world_size)]
            missing = [p for p in parts if not p.is_file()]
            if missing:
                log.warning("per_image.csv: part files %s are missing (ranks on different filesystems?); "
                            "merging the others", [str(p) for p in missing])
            n = merge_parts([p for p in parts if p.is_file()], self.dirpath / self.filename)
            log.info("per-image scores of %d images: %s", n, self.dirpath / self.filename)
        trainer.strategy.barrier("per_image_merged")

    def _abort(self) -> None:
        if self._writer is not None:
            self._writer.abort()
            self._writer = None

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self._abort()


# ------------------------------------------------------------------------------------------ class table
def _groups(pl_module: pl.LightningModule, trainer: pl.Trainer, names: Sequence[str]) -> list[str]:
    """Group of each class: hparams.dataset["groups"] (list or {name: group}), else the data's taxonomy."""
    dataset = (getattr(pl_module, "hparams", {}) or {}).get("dataset") or {}
    groups = dataset.get("groups") if isinstance(dataset, Mapping) else None
    if isinstance(groups, Mapping):
        return [str(groups.get(n, "")) for n in names]
    if isinstance(groups, Sequence) and not isinstance(groups, str) and len(groups) == len(names):
        return [str(g) for g in groups]
    taxonomy = getattr(getattr(trainer, "datamodule", None), "taxonomy", None)
    try:
        by_name = {c.name: c.group for c in taxonomy.categories}  # type: ignore[union-attr]
    except Exception:  # no datamodule, or another kind of data
        return [""] * len(names)
    return [by_name.get(n, "") for n in names]


def _val_datasets(trainer: pl.Trainer) -> list[Any]:
    loaders = trainer.val_dataloaders
    if loaders is None:
        return []
    if not isinstance(loaders, (list, tuple)):
        loaders = [loaders]
    return [getattr(dl, "dataset", None) for dl in loaders]


def _instances(trainer: pl.Trainer, num_classes: int) -> list[int] | None:
    """Non-crowd annotations per class in the evaluated split(s), or None when the data cannot say."""
    counts: Counter[int] = Counter()
    found = False
    for ds in _val_datasets(trainer):
        split, records = getattr(ds, "split", None), getattr(ds, "records", None)
        if split is None or records is None or not hasattr(split, "annotations_for"):
            continue
        found = True
        taxonomy = split.taxonomy
        for rec in records:
            for ann in split.annotations_for(rec.id):
                if not ann.get("iscrowd", 0) and ann.get("category_id") in taxonomy:
                    counts[taxonomy.index_of(ann["category_id"])] += 1
    return [counts.get(i, 0) for i in range(num_classes)] if found else None


def _cell(x: Any) -> str:
    if x is None:
        return ""
    if isinstance(x, float):
        return "nan" if math.isnan(x) else repr(x)
    return str(x)


class ClassTableCallback(pl.Callback):
    """The per-class table and the confusion-matrix plot of the latest validation (rank 0).

    Writes ``<dirpath>/class_table.csv`` with the columns :data:`CLASS_TABLE_COLUMNS`
    (``IoU`` / ``Acc`` / ``Dice`` as in metrics.json, ``boundary_IoU`` from
    :class:`BoundaryIoUCallback` when it runs, ``pixel_share`` = the class's share of the
    ground-truth pixels, ``instances`` = non-crowd annotations of the evaluated split when the data
    is a segval dataset, ``status`` = present / predicted_only / absent as in metrics.json; NaN is
    ``nan``, unknown is empty) and ``<dirpath>/plots/confusion_matrix.png``; with a
    :class:`~lightning.pytorch.loggers.WandbLogger` among the loggers it also logs both
    (``val/class_table``, ``val/confusion_matrix``).

    Args:
        dirpath: the run directory.
        plot: write the confusion-matrix PNG.
        plot_during_fit: also plot at the periodic validations of a fit (about 0.1-0.4 s each). Off by
            default: the confusion matrix of every validation is saved as .npy / .csv anyway, and
            ``segval train`` ends with a validation of the best checkpoint, which is plotted.
    """

    def __init__(self, dirpath: str | Path, plot: bool = True, plot_during_fit: bool = False) -> None:
        self.dirpath = Path(dirpath)
        self.plot = plot
        self.plot_during_fit = plot_during_fit
        self._instances_cache: tuple[tuple[int, ...], list[int] | None] | None = None

    def rows(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> list[list[Any]]:
        """Table rows in :data:`CLASS_TABLE_COLUMNS` order: python values, NaN floats where undefined
        (e.g. the IoU of an absent class), None where unknown (no boundary IoU, group or instances)."""
        m = pl_module.last_metrics
        names = list(pl_module.class_names)
        c = len(names)
        dataset = (getattr(pl_module, "hparams", {}) or {}).get("dataset") or {}
        ids = list(dataset.get("taxonomy_ids") or range(c))
        groups = _groups(pl_module, trainer, names)
        biou = getattr(pl_module, "last_boundary_iou", None)
        biou = biou.tolist() if biou is not None and len(biou) == c else [None] * c
        key = tuple(id(d) for d in _val_datasets(trainer))
        if self._instances_cache is None or self._instances_cache[0] != key:
            self._instances_cache = (key, _instances(trainer, c))
        instances = self._instances_cache[1] or [None] * c
        gt = [int(x) for x in m["gt_pixels"]]
        pred = [int(x) for x in m["pred_pixels"]]
        total = sum(gt)
        out = []
        for i, name in enumerate(names):
            status = "present" if gt[i] > 0 else ("predicted_only" if pred[i] > 0 else "absent")
            out.append([
                name, int(ids[i]), groups[i] or None, float(m["IoU"][i]), float(m["Acc"][i]), float(m["Dice"][i]),
                None if biou[i] is None else float(biou[i]), gt[i] / total if total else math.nan, instances[i],
                status,
            ])
        return out

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        metrics = getattr(pl_module, "last_metrics", None)
        if _skip(trainer) or not trainer.is_global_zero or not metrics:
            return
        rows = self.rows(trainer, pl_module)
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(CLASS_TABLE_COLUMNS)
        for row in rows:  # NaN as "nan", unknown as ""
            writer.writerow([_cell(v) for v in row])
        write_text(self.dirpath / "class_table.csv", buf.getvalue())

        png = None
        if self.plot and (self.plot_during_fit or trainer.state.fn != "fit"):
            png = self.dirpath / "plots" / "confusion_matrix.png"
            fig = confusion_heatmap_figure(
                metrics["confmat"], pl_module.class_names,
                title=f"confusion matrix (row-normalised, %), step {metrics.get('step', trainer.global_step)}",
            )
            with atomic_path(png, suffix=".png") as tmp:
                fig.savefig(tmp, format="png", bbox_inches="tight")

        wandb_loggers = _wandb_loggers(trainer)
        table = [[optional_float(v) if isinstance(v, float) else v for v in row] for row in rows]  # NaN -> None
        for lg in wandb_loggers:
            lg.log_table(key="val/class_table", columns=list(CLASS_TABLE_COLUMNS), data=table)
            if png is not None:
                lg.log_image(key="val/confusion_matrix", images=[str(png)])


def _wandb_loggers(trainer: pl.Trainer) -> list[Any]:
    """The WandbLoggers among the trainer's loggers (importing the class does not import wandb)."""
    from lightning.pytorch.loggers import WandbLogger

    return [lg for lg in trainer.loggers if isinstance(lg, WandbLogger)]
