"""Exact segmentation metrics in the torchmetrics shape: pure functions in :mod:`segval.metrics.functional`,
and beside them the ``Metric`` classes whose state is summed across ranks.

| figure | functional | Metric class |
|---|---|---|
| confusion matrix, IoU / Acc / Dice, mIoU, mAcc, aAcc, fwIoU (MMSeg / Detectron2) | :mod:`.functional.semantic` | :class:`~.semantic.ConfusionMatrix`, :class:`~.semantic.SemanticMetrics` |
| Boundary IoU (Cheng et al. 2021) | :mod:`.functional.boundary` | :class:`~.boundary.BoundaryIoU` |
| PQ / SQ / RQ (panopticapi) | :mod:`.functional.panoptic` | :class:`~.panoptic.PanopticQualityStats` |
| instance AP (pycocotools COCOeval, as Detectron2) | :mod:`.functional.instance` | :func:`~.instance.gather_results` across ranks |
| per-image label quality (cleanlab's softmin) and confusion | :mod:`.functional.label_quality` | streamed by :mod:`.per_image_csv` |

:mod:`.results` writes ``metrics.json`` and the confusion-matrix files. The package imports only
:mod:`segval.dataset` (and :mod:`segval.io`).
"""

from __future__ import annotations

from segval.metrics.functional.semantic import METRIC_DEFINITIONS, confusion_matrix, semantic_metrics
from segval.metrics.semantic import ConfusionMatrix, SemanticMetrics

__all__ = ["METRIC_DEFINITIONS", "ConfusionMatrix", "SemanticMetrics", "confusion_matrix", "semantic_metrics"]
