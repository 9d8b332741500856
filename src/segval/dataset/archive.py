"""Zip and tar archives of exports, read or unpacked without letting an entry out of its folder.

An archive from a labelling tool is input like any other: an entry named ``../../.bashrc`` or ``/etc/x``
(zip-slip), a symbolic or hard link pointing outside, a device file or a decompression bomb must be refused
before anything is read or written.

* :func:`checked_members` lists the entries of a zip or tar after these checks;
* :func:`read_member` reads one entry of an archive into memory (size-limited);
* :func:`extract` unpacks an archive into a new folder (atomically: all or nothing).
"""

from __future__ import annotations

import os
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from segval.errors import DatasetError

__all__ = ["MAX_UNPACKED_BYTES", "checked_members", "extract", "read_member"]

#: refuse archives that unpack to more than this (a decompression bomb); raise it for huge exports
MAX_UNPACKED_BYTES = 64 * 2**30


def _unsafe(name: str) -> str | None:
    """Why the entry name ``name`` would leave the target folder, or None when it stays inside."""
    posix = name.replace("\\", "/")
    if posix.startswith("/") or (len(posix) > 1 and posix[1] == ":"):
        return "an absolute path"
    if ".." in PurePosixPath(posix).parts:
        return "a path with '..'"
    if "\x00" in posix:
        return "a NUL character"
    return None


def checked_members(path: str | os.PathLike, *, max_bytes: int = MAX_UNPACKED_BYTES) -> list[str]:
    """The file entries of a zip or tar archive, after refusing any that could escape or overflow.

    Raises:
        DatasetError: not a zip / tar; an entry with an absolute path, ``..``, a link or a device; more than
            ``max_bytes`` unpacked. The message names the archive and the entry.
    """
    path = Path(path)
    names: list[str] = []
    total = 0
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                why = _unsafe(info.filename)
                is_link = (info.external_attr >> 16) & 0o170000 == 0o120000
                if why or is_link:
                    raise DatasetError(f"archive entry {info.filename!r} is {why or 'a symbolic link'}: it could "
                                       "write outside the target folder (zip-slip); refusing the archive", path=path)
                total += info.file_size
                if not info.is_dir():
                    names.append(info.filename)
    elif tarfile.is_tarfile(path):
        with tarfile.open(path) as t:
            for m in t.getmembers():
                why = _unsafe(m.name)
                if why is None and not (m.isfile() or m.isdir()):
                    why = "a link or special file"
                if why:
                    raise DatasetError(f"archive entry {m.name!r} is {why}: it could write outside the target "
                                       "folder (tar-slip); refusing the archive", path=path)
                total += m.size
                if m.isfile():
                    names.append(m.name)
    else:
        raise DatasetError("not a zip or tar archive", path=path)
    if total > max_bytes:
        raise DatasetError(f"the archive unpacks to {total} bytes, over the limit of {max_bytes}; unpack it yourself "
                           "if it is genuine", path=path)
    return names


def read_member(path: str | os.PathLike, name: str, *, max_bytes: int = MAX_UNPACKED_BYTES) -> bytes:
    """The bytes of entry ``name`` of a checked archive (:func:`checked_members`)."""
    path = Path(path)
    if name not in checked_members(path, max_bytes=max_bytes):
        raise DatasetError(f"no entry {name!r} in the archive", path=path)
    return next(_read(path, [name]))[1]


def extract(path: str | os.PathLike, target: str | os.PathLike, *, max_bytes: int = MAX_UNPACKED_BYTES) -> Path:
    """Unpack a checked archive into the new folder ``target`` (written atomically; never overwritten)."""
    from segval.io import atomic_dir

    path = Path(path)
    names = checked_members(path, max_bytes=max_bytes)
    with atomic_dir(target) as tmp:
        root = tmp.resolve()
        for name, data in _read(path, names):
            dst = (tmp / name.replace("\\", "/")).resolve()
            if root not in dst.parents:  # belt and braces after checked_members
                raise DatasetError(f"archive entry {name!r} resolves outside the target folder", path=path)
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(data)
    return Path(target)


def _read(path: Path, names: list[str]):
    """``(name, bytes)`` of these entries, the archive opened once."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            for name in names:
                yield name, z.read(name)
        return
    with tarfile.open(path) as t:
        for name in names:
            f = t.extractfile(name)
            assert f is not None  # a checked file entry
            yield name, f.read()
