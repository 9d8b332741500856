"""Atomic file writes, and numbers as the JSON files hold them.

Every write goes to a temporary path beside the target and is renamed into place: a crash or an error
never leaves a half-written file or folder where a user expects a finished one. Torch-free, so commands
that only read results (``segval gate``) start fast.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import json
import math
import os
import re
import shutil
import socket
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from segval.errors import LockedError, OutputError

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
    return OutputError(f"cannot write ({advice}); nothing was written there", path=public_path(path))


def public_path(path: str | os.PathLike) -> Path:
    """``path`` as the user will see it: a temporary folder or file of this module named as its target
    (``out/.pkg.segval-host-1-x.partial/a.json`` -> ``out/pkg/a.json``)."""
    parts = [m["name"] if (m := _STALE.match(part)) else part for part in Path(path).parts]
    return Path(*parts) if parts else Path(path)


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


# ---------------------------------------------------------------------------------------- temporary names
_HOST = re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname())[:40] or "host"
_STALE = re.compile(r"^\.(?P<name>.+)\.segval-(?P<host>[A-Za-z0-9_]+)-(?P<pid>\d+)-[^.]*(\..*)?$")


def temp_prefix(name: str) -> str:
    """``.<name>.segval-<host>-<pid>-``: hidden, and says which process owns it (stale once it is gone)."""
    return f".{name}.segval-{_HOST}-{os.getpid()}-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(folder: str | os.PathLike, name: str | None = None) -> list[Path]:
    """Remove the temporary files / folders a killed segval process left in ``folder`` (those of ``name``
    only, when given); a live process's (another command writing now) are kept. Returns what was removed.

    Temporaries are hidden (``.<name>.segval-<host>-<pid>-*``), so no reader takes them for
    output even before they are removed.
    """
    folder = Path(folder)
    removed: list[Path] = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for p in entries:
        m = _STALE.match(p.name)
        if not m or (name is not None and m["name"] != name) or m["host"] != _HOST or _alive(int(m["pid"])):
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        removed.append(p)
    _recover_old(folder, name)
    return removed


def _recover_old(folder: Path, name: str | None) -> None:
    """A kill between the two renames of a folder replacement left ``.<name>.old`` and no ``<name>``: put the
    previous state back."""
    olds = [folder / f".{name}.old"] if name is not None else list(folder.glob(".*.old"))
    for old in olds:
        target = folder / old.name[1:-len(".old")]
        if old.is_dir() and not target.exists():
            os.replace(old, target)


# ---------------------------------------------------------------------------------------- atomic writers
@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, *, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary file path beside ``target``; rename it onto ``target`` on success.

    On an exception the temporary file is removed and ``target`` is left as it was; an ``OSError`` (full
    disk, read-only folder) becomes an :class:`OutputError` naming ``target``. Temporaries of killed
    processes beside ``target`` are removed first.
    """
    target = Path(target)
    with user_write_errors(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(target.parent, target.name)
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(target.name), suffix=suffix or ".tmp", dir=target.parent)
        os.close(fd)
    tmp_path = Path(tmp)
    try:
        with user_write_errors(target):
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

    A reader sees the previous ``target`` or the complete new one, never a partial folder: the temporary
    folder is hidden (``.<name>.segval-<host>-<pid>-*.partial``, removed by the next writer once its
    process is gone) and an existing ``target`` is swapped with it in one ``renameat2(RENAME_EXCHANGE)``
    where the system has it.

    Args:
        target: the folder to create.
        overwrite: replace an existing ``target``; when False an existing one is an error
            raised before anything is written.

    Raises:
        FileExistsError: ``target`` exists and ``overwrite`` is False.
        OutputError: the folder cannot be written (full disk, read-only, no permission).
    """
    target = Path(target)
    with user_write_errors(target):
        if target.parent.is_dir():
            remove_stale_temporaries(target.parent, target.name)
        if target.exists() and not overwrite:
            raise FileExistsError(f"{target} already exists; refusing to overwrite it")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(target.name), suffix=".partial", dir=target.parent))
    try:
        with user_write_errors(target):
            yield tmp
            os.chmod(tmp, DIR_MODE)
            if target.exists():
                if not overwrite:  # created by another process while this one wrote
                    raise FileExistsError(f"{target} was created by another process meanwhile; refusing to "
                                          "overwrite it")
                _replace_dir(tmp, target)
            else:
                try:
                    os.replace(tmp, target)
                except OSError as err:
                    if err.errno in (errno.ENOTEMPTY, errno.EEXIST):
                        raise FileExistsError(f"{target} was created by another process meanwhile; refusing "
                                              "to overwrite it") from err
                    raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _replace_dir(new: Path, target: Path) -> None:
    """Put folder ``new`` at ``target`` (which exists); the old content is deleted."""
    if _exchange(new, target):  # new <-> target in one step: `new` now holds the old content
        shutil.rmtree(new, ignore_errors=True)
        return
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    os.replace(target, old)  # a kill here is undone by the next writer (_recover_old)
    os.replace(new, target)
    shutil.rmtree(old, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically with Linux ``renameat2(RENAME_EXCHANGE)``; False where unavailable."""
    if sys.platform != "linux":
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    ok = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0
    if not ok and ctypes.get_errno() not in (errno.EINVAL, errno.ENOSYS, errno.EXDEV):
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()), str(b))
    return ok


# ---------------------------------------------------------------------------------------- locks
LOCK_NAME = ".segval.lock"


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, what: str) -> Iterator[Path]:
    """Hold ``<folder>/.segval.lock`` (``fcntl.flock``, exclusive, not waiting) while writing into ``folder``.

    The kernel drops the lock when its process ends, killed or not, so a stale lock file never blocks.

    Raises:
        LockedError: another process holds it (the message names it and what to do).
    """
    import fcntl

    folder = Path(folder)
    lock = folder / LOCK_NAME
    with user_write_errors(lock):
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
            raise LockedError(f"{folder} is being written by {holder} (lock {lock}); wait until it has finished, "
                              f"then run {what} again") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{what} (pid {os.getpid()} on {socket.gethostname()})\n".encode(), 0)
        yield lock
    finally:
        os.close(fd)  # releases the lock


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


def shipped_defaults(config: str, key: str) -> Any:
    """The ``key`` block (dotted) of ``conf/<config>.yaml`` as shipped with segval.

    A command's settings have their defaults written once, in its YAML (where ``--cfg job`` shows them and
    Hydra overrides them); the dataclass that checks the settings reads its defaults from here.
    """
    from importlib import resources

    import yaml

    text = resources.files("segval").joinpath("conf").joinpath(f"{config}.yaml").read_text(encoding="utf-8")
    block = yaml.safe_load(text)
    for part in key.split("."):
        block = block[part]
    return copy.deepcopy(block)
