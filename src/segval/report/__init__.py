"""The analysis report: plots (PNG), a mosaic of the worst images, ``report.md`` and a self-contained ``report.html``.

* :mod:`~segval.report.plots`: per-class IoU bars, the row-normalised confusion heatmap,
  class frequency vs IoU and boundary IoU vs IoU (matplotlib, Agg backend, PNG bytes).
* :mod:`~segval.report.mosaic`: image | ground truth | prediction | error map of the worst images.
* :mod:`~segval.report.analyze`: the Markdown and HTML documents, written atomically.
* :mod:`~segval.report.guideline`: the annotation guideline's ``guideline.md`` / self-contained ``guideline.html``
  (content: :mod:`segval.qa.guideline`).

``segval analyze`` (:mod:`segval.commands.analyze`) puts them together from a run directory.
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> module; imported on first use, so that ``segval.report.markdown_safe`` (used by
#: ``segval qa``) does not pull in matplotlib
_LAZY = {
    "MosaicItem": "mosaic", "render_mosaic": "mosaic", "select_worst_images": "mosaic",
    "boundary_scatter": "plots", "confusion_heatmap": "plots", "frequency_scatter": "plots", "iou_bars": "plots",
    "report_plots": "plots",
    "ReportInputs": "analyze", "render_html": "analyze", "render_markdown": "analyze", "write_report": "analyze",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"segval.report.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'segval.report' has no attribute {name!r}")


__all__ = [
    "MosaicItem",
    "ReportInputs",
    "boundary_scatter",
    "confusion_heatmap",
    "frequency_scatter",
    "iou_bars",
    "render_html",
    "render_markdown",
    "render_mosaic",
    "report_plots",
    "select_worst_images",
    "write_report",
]
