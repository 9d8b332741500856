"""`segval train`: fit a baseline on a dataset package, keep the best / last checkpoints, write metrics.json."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from segval.analysis.diagnosis import run_summary
from segval.metrics.results import format_class_table, metrics_payload, write_results
from segval.commands._common import segval_app
from segval.models.module import checkpoint_step
from segval.commands._common import build_datamodule, build_group, build_trainer, resolve_ckpt_path
from segval.tracking.run import job, record_dataset

log = logging.getLogger("segval")


def run(cfg: DictConfig) -> dict[str, Any]:
    """Run one training job; returns the metrics.json payload (of the best checkpoint when evaluated)."""
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    out_dir = Path(cfg.paths.output_dir)
    dm = build_datamodule(cfg)
    info = dm.dataset_info()
    model = instantiate(
        cfg.model,
        num_classes=dm.num_classes,
        class_names=dm.class_names,
        dataset=info,
        task=cfg.get("task", "semantic"),
        _recursive_=False,
    )
    loggers = build_group(cfg.get("logger"), "logger")
    callbacks = build_group(cfg.get("callbacks"), "callback")
    trainer = build_trainer(cfg, callbacks=callbacks, loggers=loggers)
    record_dataset(cfg, loggers, info)  # content hash into the config; dataset version as a W&B artifact
    for lg in loggers:
        lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    ckpt_path = resolve_ckpt_path(cfg.ckpt_path, out_dir)
    if ckpt_path is not None and trainer.is_global_zero:
        print(f"resuming {ckpt_path} at step {checkpoint_step(ckpt_path)}")
    trainer.fit(model, datamodule=dm, ckpt_path=ckpt_path, weights_only=True)

    ckpt = None
    if cfg.evaluate_best and trainer.checkpoint_callback is not None and trainer.checkpoint_callback.best_model_path:
        ckpt = trainer.checkpoint_callback.best_model_path
        trainer.validate(model, datamodule=dm, ckpt_path=ckpt, weights_only=True, verbose=False)
    elif model.last_metrics is None:
        trainer.validate(model, datamodule=dm, verbose=False)
    payload = metrics_payload(
        model.last_metrics,
        dm.class_names,
        class_ids=dm.taxonomy.ids,
        dataset=info,
        split=dm.val_split if not dm.plain_coco else "val (held out)",
        checkpoint=ckpt,
        step=checkpoint_step(ckpt) if ckpt else model.last_metrics["step"],
    )
    if trainer.is_global_zero:
        path = write_results(payload, model.last_metrics["confmat"], out_dir)
        _log_table(loggers, payload)
        print(f"\nValidation of {info['name']} {info['version']} at step {payload['step']}:\n")
        print(format_class_table(payload))
        print(f"\nrun directory:   {out_dir}")
        print(f"metrics:         {path}")
        print(f"checkpoints:     {out_dir / 'checkpoints'} (best: {Path(ckpt).name if ckpt else '-'}, last.ckpt)")
        groups = {c.name: c.group for c in dm.taxonomy.categories}
        print("\n" + run_summary(payload, model.last_metrics["confmat"], out_dir, groups))
    for lg in loggers:
        lg.finalize("success")
    return payload


def _log_table(loggers: list[Any], payload: dict[str, Any]) -> None:
    """The per-class table as a W&B table (for loggers that support it)."""
    cols = ["name", "IoU", "Acc", "Dice", "gt_pixels", "status"]
    rows = [[r[c] for c in cols] for r in payload["per_class"]]
    for lg in loggers:
        if hasattr(lg, "log_table"):
            lg.log_table(key="val/per_class", columns=cols, data=rows)


@segval_app("train")
def main(cfg: DictConfig) -> float | None:
    with job(cfg):  # one W&B run per job (finished at its end); DDP ranks re-run this job only
        payload = run(cfg)
    return payload["summary"].get("mIoU")


if __name__ == "__main__":
    main()
