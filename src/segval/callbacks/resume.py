"""Checkpoints a killed or preempted run resumes from exactly.

:class:`ResumeCheckpoint` is the ``model_checkpoint`` callback of ``segval train``: Lightning's
``ModelCheckpoint`` (best checkpoint on ``val/mIoU`` at each validation) that also

* writes ``last.ckpt`` at every validation and every ``every_n_train_steps`` steps (default: 5 % of
  ``max_steps``, so a kill loses at most 5 % of the run);
* keeps the training RNG stream (torch, numpy, python, CUDA) apart from everything that runs between
  two steps (validation, loader start-up, checkpointing) and saves it in the checkpoint, so a resumed run
  draws the same random numbers as an uninterrupted one (the data order and the per-sample augmentation
  seeds are restored by :mod:`segval.datamodules.sampler`, the optimizer and scheduler by Lightning);
* on SIGTERM / SIGUSR1 / SIGUSR2 (a cluster's preemption or time-limit warning) finishes the current
  step, saves ``last.ckpt``, requeues the Slurm job when running under Slurm, and exits with
  128 + the signal number.

:class:`AtomicCheckpointIO` writes every checkpoint to a temporary file beside its target, syncs it to
disk and renames it into place, so a kill never leaves a truncated ``last.ckpt``.
"""

from __future__ import annotations

import logging
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint

from segval.errors import ConfigError, SegvalError
from segval.io import FILE_MODE, remove_stale_temporaries, temp_prefix

log = logging.getLogger("segval")

#: the share of a run a kill may lose at most (the default interval of ``last.ckpt``)
LOSS_BUDGET = 0.05
#: what a partial checkpoint left by a kill is called (ignored, and removed by the next run)
PARTIAL_SUFFIX = ".partial"


class Preempted(SystemExit):
    """The run stopped on a preemption signal after saving ``last.ckpt``; exit code 128 + signal."""


# ---------------------------------------------------------------------------------------------- RNG state
def rng_state() -> dict[str, Any]:
    """The process's random states: torch (CPU and CUDA), numpy's global and python's ``random``."""
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _plain_rng(state: dict[str, Any]) -> dict[str, Any]:
    """The state as tensors, lists and numbers only (a checkpoint loads with ``weights_only=True``)."""
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    version, internal, gauss_next = state["python"]
    out = {"torch": state["torch"], "numpy": [kind, torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos),
                                               int(has_gauss), float(gauss)],
           "python": [int(version), list(internal), gauss_next]}
    if "cuda" in state:
        out["cuda"] = list(state["cuda"])
    return out


def _from_plain_rng(plain: dict[str, Any]) -> dict[str, Any]:
    kind, keys, pos, has_gauss, gauss = plain["numpy"]
    version, internal, gauss_next = plain["python"]
    out = {"torch": plain["torch"], "numpy": (kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss),
           "python": (version, tuple(internal), gauss_next)}
    if "cuda" in plain:
        out["cuda"] = plain["cuda"]
    return out


# ---------------------------------------------------------------------------------------------- the callback
class ResumeCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` plus ``last.ckpt`` every N steps, the RNG stream in the checkpoint and preemption.

    Args:
        every_n_train_steps: write ``last.ckpt`` every this many optimizer steps; ``None`` = 5 % of
            ``trainer.max_steps`` (at least 1); 0 = only at validations. Steps at which a validation
            runs are saved after it (with the validation's metrics), never before it.
        signals: names of the signals that stop the run cleanly (``[]`` = leave signals to Lightning).
        requeue: ``"auto"`` requeues the Slurm job (``scontrol requeue $SLURM_JOB_ID``) after a
            preemption signal when running under Slurm; ``True`` / ``False`` force it.
        **kwargs: :class:`lightning.pytorch.callbacks.ModelCheckpoint` arguments (``save_last`` is
            always on, under the name ``last.ckpt``).
    """

    def __init__(self, *, every_n_train_steps: int | None = None, signals: list[str] | None = None,
                 requeue: bool | str = "auto", **kwargs: Any) -> None:
        kwargs.pop("save_last", None)
        kwargs.setdefault("enable_version_counter", False)  # always last.ckpt, never last-v1.ckpt
        super().__init__(save_last=True, **kwargs)
        if every_n_train_steps is not None and every_n_train_steps < 0:
            raise ConfigError(f"callbacks.model_checkpoint.every_n_train_steps must be >= 0 or null, "
                              f"got {every_n_train_steps}")
        self.last_every = every_n_train_steps
        names = list(signals if signals is not None else ["SIGTERM", "SIGUSR1", "SIGUSR2"])
        unknown = [n for n in names if not hasattr(signal, str(n))]
        if unknown:
            raise ConfigError(f"callbacks.model_checkpoint.signals: unknown signal(s) {unknown}; use names such as "
                              "SIGTERM, SIGUSR1")
        self.signals = [getattr(signal, str(n)) for n in names]
        if requeue not in ("auto", True, False):
            raise ConfigError(f"callbacks.model_checkpoint.requeue must be auto, true or false, got {requeue!r}")
        self.requeue = requeue
        self._rng: dict[str, Any] | None = None  # the training stream at the end of the last step
        self._received: int | None = None  # the preemption signal received, if any
        self._previous_handlers: dict[int, Any] = {}

    # -- state ---------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        if self._rng is not None:
            state["rng"] = _plain_rng(self._rng)
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        rng = state_dict.pop("rng", None)
        super().load_state_dict(state_dict)
        self._rng = None if rng is None else _from_plain_rng(rng)

    # -- set-up --------------------------------------------------------------------------------------
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if trainer.is_global_zero and self.dirpath and Path(self.dirpath).is_dir():
            remove_stale_temporaries(self.dirpath)  # left by a killed save

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        if self.last_every is None:
            total = trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else trainer.estimated_stepping_batches
            self.last_every = max(1, int(total * LOSS_BUDGET)) if math.isfinite(total) else 0
        self._install_handlers(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._restore_handlers()

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._restore_handlers()

    # -- steps ---------------------------------------------------------------------------------------
    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        if self._rng is not None:  # undo what ran since the last step (validation, loaders), or a resume
            set_rng_state(self._rng)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self._rng = rng_state()
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if self._should_skip_saving_checkpoint(trainer) or _validation_due(trainer):
            return  # saved after the validation of this step
        preempted = self._preempted(trainer)
        if preempted or (self.last_every and trainer.global_step % self.last_every == 0):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        if preempted:
            self._stop(trainer)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)  # best checkpoint (+ last.ckpt when it improved)
        if trainer.state.fn != "fit" or trainer.sanity_checking:
            return
        if not self._should_skip_saving_checkpoint(trainer):  # last.ckpt at every validation
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        if self._preempted(trainer):
            self._stop(trainer)

    # -- preemption ------------------------------------------------------------------------------------
    def _install_handlers(self, trainer: pl.Trainer) -> None:
        if not self.signals or self._previous_handlers:
            return

        def handler(signum: int, frame: Any) -> None:
            self._received = signum
            launcher = trainer.strategy.launcher
            if launcher is not None and hasattr(launcher, "kill"):  # processes this one started (DDP)
                launcher.kill(signum)

        for sig in self.signals:
            try:
                self._previous_handlers[sig] = signal.signal(sig, handler)
            except ValueError:  # not the main thread: leave signals to Lightning
                break

    def _restore_handlers(self) -> None:
        for sig, previous in self._previous_handlers.items():
            signal.signal(sig, previous)
        self._previous_handlers = {}

    def _preempted(self, trainer: pl.Trainer) -> bool:
        """Whether a signal asked this run (any rank of it) to stop; every rank agrees on the same step."""
        if not self.signals:
            return False
        if trainer.world_size > 1:
            return bool(trainer.strategy.reduce_boolean_decision(self._received is not None, all=False))
        return self._received is not None

    def _stop(self, trainer: pl.Trainer) -> None:
        signum = self._received or signal.SIGTERM
        name = signal.Signals(signum).name
        where = Path(self.dirpath or ".") / f"{self.CHECKPOINT_NAME_LAST}{self.FILE_EXTENSION}"
        requeued = self._requeue() if trainer.is_global_zero else False
        if trainer.is_global_zero:
            print(f"segval train: {name} received: stopped at step {trainer.global_step}, checkpoint {where}; "
                  + ("the Slurm job was requeued" if requeued else
                     "rerun the same command with ckpt_path=auto (same hydra.run.dir) to continue"),
                  file=sys.stderr, flush=True)
        raise Preempted(128 + int(signum))

    def _requeue(self) -> bool:
        job = os.environ.get("SLURM_JOB_ID")
        if self.requeue is False or (self.requeue == "auto" and not job):
            return False
        if os.environ.get("SLURM_ARRAY_JOB_ID") and os.environ.get("SLURM_ARRAY_TASK_ID"):
            job = f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}"
        if not job:
            log.warning("requeue=true but SLURM_JOB_ID is not set: not requeued")
            return False
        result = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            log.warning("scontrol requeue %s failed: %s", job, result.stderr.strip())
        return result.returncode == 0


def _validation_due(trainer: pl.Trainer) -> bool:
    """Whether Lightning validates after the step that just ended (its own rule)."""
    loop = trainer.fit_loop.epoch_loop
    try:
        return bool(loop._should_check_val_fx(trainer.fit_loop._data_fetcher))
    except Exception:  # a Lightning without this private rule: save anyway
        return False


# ---------------------------------------------------------------------------------------------- writing
class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` to a temporary file beside the target, fsync, then rename onto it.

    A kill leaves the previous checkpoint intact (and at most a ``.<name>.*.partial`` file that the next run
    removes once its process is gone); a full disk or a read-only folder is a :class:`SegvalError` naming the path.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO.save_checkpoint takes no storage_options")
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path.name), suffix=PARTIAL_SUFFIX, dir=path.parent)
        except OSError as err:
            raise _write_error(path, err) from err
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, FILE_MODE)
            os.replace(tmp, path)
        except BaseException as err:
            Path(tmp).unlink(missing_ok=True)
            if isinstance(err, OSError):
                raise _write_error(path, err) from err
            raise


def _write_error(path: Path, err: OSError) -> SegvalError:
    from segval.io import write_error

    return write_error(path, err)
