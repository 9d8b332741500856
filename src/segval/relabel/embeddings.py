"""SAM 2 image embeddings computed once: a Lightning ``predict`` loop and an on-disk cache.

The cache holds one safetensors file per (model id, image id)::

    <cache_dir>/<model_id>/<image_id>.safetensors     # tensors e0, e1, e2 = [C_l, h_l, w_l] feature maps

with the image's file name, width and height in the file's metadata (a mismatch, e.g. another
dataset under the same cache, is a miss, never a wrong hit) and a sha256 of the tensors (an entry
damaged on disk, e.g. truncated by a full disk, is detected, removed and computed again). Files are
written atomically, so an interrupted run or a concurrent writer leaves only complete entries: running
again computes only what is missing (resumable). ``segval relabel embed`` fills the cache for the queued images (or a whole split);
proposals read it and compute (and store) only what is not there.

The predict loop is plain Lightning: a ``Dataset`` of the images still missing, batched by a
``DataLoader``, a ``LightningModule`` whose ``predict_step`` runs the image encoder, and a
``BasePredictionWriter`` callback that writes each batch into the cache as it comes (GPU when
present: ``accelerator=auto``).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from torch.utils.data import DataLoader, Dataset

from segval.io import atomic_path
from segval.relabel.sam2_backend import Sam2Backend, preprocess

__all__ = ["EmbeddingCache", "compute_embeddings", "embeddings_for"]


class EmbeddingCache:
    """Embeddings on disk keyed by image id + model id (see the module doc)."""

    def __init__(self, root: str | os.PathLike, model_id: str) -> None:
        self.root = Path(root)
        self.model_id = model_id
        self.dir = self.root / model_id
        self.hits = 0
        self.misses = 0

    def path(self, image_id: int) -> Path:
        return self.dir / f"{int(image_id)}.safetensors"

    @staticmethod
    def _meta(rec: Any) -> dict[str, str]:
        return {"file_name": str(rec.file_name), "width": str(rec.width), "height": str(rec.height)}

    @staticmethod
    def _checksum(tensors: dict[str, torch.Tensor]) -> str:
        """sha256 over the tensors' names, shapes and bytes (in name order)."""
        h = hashlib.sha256()
        for name in sorted(tensors):
            t = tensors[name].contiguous()
            h.update(f"{name}:{tuple(t.shape)}:{t.dtype};".encode())
            h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        return h.hexdigest()

    def _read(self, rec: Any) -> dict[str, torch.Tensor] | None:
        """The stored tensors of ``rec``, or None: no entry, another image, or a damaged entry (truncated by
        a full disk, changed on disk: its checksum does not match), which is removed to be recomputed."""
        from safetensors import safe_open

        p = self.path(rec.id)
        if not p.is_file():
            return None
        try:
            with safe_open(str(p), framework="pt") as f:
                meta = dict(f.metadata() or {})
                if {k: meta.get(k) for k in self._meta(rec)} != self._meta(rec):
                    return None  # another image under this id (another dataset): a miss, never a wrong hit
                tensors = {k: f.get_tensor(k) for k in f.keys()}
        except Exception:
            tensors, meta = None, {}
        if tensors is None or meta.get("sha256") != self._checksum(tensors):
            p.unlink(missing_ok=True)  # damaged: recomputed and stored again
            return None
        return tensors

    def has(self, rec: Any) -> bool:
        """True when a complete, intact entry for this image (same file name and size) is stored."""
        return self._read(rec) is not None

    def load(self, rec: Any) -> list[torch.Tensor] | None:
        """``[e0, e1, e2]`` each ``[1, C, h, w]``, or None on a miss."""
        t = self._read(rec)
        if t is None:
            self.misses += 1
            return None
        self.hits += 1
        return [t[f"e{i}"][None] for i in range(len(t))]

    def save(self, rec: Any, embeddings: Sequence[torch.Tensor]) -> Path:
        """Store one image's embeddings (each ``[C, h, w]`` or ``[1, C, h, w]``) atomically, with a checksum.

        Two processes storing the same image at once each write a complete file; the last rename wins.
        """
        from safetensors.torch import save_file

        tensors = {f"e{i}": (e[0] if e.dim() == 4 else e).contiguous().float().cpu() for i, e in enumerate(embeddings)}
        target = self.path(rec.id)
        with atomic_path(target, suffix=".safetensors") as tmp:
            save_file(tensors, str(tmp), metadata={**self._meta(rec), "sha256": self._checksum(tensors)})
        return target


class _Images(Dataset):
    def __init__(self, split: Any, records: Sequence[Any], image_size: int) -> None:
        self.split, self.records, self.image_size = split, list(records), image_size

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> dict[str, Any]:
        rec = self.records[i]
        return {"pixel_values": preprocess([self.split.read_image(rec)], self.image_size)[0], "index": i}


class _Encoder(pl.LightningModule):
    def __init__(self, backend: Sam2Backend) -> None:
        super().__init__()
        self.backend = backend
        self.sam = backend.model  # registered, so Lightning moves it to the device

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        self.backend.device = self.device
        return {"index": batch["index"].tolist(), "embeddings": self.backend.encode(batch["pixel_values"])}


class _CacheWriter(BasePredictionWriter):
    def __init__(self, cache: EmbeddingCache, records: Sequence[Any]) -> None:
        super().__init__(write_interval="batch")
        self.cache, self.records, self.written = cache, records, 0

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx=0):
        for k, i in enumerate(prediction["index"]):
            self.cache.save(self.records[i], [e[k] for e in prediction["embeddings"]])
            self.written += 1


def compute_embeddings(backend: Sam2Backend, split: Any, records: Sequence[Any], cache: EmbeddingCache, *,
                       batch_size: int = 4, num_workers: int = 0, progress: bool = True) -> dict[str, int]:
    """Fill ``cache`` for ``records`` with a Lightning predict loop; images already cached are skipped.

    Returns:
        ``{"requested", "cached_before", "computed"}``.
    """
    todo = [r for r in records if not cache.has(r)]
    out = {"requested": len(records), "cached_before": len(records) - len(todo), "computed": 0}
    if not todo:
        return out
    writer = _CacheWriter(cache, todo)
    trainer = pl.Trainer(accelerator="gpu" if backend.device.type == "cuda" else "cpu", devices=1, logger=False,
                         enable_checkpointing=False, enable_model_summary=False, callbacks=[writer],
                         enable_progress_bar=progress)
    loader = DataLoader(_Images(split, todo, backend.image_size), batch_size=max(1, int(batch_size)),
                        shuffle=False, num_workers=num_workers)
    trainer.predict(_Encoder(backend), dataloaders=loader, return_predictions=False)
    backend.model.to(backend.device)
    out["computed"] = writer.written
    return out


def embeddings_for(backend: Sam2Backend, split: Any, rec: Any, cache: EmbeddingCache | None) -> list[torch.Tensor]:
    """One image's embeddings: from the cache, else computed now (and stored when there is a cache)."""
    if cache is not None:
        hit = cache.load(rec)
        if hit is not None:
            return hit
    emb = backend.encode(preprocess([split.read_image(rec)], backend.image_size))
    if cache is not None:
        cache.save(rec, emb)
    return emb
