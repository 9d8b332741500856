"""Two CPU processes (gloo) evaluating disjoint shards give the single-process confusion matrix."""

from __future__ import annotations

import socket
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from segval.metrics import ConfusionMatrix, SemanticMetrics

NUM_CLASSES = 6
WORLD_SIZE = 2


def make_data(n_batches: int = 5):
    """Deterministic batches; rank r takes batches r, r + 2, ... (uneven: rank 0 gets 3, rank 1 gets 2)."""
    g = torch.Generator().manual_seed(1234)
    data = []
    for _ in range(n_batches):
        target = torch.randint(0, NUM_CLASSES, (2, 16, 16), generator=g)
        target[torch.rand(2, 16, 16, generator=g) < 0.1] = 255
        data.append((torch.randn(2, NUM_CLASSES, 16, 16, generator=g), target))
    return data


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, port: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD_SIZE)
    try:
        conf, sem = ConfusionMatrix(NUM_CLASSES), SemanticMetrics(NUM_CLASSES)
        for logits, target in make_data()[rank::WORLD_SIZE]:
            conf.update(logits, target)
            sem.update(logits.argmax(1), target)
        local = conf.confmat.clone()  # before sync
        synced = conf.compute()
        sem_out = sem.compute()
        torch.save(
            {"local": local, "synced": synced, "sem_confmat": sem_out["confmat"], "mIoU": sem_out["mIoU"]},
            Path(out_dir) / f"rank{rank}.pt",
        )
    finally:
        dist.destroy_process_group()


def test_ddp_gloo_matches_single_process(tmp_path):
    mp.spawn(_worker, args=(free_port(), str(tmp_path)), nprocs=WORLD_SIZE, join=True)

    single = SemanticMetrics(NUM_CLASSES)
    for logits, target in make_data():
        single.update(logits, target)
    expected = single.compute()

    results = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD_SIZE)]
    assert not torch.equal(results[0]["local"], expected["confmat"])  # each rank really saw a shard
    assert torch.equal(results[0]["local"] + results[1]["local"], expected["confmat"])
    for res in results:
        assert res["synced"].dtype == torch.int64
        assert torch.equal(res["synced"], expected["confmat"])
        assert torch.equal(res["sem_confmat"], expected["confmat"])
        assert res["mIoU"] == expected["mIoU"]
