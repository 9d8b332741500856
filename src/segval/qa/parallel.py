"""Process-parallel map over chunks of images, results in input order (for ``segval qa``).

The work function is handed to forked workers (no pickling of the dataset package); each chunk's
result comes back pickled, and results are returned in chunk order, so the output does not depend
on the number of workers. Videos are never cut between chunks (consecutive frames are compared).
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable, Hashable, Sequence
from typing import Any

from segval.errors import ConfigError

#: the function the forked workers run (set just before the pool starts)
_TASK: Callable[[Any], Any] | None = None


def resolve_workers(value: Any) -> int:
    """``"auto"`` -> min(usable CPUs, 4); an integer >= 1 as is. ConfigError otherwise."""
    if value == "auto":
        try:
            cpus = len(os.sched_getaffinity(0))
        except AttributeError:  # not on Linux
            cpus = os.cpu_count() or 1
        return max(1, min(cpus, 4))
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"qa.workers must be 'auto' or an integer >= 1 (1 = in this process), got {value!r}")
    return value


def video_chunks(videos: Sequence[Hashable | None], n_chunks: int) -> list[range]:
    """Cut positions ``0 .. len(videos)`` into about ``n_chunks`` consecutive ranges.

    A cut never falls between two positions of the same (not None) video.
    """
    n = len(videos)
    if n == 0:
        return []
    target = max(1, -(-n // max(1, n_chunks)))
    out, start = [], 0
    for i in range(1, n):
        if i - start >= target and (videos[i] is None or videos[i] != videos[i - 1]):
            out.append(range(start, i))
            start = i
    out.append(range(start, n))
    return out


def _run(chunk: Any) -> Any:
    assert _TASK is not None
    return _TASK(chunk)


def map_ordered(fn: Callable[[Any], Any], chunks: Sequence[Any], workers: int,
                done: Callable[[Any], None] | None = None) -> list[Any]:
    """``[fn(c) for c in chunks]``, over ``workers`` forked processes when more than one.

    ``done(chunk)`` is called as each chunk finishes (in order), e.g. to move a progress bar.
    Falls back to this process where ``fork`` is not available.
    """
    global _TASK
    done = done or (lambda c: None)
    if workers <= 1 or len(chunks) <= 1 or "fork" not in mp.get_all_start_methods():
        out = []
        for c in chunks:
            out.append(fn(c))
            done(c)
        return out
    _TASK = fn
    try:
        with mp.get_context("fork").Pool(min(workers, len(chunks))) as pool:
            out = []
            for c, r in zip(chunks, pool.imap(_run, chunks)):
                out.append(r)
                done(c)
            return out
    finally:
        _TASK = None
