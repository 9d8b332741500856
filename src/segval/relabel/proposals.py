"""SAM 2 proposals for queue items: prompts from each item, best mask kept, ``proposals.json`` written.

``proposals.json`` (README, "The relabel loop") is a COCO-results-like list::

    [{"item_id", "image_id", "category_id", "segmentation": {"size": [H, W], "counts": str},
      "score": predicted IoU, "source_annotation_id": int | null, "model": model id}]

and each proposal's mask is also written as ``proposals/<item id>.png`` (0 / 255), the file
named by the queue item's ``proposal.file``. With pretrained weights the proposals also add
evidence to the ranking (:func:`rerank_with_sam`): ``sam_disagreement = (1 - IoU(proposal,
annotation)) * predicted IoU``. A random-init model (``architecture=...``) never does.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from segval.dataset.rle import encode_coco_rle
from segval.io import atomic_path, write_json
from segval.relabel.embeddings import EmbeddingCache, embeddings_for
from segval.relabel.sam2_backend import Sam2Backend, prompts_for

__all__ = ["item_file_stem", "propose", "rerank_with_sam"]


def item_file_stem(item_id: str) -> str:
    """A file-name-safe form of an item id (``12:34:0`` -> ``12_34_0``)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", str(item_id))


def propose(queue: dict[str, Any], split: Any, backend: Sam2Backend, out_dir: str | os.PathLike, *,
            cache: EmbeddingCache | None, progress: Callable[[Iterable], Iterable] | None = None) -> list[dict]:
    """Compute the best SAM 2 proposal of every queue item that has a prompt; sets each item's
    ``proposal`` and writes ``proposals.json`` + ``proposals/*.png`` into ``out_dir``.

    Returns:
        the proposals.json list.
    """
    progress = progress or (lambda it: it)
    out = Path(out_dir)
    masks_dir = out / "proposals"
    results = []
    by_image: dict[int, list[dict]] = {}
    for it in queue["items"]:
        by_image.setdefault(int(it["image_id"]), []).append(it)
    for image_id, items in progress(list(by_image.items())):
        rec = split.image(image_id)
        insts = {i.annotation_id: i for i in split.instances(rec)}
        emb = None
        for it in items:
            ids = [a for a in it["annotation_ids"] if a in insts]
            target = None
            if ids:
                target = np.zeros((rec.height, rec.width), bool)
                for a in ids:
                    target |= insts[a].mask
            others = [i.mask for a, i in insts.items() if a not in ids and not i.iscrowd]
            prompt = prompts_for(target, others, it.get("region"))
            if prompt is None:
                it["proposal"] = None
                continue
            if emb is None:
                emb = embeddings_for(backend, split, rec, cache)
            prop = backend.predict(emb, prompt, rec.height, rec.width)
            stem = item_file_stem(it["item_id"])
            rel = f"proposals/{stem}.png"
            with atomic_path(masks_dir / f"{stem}.png", suffix=".png") as tmp:
                Image.fromarray(prop.mask.astype(np.uint8) * 255).save(tmp, format="PNG")
            iou = None
            if target is not None:
                union = int((target | prop.mask).sum())
                iou = float((target & prop.mask).sum() / union) if union else 0.0
            it["proposal"] = {"score": round(prop.score, 6), "file": rel, "model": backend.model_id,
                              "random_init": backend.random_init, "iou_with_label": None if iou is None else round(iou, 4),
                              "all_scores": prop.all_scores,
                              "prompt": {"box": prompt.box, "points": prompt.points, "labels": prompt.labels}}
            results.append({"item_id": it["item_id"], "image_id": image_id, "category_id": it.get("category_id"),
                            "segmentation": encode_coco_rle(prop.mask)[0], "score": round(prop.score, 6),
                            "source_annotation_id": ids[0] if len(ids) == 1 else None, "model": backend.model_id})
    write_json(out / "proposals.json", results)
    return results


def rerank_with_sam(queue: dict[str, Any], weights: Mapping[str, float], budget: int) -> dict[str, Any]:
    """Add ``sam_disagreement`` to items with a proposal of a pretrained model, re-rank and cut to ``budget`` images."""
    w = float(weights.get("sam_disagreement", 0.0))
    for it in queue["items"]:
        p = it.get("proposal")
        if not p or p.get("random_init") or p.get("iou_with_label") is None:
            continue
        v = (1.0 - p["iou_with_label"]) * p["score"]
        it["evidence"]["sam_disagreement"] = round(v, 4)
        it["score"] = round(it["score"] + w * v, 6)
    best: dict[int, float] = {}
    for it in queue["items"]:  # an image's score: its best item's
        best[it["image_id"]] = max(best.get(it["image_id"], -1e9), it["score"])
    order = sorted(best, key=lambda i: (-best[i], i))[:budget]
    rank_of = {i: k for k, i in enumerate(order)}
    items = [it for it in queue["items"] if it["image_id"] in rank_of]
    items.sort(key=lambda it: (rank_of[it["image_id"]], -it["score"], it["item_id"]))
    for r, it in enumerate(items, 1):
        it["rank"] = r
    queue["items"] = items
    queue["images"] = len(order)
    queue["budget"] = budget
    return queue


def sam2_summary(backend: Sam2Backend, cache: EmbeddingCache | None) -> dict[str, Any]:
    """The ``sam2`` block of queue.json: the model, whether it is random init, the proposals file, the cache."""
    return {"model": backend.model_id, "source": backend.source, "random_init": backend.random_init,
            "note": backend.label, "proposals": "proposals.json",
            "cache": None if cache is None else str(cache.dir),
            "cache_hits": None if cache is None else cache.hits,
            "cache_misses": None if cache is None else cache.misses}


def propose_for_queue(queue: dict[str, Any], split: Any, backend: Sam2Backend, out_dir: str | os.PathLike, *,
                      cache: EmbeddingCache | None, budget: int, weights: Mapping[str, float],
                      progress: Callable[[Iterable], Iterable] | None = None) -> list[dict[str, Any]]:
    """Proposals for every item of ``queue`` (``proposals.json``); with a pretrained model the SAM 2 disagreement is
    evidence too: the queue (a pool larger than ``budget``) is re-ranked and cut to ``budget`` images, and
    ``proposals.json`` keeps the kept items only. Sets ``queue["sam2"]``; returns the proposals written."""
    props = propose(queue, split, backend, out_dir, cache=cache, progress=progress)
    if not backend.random_init:
        rerank_with_sam(queue, weights, budget)
        kept = {it["item_id"] for it in queue["items"]}
        props = [p for p in props if p["item_id"] in kept]
        write_json(Path(out_dir) / "proposals.json", props)
    queue["sam2"] = sam2_summary(backend, cache)
    return props
