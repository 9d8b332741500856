"""A progress bar over the iteration budget, for iteration-based schedules (``max_steps``)."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import _update_n


class StepProgressBar(TQDMProgressBar):
    """One training bar ``step / max_steps`` across epochs (Lightning's shows one bar per epoch,
    which reads oddly with ``max_epochs=-1``); validation bars as Lightning draws them.

    The training loss is shown from the logged tensor, read only when the bar redraws (every
    ``refresh_rate`` steps): a metric logged with ``prog_bar=True`` would be read on the host every step.
    """

    #: logged metrics shown on the bar, read from the device only when it redraws
    shown = ("train/loss",)

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        metrics = super().get_metrics(trainer, pl_module)
        for key in self.shown:
            value = trainer.callback_metrics.get(key)
            if value is not None and key not in metrics:
                metrics[key] = f"{float(value):.3g}"
        return metrics

    def on_train_epoch_start(self, trainer: pl.Trainer, *_: Any) -> None:
        total = trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else None
        if total is None:
            return super().on_train_epoch_start(trainer)
        bar = self.train_progress_bar
        if bar.total != total:
            bar.reset(total=total)
            bar.initial = 0
            _update_n(bar, trainer.global_step)
        bar.set_description(f"train (epoch {trainer.current_epoch})")

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if not trainer.max_steps or trainer.max_steps <= 0:
            return super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        n = trainer.global_step
        if self._should_update(n, self.train_progress_bar.total):
            _update_n(self.train_progress_bar, n)
            self.train_progress_bar.set_postfix(self.get_metrics(trainer, pl_module))

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.train_progress_bar.disable:
            self.train_progress_bar.set_postfix(self.get_metrics(trainer, pl_module))
