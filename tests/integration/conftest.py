"""Fixtures of the end-to-end tests: a generated shapes package."""

from __future__ import annotations

from pathlib import Path

import pytest

from segval.demo.shapes import write_shapes_package


@pytest.fixture(scope="session")
def shapes_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4-class package: 8 train / 4 val images of 64x64, videos of 2 frames."""
    return write_shapes_package(tmp_path_factory.mktemp("data") / "shapes", frames_per_video=2)
