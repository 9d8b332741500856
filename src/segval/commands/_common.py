"""What the commands share: the Hydra-app decorator, opening the dataset of ``data=``, and the pieces of
``train`` / ``eval`` (data module, loggers, callbacks, trainer from config).

Each command is a Hydra app (overrides, ``-m`` multirun, ``--cfg job``, ``--help``). User errors
(:class:`SegvalError`) are printed as one clear message, without a traceback, and exit non-zero.
Nothing here imports torch at module import, so commands that need none (``gate``, ``qa``) start fast.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
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

from segval.commands import command_for_config  # noqa: E402
from segval.errors import ConfigError, SegvalError  # noqa: E402

#: the configs shipped in the wheel (``conf/`` at the repository root links there)
CONFIG_PATH = "pkg://segval.conf"

# `${segval.concat:${tags},[a,b]}`: lists joined, e.g. the user's W&B tags plus dataset name and version
if not OmegaConf.has_resolver("segval.concat"):
    OmegaConf.register_new_resolver("segval.concat", lambda *lists: [x for part in lists for x in part])

# `${segval.release_root:${data.releases},${data.version}}` and `${segval.sweep_group:...}` (W&B group per sweep)
from segval.release.resolvers import register_resolvers  # noqa: E402

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
    command = command_for_config(config_name)
    label = f"segval {command.name if command else config_name}"

    def wrap(task: Callable[[DictConfig], Any]) -> Callable[[], Any]:
        @functools.wraps(task)
        def guarded(cfg: DictConfig) -> Any:
            try:
                return task(cfg)
            except Exception as err:
                user_error = find_user_error(err)
                if user_error is None:
                    raise
                print(f"{label}: error: {user_error}", file=sys.stderr, flush=True)
                sys.exit(getattr(user_error, "exit_code", 2))

        app = hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name=config_name)(guarded)

        @functools.wraps(app)
        def checked() -> Any:
            secret = secret_override(sys.argv[1:])
            if secret is not None:  # before Hydra writes the command line into .hydra/
                print(f"{label}: error: {secret}=... on the command line would be written to .hydra/overrides.yaml "
                      "and the shell history; set it in the environment instead (HF_TOKEN for the Hugging Face "
                      "Hub, WANDB_API_KEY for W&B). Nothing was run.", file=sys.stderr, flush=True)
                sys.exit(2)
            return app()

        return checked

    return wrap


#: override keys that hold credentials: refused on the command line
_SECRET_KEY = re.compile(r"(^|\.)(token|hf_token|api_key|apikey|password|secret)$", re.IGNORECASE)


def secret_override(argv: list[str]) -> str | None:
    """The key of the first ``key=value`` override in ``argv`` that names a credential, or None."""
    for arg in argv:
        key = arg.split("=", 1)[0].lstrip("+~") if "=" in arg else ""
        if key and _SECRET_KEY.search(key):
            return key
    return None


def dispatch(module: str, apps: dict[str, Callable[[], Any]]) -> None:
    """``python -m <module> <word> key=value ...``: run the Hydra app of ``<word>`` (``sys.argv`` without it)."""
    if len(sys.argv) < 2 or sys.argv[1] not in apps:
        print(f"usage: python -m {module} {'|'.join(apps)} key=value ...", file=sys.stderr)
        sys.exit(2)
    apps[sys.argv.pop(1)]()


# ---------------------------------------------------------------------------------------- the dataset of data=
def open_package(cfg: DictConfig, *, plain_coco: bool = True) -> Any:
    """Open ``cfg.data`` directly: a package root, or, where ``plain_coco``, a plain COCO export
    (``data.annotations`` + ``data.images``, one split ``train``, read as the data module reads it).

    Unlike the training data module this needs no train / val split and does not import torch, so a QA
    run starts in well under a second; ``cfg.dataset`` (when the config has it) gets the name and version.

    Raises:
        ConfigError: no dataset given; a plain COCO export where a package is needed (``plain_coco=False``).
    """
    from omegaconf import open_dict

    from segval.dataset.package import DatasetPackage

    data = cfg.get("data") or {}
    max_pixels = int(data.get("max_pixels") or 64_000_000)
    if data.get("annotations"):
        if not plain_coco:
            raise ConfigError("a new version needs a dataset package: set data.root=<package folder>, not "
                              "data.annotations (`segval dataset import format=coco` makes a package of an export)")
        if not data.get("images"):
            raise ConfigError("data.annotations is set but data.images is not: pass the folder the file_name "
                              "entries are relative to")
        pkg = DatasetPackage.from_coco(data.annotations, data.images, split="train",
                                       background=data.get("background", "auto"),
                                       bbox_only=data.get("bbox_only", "ignore_box"), max_pixels=max_pixels)
        for line in pkg.warnings:  # the export's COCO dialect, one line per kind
            print(f"warning: {data.annotations}: {line}")
    elif data.get("root"):
        pkg = DatasetPackage.open(data.root, max_pixels=max_pixels)
    else:
        raise ConfigError("no dataset given: set data.root=<package folder> (data=package) or "
                          "data=coco data.annotations=<file.json> data.images=<folder>")
    if "dataset" in cfg:
        with open_dict(cfg):
            cfg.dataset.name = pkg.name
            cfg.dataset.version = str(pkg.version)
    return pkg


def require(cfg: DictConfig, *keys: str, hint: str = "on the command line") -> None:
    """ConfigError naming every key of ``keys`` that is unset (None or empty)."""
    missing = [k for k in keys if cfg.get(k) in (None, "")]
    if missing:
        raise ConfigError(f"missing {', '.join(f'{k}=...' for k in missing)} {hint}")


def as_list(value: Any, key: str) -> list[str]:
    """A config value given as one path or a list of paths -> list of strings."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    value = OmegaConf.to_container(value, resolve=True) if not isinstance(value, list) else value
    if not isinstance(value, list):
        raise ConfigError(f"{key} must be a path or a list of paths, got {value!r}")
    return [str(v) for v in value]


def progress(desc: str, *, enabled: bool = True, unit: str = "img") -> Callable[[Any], Any]:
    """A tqdm wrapper for an iterable (shown on a terminal, hidden when ``enabled`` is False)."""
    from tqdm import tqdm

    return lambda it: tqdm(it, desc=desc, unit=unit, disable=None if enabled else True)


def output_dir(cfg: DictConfig) -> Path:
    """``cfg.output_dir`` when set, else the Hydra run directory (``paths.output_dir``).

    Raises:
        ConfigError: neither is available (an in-process call outside a Hydra run without ``output_dir=``).
    """
    if cfg.get("output_dir"):
        return Path(cfg.output_dir)
    try:
        return Path(cfg.paths.output_dir)
    except Exception as err:  # no Hydra run (in-process call)
        raise ConfigError("no output directory: set output_dir=<folder> when calling outside a Hydra run") from err


def data_overrides(cfg: DictConfig) -> list[str]:
    """The ``data`` choice and ``data.*`` overrides of this run, handed to the commands it runs
    (validate's stages, relabel find's trainings),
    with ``data.root`` pinned to the package resolved now (so every stage reads the same version)."""
    out: list[str] = []
    try:
        from hydra.core.hydra_config import HydraConfig

        hc = HydraConfig.get()
        choice = hc.runtime.choices.get("data")
        if choice:
            out.append(f"data={choice}")
        out += [o for o in hc.overrides.task if o.startswith(("data.", "+data.", "++data.")) and
                not o.lstrip("+").startswith("data.root=")]
    except ValueError:  # not inside a Hydra app (a library call): the config's data block as it is
        out.append("data=package")
    root = cfg.data.get("root")
    if root is not None:
        out.append(f"data.root={quote(str(Path(root).resolve()))}")
    return out


def quote(value: str) -> str:
    """A Hydra override value in single quotes (paths with spaces, commas or brackets)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


# ---------------------------------------------------------------------------------------- train / eval
log = logging.getLogger("segval")


def build_datamodule(cfg: DictConfig) -> Any:
    """Instantiate ``cfg.data``, open the package, and record its name / version in ``cfg.dataset``."""
    from hydra.utils import instantiate
    from omegaconf import open_dict

    dm = instantiate(cfg.data, _convert_="partial")
    info = dm.dataset_info()
    with open_dict(cfg):
        cfg.dataset.name = info["name"]
        cfg.dataset.version = info["version"]
    return dm


def build_group(cfg_group: DictConfig | None, kind: str) -> list[Any]:
    """Instantiate every entry of a config group that maps names to ``_target_`` configs (loggers, callbacks)."""
    from hydra.utils import instantiate

    out: list[Any] = []
    for name, conf in (cfg_group or {}).items():
        if isinstance(conf, DictConfig) and "_target_" in conf:
            log.info("%s: %s (%s)", kind, name, conf._target_)
            out.append(instantiate(conf))
    return out


def build_trainer(cfg: DictConfig, *, callbacks: list[Any], loggers: list[Any]) -> Any:
    """The Lightning ``Trainer`` of ``cfg.trainer`` with these callbacks and loggers.

    Checkpoints are written atomically (temporary file, fsync, rename). Under Slurm, Lightning's
    ``SLURMEnvironment`` ranks the tasks but leaves preemption signals to ``ResumeCheckpoint`` (it saves
    at a step boundary and requeues; Lightning's own handler would save in the middle of a step).
    """
    from hydra.utils import instantiate
    from lightning.pytorch.plugins.environments import SLURMEnvironment

    from segval.callbacks.resume import AtomicCheckpointIO

    plugins = list(cfg.trainer.get("plugins") or [])
    if not plugins:
        plugins = [AtomicCheckpointIO()]
        if SLURMEnvironment.detect():
            plugins.append(SLURMEnvironment(auto_requeue=False))
    return instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, plugins=plugins)


def resolve_ckpt_path(ckpt_path: str | None, out_dir: Path) -> str | None:
    """``ckpt_path=auto``: ``<run dir>/checkpoints/last.ckpt`` when there is one, else None (a fresh start).

    Any other value is returned as given (a path, or None).
    """
    if ckpt_path != "auto":
        return ckpt_path
    last = out_dir / "checkpoints" / "last.ckpt"
    if last.is_file():
        log.info("ckpt_path=auto: resuming %s", last)
        return str(last)
    log.info("ckpt_path=auto: no %s, starting fresh", last)
    return None


def train_in_subprocess(run_dir: Path, overrides: list[str], *, what: str) -> Path:
    """``segval train <overrides>`` into ``run_dir`` in its own process (Lightning's bar shows, DDP works) and the
    checkpoint it ends with; resumable: a finished run (``metrics.json`` and a checkpoint) is not trained again,
    an interrupted one resumes from its ``last.ckpt``.

    Raises:
        SegvalError: the training failed (its exit code and where its log is).
    """
    import json
    import subprocess

    done = _finished_checkpoint(run_dir)
    if done is not None:
        print(f"{what}: done before ({run_dir}), not trained again", flush=True)
        return done
    resume = ["ckpt_path=auto"] if (run_dir / "checkpoints" / "last.ckpt").is_file() else []
    cmd = [sys.executable, "-m", "segval.commands.train", *overrides, *resume, f"hydra.run.dir={run_dir}"]
    print(f"{what}: segval train {' '.join(overrides + resume)}" + (" (resumed)" if resume else ""), flush=True)
    code = subprocess.run(cmd, check=False).returncode
    done = _finished_checkpoint(run_dir)
    if code != 0 or done is None:
        raise SegvalError(f"{what}: segval train exited with {code} (run directory {run_dir}); fix what it printed, "
                          "then run the same command again: finished runs are kept")
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    miou = (metrics.get("summary") or {}).get("mIoU")
    print(f"{what}: val mIoU {'n/a' if miou is None else f'{100 * miou:.1f}'} -> {done}", flush=True)
    return done


def _finished_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint of a finished train run (its metrics.json names it, else its newest best / last), or None."""
    import json

    metrics = run_dir / "metrics.json"
    if not metrics.is_file():
        return None
    named = json.loads(metrics.read_text(encoding="utf-8")).get("checkpoint")
    if named and Path(named).is_file():
        return Path(named)
    ckpts = sorted((run_dir / "checkpoints").glob("best-*.ckpt")) or sorted((run_dir / "checkpoints").glob("last.ckpt"))
    return ckpts[-1] if ckpts else None
