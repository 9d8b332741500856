"""ResumeCheckpoint's pieces: the RNG state round trip through a safe checkpoint, the atomic writer,
the 5 % default interval and the signal configuration."""

from __future__ import annotations

import errno
import io
import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from segval.callbacks.resume import AtomicCheckpointIO, ResumeCheckpoint, rng_state, set_rng_state
from segval.errors import ConfigError, OutputError
from segval.io import FILE_MODE


def draws() -> tuple:
    return torch.rand(3).tolist(), np.random.rand(3).tolist(), [random.random() for _ in range(3)]


def test_rng_state_round_trips_through_a_weights_only_checkpoint() -> None:
    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    cb = ResumeCheckpoint()
    cb._rng = rng_state()
    expected = draws()
    buf = io.BytesIO()
    torch.save({"cb": cb.state_dict()}, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=True)["cb"]
    draws()  # move every generator on
    other = ResumeCheckpoint()
    other.load_state_dict(loaded)
    set_rng_state(other._rng)
    assert draws() == expected


def test_atomic_checkpoint_io_leaves_the_previous_file_on_a_failure(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "ckpt" / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"step": 1}, target)
    assert torch.load(target, weights_only=True) == {"step": 1}
    assert target.stat().st_mode & 0o777 == FILE_MODE  # as open() would create it, not mkstemp's 0600

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OutputError, match=r"last\.ckpt.*no space left"):
        AtomicCheckpointIO().save_checkpoint({"step": 2}, target)
    assert torch.load(target, weights_only=True) == {"step": 1}
    assert sorted(p.name for p in target.parent.iterdir()) == ["last.ckpt"]


def test_read_only_checkpoint_folder_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", denied)  # a read-only folder (the tests may run as root)
    with pytest.raises(OutputError, match="permission denied") as err:
        AtomicCheckpointIO().save_checkpoint({"step": 1}, tmp_path / "last.ckpt")
    assert err.value.path == str(tmp_path / "last.ckpt")
    assert not (tmp_path / "last.ckpt").exists()


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ConfigError, match="SIGNOPE"):
        ResumeCheckpoint(signals=["SIGNOPE"])
    with pytest.raises(ConfigError, match="every_n_train_steps"):
        ResumeCheckpoint(every_n_train_steps=-1)
    with pytest.raises(ConfigError, match="requeue"):
        ResumeCheckpoint(requeue="maybe")
