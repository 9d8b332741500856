"""Dataset versions as a sweep axis, and W&B runs that never mix under multirun or DDP.

* ``data=package data.releases=<folder> data.version=X.Y.Z`` reads ``<folder>/X.Y.Z`` (a release
  written by ``segval dataset release``); ``data.version`` null takes the newest release, and
  ``data.root=<package>`` still works (then ``data.version``, when set, must match its dataset.yaml).
  So ``segval train -m data=package data.releases=/data/releases data.version=1.0.0,1.1.0 seed=0,1``
  trains every (version, seed) pair.
* W&B (``logger=wandb`` / ``many``): one run per job, grouped per sweep (the multirun folder's name,
  or ``wandb_group=<name>``), tagged with the dataset name and ``v<version>``, the composed config
  logged, and the dataset version logged as a W&B artifact reference ``file://<root>`` with its
  content hash. Only rank zero creates a run (Lightning's ``rank_zero_experiment``); every job ends
  with ``wandb.finish()`` (:func:`job`), so the next job of a multirun starts a new run.
* DDP inside a multirun: Lightning starts ranks 1.. by re-running the command line, which for a
  multirun would start the whole sweep again in each rank; :func:`job` makes that command line the
  job's own overrides and run directory.

The OmegaConf resolvers ``segval.release_root``, ``segval.sweep_group`` and ``segval.dataset_tag`` (the
``<name>-<version>`` folder of ``segval validate``) are registered by :func:`register_resolvers` (called when
:mod:`segval.app` is imported). :func:`offline_runs` reads what offline W&B runs hold, without a server.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from segval.errors import ConfigError

log = logging.getLogger("segval")


# ------------------------------------------------------------------------------------------------ versions
def release_root(releases: str | None, version: str | None) -> str | None:
    """``<releases>/<version>``; the newest release when ``version`` is None; None without ``releases``.

    Raises:
        ConfigError: ``releases`` holds no release (when ``version`` is None) or is not a folder.
    """
    if releases in (None, "", "None"):
        return None
    from segval.dataset.versions import list_releases

    if version in (None, "", "None"):
        found = list_releases(releases)
        if not found:
            raise ConfigError(f"data.releases={releases} holds no release (folders X.Y.Z with dataset.yaml); "
                              "release one with `segval dataset release source=<package> releases=<folder>` or "
                              "set data.root=<package>")
        return str(Path(releases) / found[-1])
    return str(Path(releases) / str(version))


def package_datamodule(releases: str | None = None, version: str | None = None, **kwargs: Any) -> Any:
    """The ``data=package`` target: a :class:`~segval.datamodules.SegmentationDataModule` of the release
    ``data.version`` under ``data.releases`` (``data.root`` resolves to it) or of ``data.root``.

    Raises:
        ConfigError: no dataset given; the version is not released; dataset.yaml names another version.
    """
    from segval.datamodules import SegmentationDataModule

    root = kwargs.get("root")
    if root is None and kwargs.get("annotations") is None:
        raise ConfigError("no dataset given: set data.root=<package folder>, or data.releases=<releases folder> "
                          "data.version=X.Y.Z (a release of `segval dataset release`)")
    if root is not None and version not in (None, ""):
        check_version(Path(root), str(version), releases)
    return SegmentationDataModule(**kwargs)


def check_version(root: Path, version: str, releases: str | None) -> None:
    """ConfigError when ``version`` is not released under ``releases`` or ``root/dataset.yaml`` names another."""
    import yaml

    meta = root / "dataset.yaml"
    if not meta.is_file():
        if releases is not None:
            from segval.dataset.versions import list_releases

            raise ConfigError(f"data.version={version} is not released under data.releases={releases} "
                              f"(released: {list_releases(releases) or 'none'}); choose one of them")
        return  # the data module names the missing dataset.yaml
    try:
        found = str((yaml.safe_load(meta.read_text(encoding="utf-8")) or {}).get("version"))
    except (OSError, yaml.YAMLError):
        return  # the data module reports the broken file
    if found != version:
        raise ConfigError(f"{meta} says version {found} but data.version={version}; set data.version={found} "
                          f"or point data.root / data.releases to the release of {version}")


# ------------------------------------------------------------------------------------------------ W&B
def sweep_group(explicit: str | None = None) -> str | None:
    """The W&B group of this job: ``explicit`` when set, else the multirun folder's name, else None."""
    if explicit not in (None, "", "None"):
        return str(explicit)
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
            return Path(str(HydraConfig.get().sweep.dir)).name
    except Exception:  # noqa: BLE001 - no Hydra context (a library call): no group
        return None
    return None


def dataset_tag(*, _root_: Any) -> str:
    """``<name>-<version>`` from ``<data.root>/dataset.yaml`` (a folder name for validate runs); ``dataset`` when
    there is none to read (the command then reports what is wrong with the data config, without a traceback)."""
    import re

    import yaml

    try:
        ann = OmegaConf.select(_root_, "data.annotations", default=None)
        if ann:  # a plain COCO export: <images folder name>-<annotation file stem>
            images = OmegaConf.select(_root_, "data.images", default=None) or Path(str(ann)).parent
            tag = f"{Path(str(images)).resolve().name}-{Path(str(ann)).stem}"
        else:
            root = OmegaConf.select(_root_, "data.root", throw_on_resolution_failure=True)
            meta = yaml.safe_load((Path(str(root)) / "dataset.yaml").read_text(encoding="utf-8")) or {}
            tag = f"{meta['name']}-{meta['version']}"
    except Exception:  # noqa: BLE001 - reported by the command that opens the package
        return "dataset"
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", tag)


def register_resolvers() -> None:
    """Register ``${segval.release_root:releases,version}``, ``${segval.sweep_group:explicit}`` and
    ``${segval.dataset_tag:}`` (reads ``data.root``)."""
    if not OmegaConf.has_resolver("segval.dataset_tag"):
        OmegaConf.register_new_resolver("segval.dataset_tag", dataset_tag)
    if not OmegaConf.has_resolver("segval.release_root"):
        OmegaConf.register_new_resolver("segval.release_root", release_root)
    if not OmegaConf.has_resolver("segval.sweep_group"):
        OmegaConf.register_new_resolver("segval.sweep_group", lambda explicit=None: sweep_group(explicit))


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


# ------------------------------------------------------------------------------------------------ offline runs
def read_offline_run(path: str | Path) -> dict[str, Any]:
    """What an offline W&B run file (``offline-run-*/run-<id>.wandb``) records: run id, name, group,
    tags, job type, the config keys and the artifacts logged, read without a W&B server.

    The file is W&B's LevelDB-style record log (a 7-byte header ``:W&B`` + magic + version, then
    32 KiB blocks of records ``crc32 (4) | length (2) | type (1) | data``, a record split over
    blocks as FIRST / MIDDLE / LAST) of ``wandb_internal_pb2.Record`` protobufs.
    """
    import struct

    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path}: not a W&B run file")
    block, pos, pending = 32768, 7, b""
    out: dict[str, Any] = {"id": None, "name": None, "group": None, "tags": [], "job_type": None,
                           "config": {}, "artifacts": [], "file": str(path)}
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # block trailer padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if length == 0 and kind == 0:
            pos += left  # zero fill to the end of the block
            continue
        pending += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (2, 3):  # FIRST, MIDDLE: the record goes on in the next block
            continue
        rec = pb.Record()
        rec.ParseFromString(pending)
        pending = b""
        which = rec.WhichOneof("record_type")
        if which == "run":
            out.update(id=rec.run.run_id, name=rec.run.display_name, group=rec.run.run_group or None,
                       tags=list(rec.run.tags), job_type=rec.run.job_type or None)
            out["config"].update({u.key: u.value_json for u in rec.run.config.update})
        elif which == "config":
            out["config"].update({u.key: u.value_json for u in rec.config.update})
        elif which == "artifact":
            out["artifacts"].append({"name": rec.artifact.name, "type": rec.artifact.type,
                                     "aliases": list(rec.artifact.aliases),
                                     "references": [m.ref for m in rec.artifact.manifest.contents if m.ref],
                                     "metadata": rec.artifact.metadata})
    return out


def offline_runs(folder: str | Path) -> list[dict[str, Any]]:
    """Every offline W&B run under ``folder`` (searched recursively), sorted by path."""
    return [read_offline_run(p) for p in sorted(Path(folder).rglob("offline-run-*/run-*.wandb"))]
