"""`segval eval`: evaluate any checkpoint on any split; writes metrics.json and the confusion matrix."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from omegaconf import DictConfig, open_dict

from segval.analysis.diagnosis import run_summary
from segval.metrics.results import format_class_table, metrics_payload, write_results
from segval.commands._common import segval_app
from segval.errors import ConfigError
from segval.models import SegmentationModule
from segval.commands._common import build_datamodule, build_group, build_trainer

log = logging.getLogger("segval")


def run(cfg: DictConfig) -> dict[str, Any]:
    """Evaluate ``cfg.ckpt_path`` on ``cfg.split`` with the callbacks of ``cfg.callbacks`` (the analysis
    stage by default); writes metrics.json and the confusion matrix into the run directory (rank 0)."""
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    out_dir = Path(cfg.paths.output_dir)
    model = SegmentationModule.from_checkpoint(cfg.ckpt_path)
    task = cfg.get("task") or getattr(model, "task", "semantic")  # null: what the checkpoint was trained for
    model.set_task(task)
    if cfg.get("data") is not None and "task" in cfg.data:
        with open_dict(cfg):
            cfg.data.task = task
    dm = build_datamodule(cfg)
    if list(model.class_names) != dm.class_names:
        raise ConfigError(
            f"the checkpoint was trained on the classes {model.class_names} but the dataset has {dm.class_names}; "
            "evaluate it on a dataset with the same taxonomy"
        )
    if len(dm.dataset(cfg.split)) == 0:
        raise ConfigError(f"split {cfg.split!r} of {dm.dataset_info()['source']} has no images; nothing to evaluate: "
                          "choose another split= or add images to it")
    dm.evaluate_on(cfg.split)  # checked (data.validate) and loaded by Lightning, one image per rank under DDP
    callbacks = build_group(cfg.get("callbacks"), "callback")
    trainer = build_trainer(cfg, callbacks=callbacks, loggers=build_group(cfg.get("logger"), "logger"))
    trainer.validate(model, datamodule=dm, verbose=False)
    info = dm.dataset_info()
    payload = metrics_payload(
        model.last_metrics, dm.class_names, class_ids=dm.taxonomy.ids, dataset=info, split=cfg.split,
        checkpoint=str(Path(cfg.ckpt_path).resolve()), step=model.loaded_step,
    )
    if trainer.is_global_zero:  # the confusion matrix is already summed over ranks
        path = write_results(payload, model.last_metrics["confmat"], out_dir)
        print(f"\n{Path(cfg.ckpt_path).name} on {info['name']} {info['version']} / {cfg.split}:\n")
        print(format_class_table(payload))
        print(f"\nmetrics: {path}")
        groups = {c.name: c.group for c in dm.taxonomy.categories}
        print("\n" + run_summary(payload, model.last_metrics["confmat"], out_dir, groups))
    return payload


@segval_app("eval")
def main(cfg: DictConfig) -> float | None:
    return run(cfg)["summary"].get("mIoU")


if __name__ == "__main__":
    main()
