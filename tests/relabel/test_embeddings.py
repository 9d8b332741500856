"""The embedding cache under faults: a truncated or altered entry is detected by its checksum and computed
again; concurrent writers of the same entry never leave a partial one for a reader."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from types import SimpleNamespace

import torch

from segval.relabel.embeddings import EmbeddingCache

REC = SimpleNamespace(id=7, file_name="v0/000.png", width=64, height=48)


def embeddings(seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(1, 8, 16, 16, generator=g), torch.randn(1, 4, 8, 8, generator=g)]


def test_round_trip_and_checksum(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path, "m")
    cache.save(REC, embeddings(0))
    got = cache.load(REC)
    assert all(torch.equal(a, b) for a, b in zip(got, embeddings(0)))
    assert (cache.hits, cache.misses) == (1, 0)


def test_truncated_entry_is_a_miss_and_removed(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path, "m")
    path = cache.save(REC, embeddings(0))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])  # a full disk cut the file short
    assert cache.load(REC) is None and not path.exists()
    cache.save(REC, embeddings(0))  # computed again
    assert cache.has(REC)


def test_altered_bytes_fail_the_checksum(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path, "m")
    path = cache.save(REC, embeddings(0))
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF  # inside the last tensor: the header still parses
    path.write_bytes(bytes(data))
    assert not cache.has(REC) and not path.exists()


def test_an_entry_without_checksum_is_recomputed(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    cache = EmbeddingCache(tmp_path, "m")
    cache.dir.mkdir(parents=True)
    save_file({"e0": torch.zeros(2, 2)}, str(cache.path(REC.id)), metadata=EmbeddingCache._meta(REC))
    assert not cache.has(REC)


def _writer(root: str, seed: int, n: int) -> None:
    cache = EmbeddingCache(root, "m")
    for _ in range(n):
        cache.save(REC, embeddings(seed))


def test_concurrent_writers_leave_only_complete_entries(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    writers = [ctx.Process(target=_writer, args=(str(tmp_path), seed, 40)) for seed in (1, 2)]
    for w in writers:
        w.start()
    cache = EmbeddingCache(tmp_path, "m")
    valid = [embeddings(1), embeddings(2)]
    seen = 0
    while any(w.is_alive() for w in writers) or seen == 0:
        got = cache.load(REC)
        if got is not None:  # always one writer's complete entry, never a mix or a partial file
            assert any(all(torch.equal(a, b) for a, b in zip(got, v)) for v in valid)
            seen += 1
    for w in writers:
        w.join()
        assert w.exitcode == 0
    assert seen > 0 and cache.has(REC)
    assert [p.name for p in cache.dir.iterdir()] == ["7.safetensors"]
