"""The resumable data order: the rest of an epoch after load_state_dict equals the uninterrupted epoch,
batch by batch, whatever the number of worker processes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from segval.datamodules.datamodule import SegmentationDataModule
from segval.datamodules.sampler import ResumableDataLoader, ResumableSampler, sample_seed

AUG = [{"_target_": "albumentations.RandomCrop", "height": 32, "width": 32},
       {"_target_": "albumentations.HorizontalFlip", "p": 0.5}]


def datamodule(root: Path, workers: int) -> SegmentationDataModule:
    dm = SegmentationDataModule(root=root, batch_size=2, num_workers=workers, train_transforms=AUG, validate=False)
    dm.setup("fit")
    return dm


def batches(loader: ResumableDataLoader, epoch: int) -> list[dict]:
    loader.sampler.set_epoch(epoch)
    return list(loader)


def assert_equal_batches(a: list[dict], b: list[dict]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert torch.equal(x["image_id"], y["image_id"])
        assert torch.equal(x["image"], y["image"]) and torch.equal(x["mask"], y["mask"])


def test_sampler_is_a_pure_function_of_seed_epoch_and_rank() -> None:
    data = list(range(10))
    a, b = ResumableSampler(data, seed=3), ResumableSampler(data, seed=3)
    assert list(a) == list(b)
    indices = [i for i, _ in a]
    assert sorted(indices) == data and indices != data  # a shuffled permutation
    assert [s for _, s in a] == [sample_seed(3, 0, 0, p) for p in range(10)]
    a.set_epoch(1)
    assert [i for i, _ in a] != indices  # another order each epoch
    # two ranks: disjoint halves of the same permutation
    r0, r1 = ResumableSampler(data, seed=3, num_replicas=2, rank=0), ResumableSampler(data, seed=3, num_replicas=2, rank=1)
    assert sorted([i for i, _ in r0] + [i for i, _ in r1]) == data


def test_resume_mid_epoch_yields_the_rest_of_the_epoch(shapes_root: Path) -> None:
    whole = datamodule(shapes_root, 0).train_dataloader()
    epoch = batches(whole, 1)  # 8 images, batches of 2
    assert len(epoch) == 4
    it = iter(whole)
    next(it), next(it), next(it)  # three batches of epoch 1 trained, then the run is killed
    state = whole.state_dict()
    assert state == {"epoch": 1, "batches": 3, "batch_size": 2, "seed": whole.sampler.seed, "num_replicas": 1}
    resumed = datamodule(shapes_root, 0).train_dataloader()
    resumed.load_state_dict(state)
    rest = list(resumed)
    assert_equal_batches(rest, epoch[3:])
    assert resumed.state_dict()["batches"] == 4
    assert len(resumed) == 4  # Lightning counts the whole epoch


def test_a_finished_epoch_resumes_at_the_next_one(shapes_root: Path) -> None:
    loader = datamodule(shapes_root, 0).train_dataloader()
    loader.load_state_dict({"epoch": 0, "batches": 4, "batch_size": 2})
    assert_equal_batches(list(loader), batches(datamodule(shapes_root, 0).train_dataloader(), 1))


@pytest.mark.slow
def test_augmentations_do_not_depend_on_the_workers(shapes_root: Path) -> None:
    assert_equal_batches(batches(datamodule(shapes_root, 0).train_dataloader(), 2),
                         batches(datamodule(shapes_root, 2).train_dataloader(), 2))


def test_another_batch_size_is_refused(shapes_root: Path) -> None:
    loader = datamodule(shapes_root, 0).train_dataloader()
    with pytest.raises(ValueError, match="batch_size=4"):
        loader.load_state_dict({"epoch": 0, "batches": 1, "batch_size": 4})
