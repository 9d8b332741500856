"""``per_image.csv``: per-image scores streamed to disk (never all predictions in memory), merged across
ranks, and read back. The columns and their definitions are in :mod:`segval.metrics.functional.label_quality`.
"""

from __future__ import annotations

import contextlib
import csv
import heapq
import math
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from segval.io import atomic_path, temp_prefix, user_write_errors

__all__ = ["BASE_COLUMNS", "PerImageCsvWriter", "merge_parts", "per_image_columns", "read_per_image_csv"]

#: the columns before the per-class ``disagree_<metric_name>`` ones
BASE_COLUMNS = (
    "image_id",
    "pixels",
    "mIoU",
    "pixel_acc",
    "label_quality",
    "top_confused_gt",
    "top_confused_pred",
    "top_confused_pixels",
)
_INT_COLUMNS = {"image_id", "pixels", "top_confused_pixels"}
_NAME_COLUMNS = {"top_confused_gt", "top_confused_pred"}


def per_image_columns(metric_names: Sequence[str]) -> list[str]:
    """The header of ``per_image.csv`` for classes named (as metric keys) ``metric_names``."""
    return [*BASE_COLUMNS, *(f"disagree_{n}" for n in metric_names)]


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        return "nan" if math.isnan(x) else repr(x)
    return str(x)


class PerImageCsvWriter:
    """Stream per-image rows to ``path``: a temporary file beside it, renamed into place on ``close()``.

    Rows are written as they come (nothing is kept in memory). Used as a context manager, an
    exception removes the temporary file and leaves ``path`` as it was.

    Args:
        path: the CSV to produce.
        class_names: C names in train-index order (written in the ``top_confused_*`` columns).
        metric_names: C names used in the ``disagree_<name>`` headers (default: ``class_names``
            with "/" replaced by "_", as ``SegmentationModule.metric_names``).
    """

    def __init__(self, path: str | os.PathLike, class_names: Sequence[str],
                 metric_names: Sequence[str] | None = None) -> None:
        self.path = Path(path)
        self.class_names = list(class_names)
        self.metric_names = list(metric_names) if metric_names is not None else [
            n.replace("/", "_") for n in self.class_names
        ]
        if len(self.metric_names) != len(self.class_names):
            raise ValueError(f"metric_names has {len(self.metric_names)} names for {len(self.class_names)} classes")
        self.columns = per_image_columns(self.metric_names)
        self.rows_written = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(self.path.name), suffix=".tmp", dir=self.path.parent)
        self._tmp = Path(tmp)
        self._file: TextIO | None = os.fdopen(fd, "w", encoding="utf-8", newline="")
        self._csv = csv.writer(self._file)
        self._csv.writerow(self.columns)

    def write_rows(self, image_ids: Iterable[Any], rows: Sequence[dict[str, Any]]) -> None:
        """Append the rows of :func:`per_image_scores` for these image ids (same order and length)."""
        if self._file is None:
            raise ValueError(f"{self.path}: the writer is closed")
        ids = [int(i) for i in (image_ids.tolist() if hasattr(image_ids, "tolist") else image_ids)]
        if len(ids) != len(rows):
            raise ValueError(f"{len(ids)} image ids for {len(rows)} rows")
        c = len(self.class_names)
        for image_id, row in zip(ids, rows):
            if len(row["disagree"]) != c:
                raise ValueError(f"image {image_id}: {len(row['disagree'])} disagree counts for {c} classes")
            gt, pred = row["top_confused_gt"], row["top_confused_pred"]
            self._csv.writerow(
                [
                    image_id,
                    row["pixels"],
                    _fmt(row["mIoU"]),
                    _fmt(row["pixel_acc"]),
                    _fmt(row["label_quality"]),
                    "" if gt is None else self.class_names[gt],
                    "" if pred is None else self.class_names[pred],
                    row["top_confused_pixels"],
                    *row["disagree"],
                ]
            )
        self.rows_written += len(ids)

    def close(self) -> Path:
        """Finish the file and rename it onto ``path`` (atomic); returns ``path``."""
        if self._file is not None:
            try:
                with user_write_errors(self.path):  # a full disk: OutputError naming the file, nothing renamed
                    self._file.flush()
                    os.fsync(self._file.fileno())
                    self._file.close()
                    self._file = None
                    os.replace(self._tmp, self.path)
            except BaseException:
                self.abort()
                raise
        return self.path

    def abort(self) -> None:
        """Drop the temporary file; ``path`` is left as it was."""
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> PerImageCsvWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _part_rows(path: Path, header: list[str] | None) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    f = open(path, encoding="utf-8", newline="")  # noqa: SIM115 (closed by the generator)
    reader = csv.reader(f)
    own = next(reader, None)
    if own is None:
        f.close()
        raise ValueError(f"{path}: empty part file (no header)")
    if header is not None and own != header:
        f.close()
        raise ValueError(f"{path}: its columns differ from the first part's ({own[:3]}... vs {header[:3]}...)")

    def rows() -> Iterator[tuple[int, list[str]]]:
        with f:
            for row in reader:
                yield int(row[0]), row

    return own, rows()


def _is_sorted(path: Path) -> bool:
    _, rows = _part_rows(path, None)
    last = -math.inf
    for image_id, _ in rows:
        if image_id < last:
            for _ in rows:  # drain: closes the file
                pass
            return False
        last = image_id
    return True


def merge_parts(parts: Sequence[str | os.PathLike], path: str | os.PathLike, *, remove: bool = True) -> int:
    """Merge per-rank part files (same header) into ``path``, sorted by image_id, atomically.

    An image id seen twice is written once (the first row kept): a ``DistributedSampler`` pads
    the last batch of an uneven split with repeats of images that another rank already scored.
    Parts that are each sorted are merged as streams; otherwise their lines are sorted in memory
    (text rows only, a few hundred bytes per image).

    Args:
        parts: the part files (e.g. one per rank).
        path: the merged CSV.
        remove: delete the part files after a successful merge.

    Returns:
        The number of rows written.
    """
    paths = [Path(p) for p in parts]
    if not paths:
        raise ValueError("merge_parts needs at least one part file")
    header, first = _part_rows(paths[0], None)
    streams = [first] + [_part_rows(p, header)[1] for p in paths[1:]]
    if all(_is_sorted(p) for p in paths):
        merged: Iterable[tuple[int, list[str]]] = heapq.merge(*streams, key=lambda r: r[0])
    else:
        merged = sorted((r for s in streams for r in s), key=lambda r: r[0])  # stable: rank order on ties
    n = 0
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        last = None
        for image_id, row in merged:
            if image_id == last:
                continue
            writer.writerow(row)
            last = image_id
            n += 1
    if remove:
        for p in paths:
            p.unlink(missing_ok=True)
    return n


def read_per_image_csv(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of a ``per_image.csv`` as dicts: ints, floats (``nan`` -> NaN), names and empty cells -> None.

    Raises:
        SegvalError: the file has no ``image_id`` column (not a per_image.csv written by segval).
    """
    from segval.errors import SegvalError

    out = []
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or "image_id" not in reader.fieldnames:
            raise SegvalError(f"{path}: no 'image_id' column; is it a per_image.csv written by segval?")
        for row in reader:
            rec: dict[str, Any] = {}
            for key, value in row.items():
                if key in _NAME_COLUMNS or not value:
                    rec[key] = value or None
                elif key in _INT_COLUMNS or key.startswith("disagree_"):
                    rec[key] = int(value)
                else:
                    rec[key] = float(value)
            out.append(rec)
    return out
