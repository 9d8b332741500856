"""A content hash of a dataset: SHA-256 over every byte a model could learn from.

Two runs that claim the same dataset version must have seen the same data; the hash recorded in
``metrics.json`` (``dataset.content_hash``), in checkpoints and in W&B lets ``segval compare`` /
``segval gate`` check that.

What is hashed, in this order (paths relative to the package root, POSIX separators, sorted
byte-wise, hidden files and folders skipped):

1. ``dataset.yaml``;
2. every file under ``annotations/``, ``label_maps/``, ``panoptic/`` (and a top-level
   ``panoptic*.json``), then ``images/``.

Each file contributes ``<relative path> NUL <size in bytes> NUL <bytes>``, read in 1 MiB chunks, so
the memory use does not depend on the file size and renaming, moving or changing one byte of any
file changes the hash. The dataset card (README.md) and CHANGELOG.md are not data and are left out.

A plain COCO export (no dataset.yaml) is hashed the same way over its annotation file and the
images its ``file_name`` entries name.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from segval.errors import DatasetError

CHUNK = 1 << 20
#: folders of a package whose files are data (hashed after dataset.yaml, in this order)
DATA_FOLDERS = ("annotations", "label_maps", "panoptic", "images")


def _walk(folder: Path) -> list[Path]:
    """Files under ``folder`` (recursive, hidden entries skipped), sorted by relative POSIX path."""
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        out.extend(Path(dirpath) / f for f in filenames if not f.startswith("."))
    return sorted(out, key=lambda p: p.relative_to(folder).as_posix().encode())


def package_files(root: str | os.PathLike) -> list[tuple[str, Path]]:
    """``(relative name, path)`` of every hashed file of a package, in hashing order.

    Raises:
        DatasetError: ``root`` has no dataset.yaml.
    """
    root = Path(root)
    meta = root / "dataset.yaml"
    if not meta.is_file():
        raise DatasetError("dataset.yaml not found: not a dataset package (point to the folder holding it)", path=meta)
    files = [("dataset.yaml", meta)]
    files += [(p.name, p) for p in sorted(root.glob("panoptic*.json")) if p.is_file()]
    for sub in DATA_FOLDERS:
        if (root / sub).is_dir():
            files += [(p.relative_to(root).as_posix(), p) for p in _walk(root / sub)]
    return files


def hash_files(files: Iterable[tuple[str, Path]], *, progress: Callable[[Iterable], Iterable] | None = None) -> str:
    """SHA-256 (hex) over ``name NUL size NUL bytes`` of each file, streamed, in the given order."""
    h = hashlib.sha256()
    items = list(files)
    for name, path in (progress(items) if progress else items):
        try:
            size = path.stat().st_size
            h.update(name.encode("utf-8") + b"\0" + str(size).encode() + b"\0")
            with open(path, "rb") as f:
                while chunk := f.read(CHUNK):
                    h.update(chunk)
        except OSError as err:
            raise DatasetError(f"cannot read it for the content hash ({err.strerror or err})", path=path) from None
    return h.hexdigest()


def package_content_hash(root: str | os.PathLike, *, progress: Callable[[Iterable], Iterable] | None = None) -> str:
    """The content hash (64 hex digits) of the dataset package at ``root`` (see the module doc)."""
    return hash_files(package_files(root), progress=progress)


def coco_content_hash(annotations: str | os.PathLike, images: str | os.PathLike, file_names: Iterable[str]) -> str:
    """The content hash of a plain COCO export: its annotation file, then the named images (sorted).

    ``file_names`` are the COCO ``file_name`` entries, relative to ``images``.
    """
    ann = Path(annotations)
    names = sorted({str(n).replace(os.sep, "/") for n in file_names}, key=lambda n: n.encode())
    return hash_files([(ann.name, ann), *((f"images/{n}", Path(images) / n) for n in names)])


def dataset_content_hash(pkg: object) -> str:
    """The content hash of an opened :class:`~segval.dataset.package.DatasetPackage` (a package
    folder, or a plain COCO export wrapped by ``DatasetPackage.from_coco``).

    Computed once per package object (kept on it as ``_segval_content_hash``).
    """
    cached = getattr(pkg, "_segval_content_hash", None)
    if cached is not None:
        return cached
    root = Path(pkg.root)  # type: ignore[attr-defined]
    if (root / "dataset.yaml").is_file():
        digest = package_content_hash(root)
    else:
        split = pkg.split(pkg.splits[0])  # type: ignore[attr-defined]
        digest = coco_content_hash(split.annotation_path, root, (rec.file_name for rec in split.images))
    pkg._segval_content_hash = digest  # type: ignore[attr-defined]
    return digest
