"""Cross-fitting folds of a split: grouped by video (an image without a video is its own group), stratified by
class, deterministic for a seed.

:func:`assign_folds` puts whole groups into ``k`` folds so that every fold holds close to ``1/k`` of the
images and of each class's images: groups are placed largest and rarest-class first, each into the fold
whose share of the group's classes (then images) is furthest below target. Every image is then scored only
by the model trained on the other folds (``segval relabel find find.folds=K``); the manifest
(:func:`fold_manifest`) records which model scored which image.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from segval.errors import ConfigError

__all__ = ["assign_folds", "check_folds", "fold_manifest", "group_of"]


def group_of(rec: Any) -> str:
    """The cross-fitting group of an image record: its video, else the image itself."""
    return f"video:{rec.video_id}" if getattr(rec, "video_id", None) is not None else f"image:{rec.id}"


def assign_folds(records: Sequence[Any], classes_of: Mapping[int, set[int]], k: int, *, seed: int = 0
                 ) -> dict[int, int]:
    """``{image_id: fold}`` with ``k`` folds (see the module doc).

    Args:
        records: the split's image records (``id``, ``video_id``).
        classes_of: ``{image_id: class ids present in it}``.
        k: number of folds (>= 2).
        seed: orders ties between groups of equal size and rarity.

    Raises:
        ConfigError: fewer groups (videos, or images without a video) than folds.
    """
    if k < 2:
        raise ConfigError(f"find.folds must be >= 2 to cross-fit (or 0 / 1 for one in-sample training), got {k}")
    groups: dict[str, list[Any]] = {}
    for r in records:
        groups.setdefault(group_of(r), []).append(r)
    if len(groups) < k:
        what = "videos" if any(getattr(r, "video_id", None) is not None for r in records) else "images"
        raise ConfigError(f"find.folds={k} but the split has only {len(groups)} {what} (folds keep {what} whole); "
                          f"use find.folds <= {len(groups)}")
    count = {}  # images of each class in the split
    for r in records:
        for c in classes_of.get(r.id, ()):
            count[c] = count.get(c, 0) + 1
    g_classes = {g: set().union(*(classes_of.get(r.id, set()) for r in rs)) for g, rs in groups.items()}
    rarity = {g: min((count[c] for c in cs), default=len(records)) for g, cs in g_classes.items()}
    order = sorted(groups, key=lambda g: (-len(groups[g]), rarity[g], zlib.crc32(f"{seed}:{g}".encode())))
    fold_images = np.zeros(k)
    fold_class: dict[int, np.ndarray] = {c: np.zeros(k) for c in count}
    n_total = len(records)
    out: dict[int, int] = {}
    for g in order:
        rs = groups[g]
        # how far below its target share each fold is, for this group's classes and for images
        need = np.zeros(k)
        for c in g_classes[g]:
            need += 1.0 - fold_class[c] / (count[c] / k)
        need = need / max(len(g_classes[g]), 1) + 0.5 * (1.0 - fold_images / (n_total / k))
        f = int(np.argmax(need - 1e-9 * np.arange(k)))
        fold_images[f] += len(rs)
        for r in rs:
            out[r.id] = f
            for c in classes_of.get(r.id, ()):
                fold_class[c][f] += 1
    return out


def check_folds(folds: Mapping[int, int], classes_of: Mapping[int, set[int]], k: int,
                class_name: Mapping[int, str]) -> None:
    """ConfigError when a fold's training part (the other folds) lacks a class present in the split, or a fold
    is empty: a model that never saw a class cannot score it."""
    present = set().union(*classes_of.values()) if classes_of else set()
    for f in range(k):
        held = [i for i, ff in folds.items() if ff == f]
        if not held:
            raise ConfigError(f"fold {f} of {k} holds no image; use fewer folds (find.folds=...)")
        trained = set().union(*(classes_of.get(i, set()) for i, ff in folds.items() if ff != f))
        lacking = sorted(present - trained)
        if lacking:
            names = [class_name.get(c, str(c)) for c in lacking]
            raise ConfigError(f"with find.folds={k}, the model of fold {f} would train on no image of {names} (all "
                              "their images fall in that fold); use fewer folds, or relabel find without folds")


def fold_manifest(folds: Mapping[int, int], k: int, *, seed: int, runs: Sequence[str]) -> dict[str, Any]:
    """The fold manifest: per fold the images it holds out (scored by its model) and the run that trained it."""
    return {"k": k, "seed": seed, "grouped_by": "video (an image without video_id: itself)",
            "folds": [{"fold": f, "run": runs[f], "scored_images": sorted(i for i, ff in folds.items() if ff == f)}
                      for f in range(k)]}
