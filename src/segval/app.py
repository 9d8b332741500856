"""The Hydra-app decorator shared by every `segval` command.

Each command is a Hydra app (overrides, ``-m`` multirun, ``--cfg job``, ``--help``). User errors
(:class:`SegvalError`) are printed as one clear message, without a traceback, and exit non-zero.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import warnings
from collections.abc import Callable
from typing import Any

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("WANDB_SILENT", "true")
# noise that tells a user nothing they can act on
warnings.filterwarnings("ignore", message=r".*LeafSpec.*")
warnings.filterwarnings("ignore", message=r".*smaller than the logging interval.*")
warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(lambda r: "Tip:" not in r.getMessage())

import hydra  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from segval.errors import SegvalError  # noqa: E402

CONFIG_PATH = "conf"

# `${segval.concat:${tags},[a,b]}`: lists joined, e.g. the user's W&B tags plus dataset name and version
if not OmegaConf.has_resolver("segval.concat"):
    OmegaConf.register_new_resolver("segval.concat", lambda *lists: [x for part in lists for x in part])

# `${segval.release_root:${data.releases},${data.version}}` and `${segval.sweep_group:...}` (W&B group per sweep)
from segval.sweeps import register_resolvers  # noqa: E402

register_resolvers()


def find_user_error(err: BaseException) -> BaseException | None:
    """The :class:`SegvalError` (or refused overwrite) behind ``err``, looking through wrappers
    such as Hydra's ``InstantiationException`` and Lightning's re-raises."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        if isinstance(current, (SegvalError, FileExistsError)):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def segval_app(config_name: str) -> Callable[[Callable[[DictConfig], Any]], Callable[[], Any]]:
    """Turn ``task(cfg)`` into a Hydra app on ``conf/<config_name>.yaml`` with clear user errors."""

    def wrap(task: Callable[[DictConfig], Any]) -> Callable[[], Any]:
        @functools.wraps(task)
        def guarded(cfg: DictConfig) -> Any:
            try:
                return task(cfg)
            except Exception as err:
                user_error = find_user_error(err)
                if user_error is None:
                    raise
                print(f"segval {config_name}: error: {user_error}", file=sys.stderr, flush=True)
                sys.exit(getattr(user_error, "exit_code", 2))

        return hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name=config_name)(guarded)

    return wrap
