"""One training job's W&B run and process group: never mixed across the jobs of a multirun or DDP ranks.

* W&B (``logger=wandb`` / ``many``): one run per job, grouped per sweep (``${segval.sweep_group:}``),
  tagged with the dataset name and ``v<version>``, the composed config logged, and the dataset version
  logged as a W&B artifact reference ``file://<root>`` with its content hash. Only rank zero creates a
  run (Lightning's ``rank_zero_experiment``); every job ends with ``wandb.finish()`` (:func:`job`), so the
  next job of a multirun starts a new run.
* DDP inside a multirun: Lightning starts ranks 1.. by re-running the command line, which for a multirun
  would start the whole sweep again in each rank; :func:`job` makes that command line the job's own
  overrides and run directory.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, open_dict

log = logging.getLogger("segval")


def _is_wandb_logger(lg: Any) -> bool:
    return type(lg).__name__ == "WandbLogger"


def record_dataset(cfg: DictConfig, loggers: list[Any], info: Mapping[str, Any]) -> None:
    """Put the content hash into ``cfg.dataset`` (so the logged config carries it) and, on rank zero,
    log the dataset version to each W&B logger as an artifact reference.

    The artifact is named after the dataset, of type ``dataset``, holds the reference
    ``file://<package root>`` and, as metadata, the version, content hash, source and classes; its
    alias is ``v<version>``. Online the run *uses* it (an input edge in the lineage graph); offline
    W&B cannot resolve used artifacts, so the run logs it instead (it is uploaded with ``wandb sync``).
    """
    with open_dict(cfg):
        cfg.dataset.content_hash = info.get("content_hash")
    from lightning.pytorch.utilities import rank_zero_only

    if rank_zero_only.rank != 0:
        return
    for lg in loggers:
        if _is_wandb_logger(lg):
            log_dataset_artifact(lg.experiment, info)


def artifact_name(name: str) -> str:
    """A W&B artifact name (letters, digits, ``-``, ``_``, ``.``) for a dataset name."""
    import re

    return re.sub(r"[^A-Za-z0-9_.-]+", "-", str(name)).strip("-") or "dataset"


def log_dataset_artifact(run: Any, info: Mapping[str, Any]) -> Any:
    """Log ``info`` (``dataset_info()``) to the W&B ``run`` as a reference artifact; returns it."""
    import wandb

    source = Path(str(info.get("source") or "."))
    root = source if source.is_dir() else source.parent
    art = wandb.Artifact(
        artifact_name(info.get("name") or "dataset"),
        type="dataset",
        description=f"{info.get('name')} {info.get('version')} at {root.resolve()}",
        metadata={k: info.get(k) for k in ("name", "version", "content_hash", "source", "class_names")},
    )
    # checksum=False: the content hash is in the metadata, no second pass over every image
    art.add_reference(f"file://{root.resolve()}", checksum=False)
    aliases = [f"v{info.get('version')}"]
    if getattr(run, "offline", False):
        run.log_artifact(art, aliases=aliases)
    else:
        run.use_artifact(art, aliases=aliases)
    with contextlib.suppress(Exception):  # a config key is also visible in the runs table
        run.config.update({"dataset/content_hash": info.get("content_hash")}, allow_val_change=True)
    return art


def finish_wandb(exit_code: int = 0) -> None:
    """Close this process's W&B run, if one is open (the next multirun job then starts its own)."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish(exit_code=exit_code)


# ------------------------------------------------------------------------------------------------ jobs
@contextlib.contextmanager
def job(cfg: DictConfig) -> Iterator[None]:
    """Wrap one training job: DDP ranks of a multirun job re-run this job only; W&B finished at the end."""
    argv = list(sys.argv)
    env = {k: os.environ.get(k) for k in DIST_ENV}
    _single_job_command_line(cfg)
    failed = True
    try:
        yield
        failed = False
    finally:
        sys.argv[:] = argv
        finish_wandb(1 if failed else 0)
        _end_distributed(env)


#: environment Lightning's launcher sets for a DDP job; restored after the job so the next one starts clean
DIST_ENV = ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "NODE_RANK", "LOCAL_RANK")


def _end_distributed(env: Mapping[str, str | None]) -> None:
    """Close the job's process group (the next multirun job starts its own ranks) and restore its env."""
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    for key, value in env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _single_job_command_line(cfg: DictConfig) -> None:
    """In a multirun, make ``sys.argv`` and ``hydra.run.dir`` those of this job alone.

    Lightning's subprocess launcher starts rank r as ``python -m <module> <sys.argv[1:]>
    hydra.run.dir=<hydra.run.dir>``: without this, each rank would start the whole sweep again.
    """
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode
    except ImportError:  # pragma: no cover
        return
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return
    hc = HydraConfig.get()
    sys.argv[:] = [sys.argv[0], *hc.overrides.task]
    with contextlib.suppress(Exception):
        from omegaconf import read_write

        with read_write(hc), open_dict(hc):
            hc.run.dir = str(cfg.paths.output_dir)


