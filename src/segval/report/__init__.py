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

from segval.report.mosaic import MosaicItem, render_mosaic, select_worst_images
from segval.report.plots import (
    boundary_scatter,
    confusion_heatmap,
    frequency_scatter,
    iou_bars,
    report_plots,
)
from segval.report.analyze import ReportInputs, render_html, render_markdown, write_report

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
