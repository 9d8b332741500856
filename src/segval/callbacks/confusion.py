"""Lightning callbacks of the analysis stage."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl

from segval.metrics.results import write_confusion


class ConfusionMatrixWriter(pl.Callback):
    """Save the confusion matrix of every validation as ``<dirpath>/step_XXXXXX.{npy,csv}``.

    Reads ``pl_module.last_metrics["confmat"]`` (int64[C, C], conf[gt, pred], already summed over
    ranks); only rank 0 writes. Sanity-check validations are skipped.
    """

    def __init__(self, dirpath: str | Path) -> None:
        self.dirpath = Path(dirpath)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        metrics = getattr(pl_module, "last_metrics", None)
        if trainer.sanity_checking or not trainer.is_global_zero or not metrics:
            return
        write_confusion(metrics["confmat"], pl_module.class_names, self.dirpath / f"step_{metrics['step']:06d}")
