"""A training data order that a resumed run continues exactly: a resumable sampler and loader.

The order of an epoch is a pure function of (seed, epoch, rank): a seeded permutation, cut into rank
slices as ``DistributedSampler`` does. Every sample also carries its own augmentation seed, drawn from
(seed, epoch, rank, position), so what a sample looks like after augmentation depends neither on the
number of DataLoader workers nor on which process loads it, nor on whether the run was resumed.

:class:`ResumableDataLoader` counts the batches it has handed to the training loop; Lightning saves
that count with the loop state (``state_dict`` / ``load_state_dict``, the stateful-dataloader protocol)
and, on resume, the sampler starts the interrupted epoch at the next unseen batch.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler

__all__ = ["ResumableDataLoader", "ResumableSampler", "run_seed", "sample_seed"]


def run_seed() -> int:
    """The seed of the run: ``seed_everything``'s (``PL_GLOBAL_SEED``), else 0."""
    return int(os.environ.get("PL_GLOBAL_SEED", 0))


def sample_seed(seed: int, epoch: int, rank: int, position: int) -> int:
    """The augmentation seed of the sample at ``position`` of ``rank``'s slice of ``epoch`` (a uint32)."""
    return int(np.random.SeedSequence([seed % 2**63, epoch, rank, position]).generate_state(1)[0])


class ResumableSampler(DistributedSampler):
    """Shuffled indices with their augmentation seeds, ``(index, seed)``, that can start mid-epoch.

    A ``DistributedSampler`` (so Lightning does not replace it under DDP): one process is rank 0 of 1.

    Args:
        dataset: the training dataset (its length is all the sampler needs).
        seed: the run's seed (default: :func:`run_seed`).
        num_replicas, rank: the process group (default: the initialised one, else 1 and 0).
    """

    def __init__(self, dataset: Dataset, seed: int | None = None, num_replicas: int | None = None,
                 rank: int | None = None) -> None:
        distributed = dist.is_available() and dist.is_initialized()
        if num_replicas is None:
            num_replicas = dist.get_world_size() if distributed else 1
        if rank is None:
            rank = dist.get_rank() if distributed else 0
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True,
                         seed=run_seed() if seed is None else seed)
        self._start = 0  # samples of the current epoch to skip at the next iteration (a resumed run)

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self._start = 0
        super().set_epoch(epoch)

    def resume(self, epoch: int, start: int) -> None:
        """Make the next iteration run ``epoch`` from its ``start``-th sample of this rank."""
        super().set_epoch(epoch)
        self._start = start

    def __iter__(self) -> Iterator[tuple[int, int]]:  # type: ignore[override]
        start, self._start = self._start, 0
        indices = list(super().__iter__())  # this rank's slice of the epoch's permutation
        for pos in range(start, len(indices)):
            yield indices[pos], sample_seed(self.seed, self.epoch, self.rank, pos)


class _Counting(Iterator):
    """The loader's iterator, counting the batches it yields into ``loader.batches_done``."""

    def __init__(self, it: Iterator, loader: ResumableDataLoader) -> None:
        self.it, self.loader = it, loader

    def __next__(self) -> Any:
        batch = next(self.it)
        self.loader.batches_done += 1
        return batch

    def __len__(self) -> int:
        return len(self.loader)


class ResumableDataLoader(DataLoader):
    """A training ``DataLoader`` over a :class:`ResumableSampler` whose position survives a checkpoint.

    ``len()`` is always the whole epoch (Lightning adds the batches already done to its count);
    after :meth:`load_state_dict` the next iteration yields only the batches the interrupted run had
    not yet trained on.
    """

    def __init__(self, dataset: Dataset, *, sampler: ResumableSampler, batch_size: int, **kwargs: Any) -> None:
        super().__init__(dataset, batch_size=batch_size, sampler=sampler, **kwargs)
        self.batches_done = 0  # batches of the current epoch handed out
        self._resumed_at = 0

    def __iter__(self) -> Iterator:  # type: ignore[override]
        self.batches_done, self._resumed_at = self._resumed_at, 0
        return _Counting(super().__iter__(), self)

    def state_dict(self) -> dict[str, int]:
        """``{"epoch", "batches", "batch_size", "seed", "num_replicas"}`` of the current epoch."""
        sampler: ResumableSampler = self.sampler  # type: ignore[assignment]
        return {"epoch": int(sampler.epoch), "batches": int(self.batches_done), "batch_size": int(self.batch_size),
                "seed": int(sampler.seed), "num_replicas": int(sampler.num_replicas)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue the saved epoch at its next batch (the next epoch when it was finished).

        Raises:
            ValueError: the state was saved with another batch size or number of processes, so the
                rest of its epoch cannot be reproduced.
        """
        sampler: ResumableSampler = self.sampler  # type: ignore[assignment]
        for key, now in (("batch_size", self.batch_size), ("num_replicas", sampler.num_replicas)):
            if int(state.get(key, now)) != int(now):
                raise ValueError(f"the checkpoint's data order was saved with {key}={state[key]}, this run has "
                                 f"{key}={now}: resume with the same data.batch_size and trainer.devices")
        epoch, batches = int(state["epoch"]), int(state["batches"])
        if batches >= len(self):  # the epoch was finished: the next one starts from its beginning
            epoch, batches = epoch + 1, 0
        sampler.resume(epoch, batches * int(self.batch_size))
        self._resumed_at = batches
