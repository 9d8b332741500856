"""Exact semantic segmentation metrics (MMSegmentation / Detectron2 definitions) and their torchmetrics classes."""

from __future__ import annotations

from segval.analysis.functional import METRIC_DEFINITIONS, confusion_matrix, semantic_metrics
from segval.analysis.metrics import ConfusionMatrix, SemanticMetrics

__all__ = ["METRIC_DEFINITIONS", "ConfusionMatrix", "SemanticMetrics", "confusion_matrix", "semantic_metrics"]
