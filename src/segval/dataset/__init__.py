"""The dataset package format: taxonomy, COCO / label-map IO, validation and summaries.

See the README section "The dataset package" for the layout and :mod:`segval.dataset.semantic` for the
rule turning COCO instances into semantic targets.
"""

from __future__ import annotations

from segval.dataset.package import (
    DEFAULT_MAX_PIXELS,
    DatasetPackage,
    ImageRecord,
    Instance,
    SplitData,
)
from segval.dataset.semantic import rasterize_semantic
from segval.dataset.summary import format_summary, summarize
from segval.dataset.taxonomy import Category, Taxonomy
from segval.dataset.validate import validate_package
from segval.dataset.writer import InstanceMask, PackageExistsError, PackageWriter

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "Category",
    "DatasetPackage",
    "ImageRecord",
    "Instance",
    "InstanceMask",
    "PackageExistsError",
    "PackageWriter",
    "SplitData",
    "Taxonomy",
    "format_summary",
    "rasterize_semantic",
    "summarize",
    "validate_package",
]
