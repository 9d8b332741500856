"""The streaming per_image.csv writer under a full disk: a clear error, nothing left behind."""

from __future__ import annotations

import pytest


def test_a_full_disk_at_close_is_a_clear_error_and_leaves_nothing(tmp_path, monkeypatch):
    import errno
    import os

    from segval.errors import OutputError
    from segval.metrics.per_image_csv import PerImageCsvWriter

    path = tmp_path / "per_image.csv"
    writer = PerImageCsvWriter(path, ["a", "b"])

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OutputError, match="per_image.csv: cannot write \\(no space left"):
        writer.close()
    assert list(tmp_path.iterdir()) == []
