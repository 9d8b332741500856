"""What `train` and `eval` share: seeding, the data module, loggers and callbacks from config."""

from __future__ import annotations

import logging
from typing import Any

import lightning.pytorch as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, open_dict

log = logging.getLogger("segval")


def build_datamodule(cfg: DictConfig) -> Any:
    """Instantiate ``cfg.data``, open the package, and record its name / version in ``cfg.dataset``."""
    dm = instantiate(cfg.data, _convert_="partial")
    info = dm.dataset_info()
    with open_dict(cfg):
        cfg.dataset.name = info["name"]
        cfg.dataset.version = info["version"]
    return dm


def build_group(cfg_group: DictConfig | None, kind: str) -> list[Any]:
    """Instantiate every entry of a config group that maps names to ``_target_`` configs (loggers, callbacks)."""
    out: list[Any] = []
    for name, conf in (cfg_group or {}).items():
        if isinstance(conf, DictConfig) and "_target_" in conf:
            log.info("%s: %s (%s)", kind, name, conf._target_)
            out.append(instantiate(conf))
    return out


def build_trainer(cfg: DictConfig, *, callbacks: list[Any], loggers: list[Any]) -> pl.Trainer:
    return instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
