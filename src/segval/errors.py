"""Errors a user can act on.

Every user-facing failure is a :class:`SegvalError`; the CLI prints its message (no traceback)
and exits with its ``exit_code``. Messages name the file / image id / annotation id, say what is
wrong and how to fix it.
"""

from __future__ import annotations


class SegvalError(Exception):
    """Base class of errors caused by the user's input or configuration (exit code 2)."""

    exit_code = 2


class DatasetError(SegvalError):
    """Bad data in a dataset package or COCO export.

    Args:
        message: what is wrong and how to fix it.
        path: the file involved, if any.
        image_id: the COCO image id involved, if any.
        annotation_id: the COCO annotation id involved, if any.
    """

    def __init__(
        self,
        message: str,
        *,
        path: object | None = None,
        image_id: int | None = None,
        annotation_id: int | None = None,
    ) -> None:
        self.path = None if path is None else str(path)
        self.image_id = image_id
        self.annotation_id = annotation_id
        where = []
        if self.path is not None:
            where.append(self.path)
        if image_id is not None:
            where.append(f"image id {image_id}")
        if annotation_id is not None:
            where.append(f"annotation id {annotation_id}")
        prefix = f"{', '.join(where)}: " if where else ""
        super().__init__(prefix + message)


class ConfigError(SegvalError, ValueError):
    """Bad configuration: an unknown key, a value out of range, a missing pretrained path."""


class TrainingError(SegvalError):
    """Training cannot go on (e.g. a NaN loss); the message names the step."""

    exit_code = 3


class OutputError(SegvalError):
    """An output could not be written (full disk, read-only folder, no permission); names the path.

    Args:
        message: what failed and what to do.
        path: the file or folder that could not be written.
    """

    def __init__(self, message: str, *, path: object) -> None:
        self.path = str(path)
        super().__init__(f"{self.path}: {message}")


class LockedError(SegvalError):
    """Another segval command holds the lock of a folder it writes (exit code 75, try again later)."""

    exit_code = 75
