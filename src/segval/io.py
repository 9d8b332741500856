"""Atomic file writes, and numbers as the JSON files hold them.

Every write goes to a temporary path beside the target and is renamed into place: a crash or an error
never leaves a half-written file or folder where a user expects a finished one. Torch-free, so commands
that only read results (``segval gate``) start fast.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from segval.errors import OutputError

#: what to do about an OSError of a writer, by errno
_WRITE_ADVICE = {
    errno.ENOSPC: "no space left on the device; free some space or write to another folder",
    errno.EDQUOT: "the disk quota is exceeded; free some space or write to another folder",
    errno.EACCES: "permission denied; write to a folder you can write to, or fix its permissions",
    errno.EPERM: "operation not permitted; write to a folder you can write to, or fix its permissions",
    errno.EROFS: "the file system is read-only; write to another folder",
}


def write_error(path: str | os.PathLike, err: OSError) -> OutputError:
    """The user error for an ``OSError`` raised while writing ``path``: what failed and what to do.

    Nothing partial is left behind by the writers of this module, so the message can say so.
    """
    advice = _WRITE_ADVICE.get(err.errno or -1, f"{err.strerror or err}; check the output folder")
    return OutputError(f"cannot write ({advice}); nothing was written there", path=path)


@contextlib.contextmanager
def user_write_errors(path: str | os.PathLike) -> Iterator[None]:
    """Turn an ``OSError`` of a writer inside the block into an :class:`OutputError` naming ``path``."""
    try:
        yield
    except OutputError:
        raise
    except OSError as err:
        if isinstance(err, (FileExistsError, FileNotFoundError, IsADirectoryError, NotADirectoryError)) \
                and err.errno not in _WRITE_ADVICE:
            raise
        raise write_error(getattr(err, "filename", None) or path, err) from err


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


#: permissions of what the writers create: as ``open()`` / ``mkdir()`` would (mkstemp / mkdtemp make 0600 / 0700)
FILE_MODE = 0o666 & ~_umask()
DIR_MODE = 0o777 & ~_umask()


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, *, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary file path beside ``target``; rename it onto ``target`` on success.

    On an exception the temporary file is removed and ``target`` is left as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix or ".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():
            os.chmod(tmp_path, FILE_MODE)
        os.replace(tmp_path, target)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_text(target: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``target`` atomically; returns the target path."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(target)


def write_json(target: str | os.PathLike, obj: Any, *, indent: int | None = 2) -> Path:
    """Write ``obj`` as JSON (NaN written as ``NaN``, as Python's json does) atomically."""
    return write_text(target, json.dumps(obj, indent=indent) + "\n")


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside ``target``; rename it onto ``target`` on success.

    Args:
        target: the folder to create.
        overwrite: replace an existing ``target``; when False an existing one is an error
            raised before anything is written.

    Raises:
        FileExistsError: ``target`` exists and ``overwrite`` is False.
    """
    target = Path(target)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} already exists; refusing to overwrite it")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    try:
        yield tmp
        os.chmod(tmp, DIR_MODE)
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def optional_float(x: Any) -> float | None:
    """A python float, or None for what is undefined: NaN (a class absent from ground truth and
    prediction), None, or a value that is not a number. NaN is written as null in JSON."""
    if x is None or isinstance(x, bool):
        return None
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(x) else x
