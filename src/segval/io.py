"""Atomic file writes, and numbers as the JSON files hold them.

Every write goes to a temporary path beside the target and is renamed into place: a crash or an error
never leaves a half-written file or folder where a user expects a finished one. Torch-free, so commands
that only read results (``segval gate``) start fast.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


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
