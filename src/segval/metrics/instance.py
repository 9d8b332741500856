"""Instance AP across ranks: every rank keeps its own predictions, gathered before one COCOeval.

The evaluation itself (pycocotools' COCOeval, as Detectron2 reports it) is in
:mod:`segval.metrics.functional.instance`.
"""

from __future__ import annotations

from typing import Any

from segval.metrics.functional.instance import AP_KEYS, coco_ground_truth, evaluate_segm, instance_results

__all__ = ["AP_KEYS", "coco_ground_truth", "evaluate_segm", "gather_results", "instance_results"]


def gather_results(local: list[Any]) -> list[Any]:
    """Concatenate a list over the ranks (every rank gets all of it); the list itself without DDP."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return list(local)
    parts: list[list[Any] | None] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, list(local))
    return [x for part in parts for x in (part or [])]
