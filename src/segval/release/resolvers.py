"""The OmegaConf resolvers of segval's configs, and the ``data=package`` target.

* ``data=package data.releases=<folder> data.version=X.Y.Z`` reads ``<folder>/X.Y.Z`` (a release
  written by ``segval dataset release``); ``data.version`` null takes the newest release, and
  ``data.root=<package>`` still works (then ``data.version``, when set, must match its dataset.yaml).
  So ``segval train -m data=package data.releases=/data/releases data.version=1.0.0,1.1.0 seed=0,1``
  trains every (version, seed) pair.
* ``${segval.release_root:releases,version}`` (the folder of a release), ``${segval.sweep_group:explicit}``
  (the W&B group of a sweep job: the multirun folder's name) and ``${segval.dataset_tag:}`` (the
  ``<name>-<version>`` folder of ``segval validate``), registered by :func:`register_resolvers` (called
  when a command starts).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from segval.errors import ConfigError


def release_root(releases: str | None, version: str | None) -> str | None:
    """``<releases>/<version>``; the newest release when ``version`` is None; None without ``releases``.

    Raises:
        ConfigError: ``releases`` holds no release (when ``version`` is None) or is not a folder.
    """
    if releases in (None, "", "None"):
        return None
    from segval.release.versions import list_releases

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
            from segval.release.versions import list_releases

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
