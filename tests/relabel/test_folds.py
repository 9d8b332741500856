"""segval.relabel.folds: deterministic, grouped by video, stratified by class; clear errors for impossible folds."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from segval.errors import ConfigError
from segval.relabel.folds import assign_folds, check_folds, fold_manifest


@dataclass
class Rec:
    id: int
    video_id: int | None = None


def _split():
    """6 videos x 4 frames + 8 stills; class 5 (rare) in videos 0 and 3 only, class 7 in every second still."""
    recs, classes = [], {}
    for v in range(6):
        for f in range(4):
            i = v * 10 + f
            recs.append(Rec(i, v))
            classes[i] = {1, 5} if v in (0, 3) else {1, 2}
    for s in range(8):
        recs.append(Rec(100 + s))
        classes[100 + s] = {1, 7} if s % 2 else {1}
    return recs, classes


def test_folds_are_deterministic_and_keep_videos_whole() -> None:
    recs, classes = _split()
    a = assign_folds(recs, classes, 3, seed=0)
    assert a == assign_folds(list(reversed(recs)), classes, 3, seed=0)
    assert set(a) == {r.id for r in recs} and set(a.values()) == {0, 1, 2}
    for v in range(6):
        assert len({a[v * 10 + f] for f in range(4)}) == 1  # a video lies in one fold


def test_folds_are_stratified_by_class_and_size() -> None:
    recs, classes = _split()
    a = assign_folds(recs, classes, 2, seed=0)
    rare = {a[i] for i, cs in classes.items() if 5 in cs}
    assert rare == {0, 1}  # the two videos of the rare class go to different folds
    sevens = [a[i] for i, cs in classes.items() if 7 in cs]
    assert sorted(sevens.count(f) for f in (0, 1)) == [2, 2]
    sizes = [list(a.values()).count(f) for f in (0, 1)]
    assert abs(sizes[0] - sizes[1]) <= 4  # one video's worth at most


def test_more_folds_than_groups_and_a_class_in_one_fold_only_are_refused() -> None:
    recs = [Rec(i, i // 4) for i in range(8)]  # two videos
    with pytest.raises(ConfigError, match="only 2 videos"):
        assign_folds(recs, {r.id: {1} for r in recs}, 3)
    with pytest.raises(ConfigError, match=">= 2 to cross-fit"):
        assign_folds(recs, {r.id: {1} for r in recs}, 1)
    classes = {r.id: ({1, 9} if r.video_id == 0 else {1}) for r in recs}
    folds = assign_folds(recs, classes, 2)
    with pytest.raises(ConfigError, match=r"no image of \['nine'\]"):
        check_folds(folds, classes, 2, {1: "one", 9: "nine"})


def test_manifest_lists_each_image_once() -> None:
    recs, classes = _split()
    a = assign_folds(recs, classes, 3)
    m = fold_manifest(a, 3, seed=0, runs=["r0", "r1", "r2"])
    scored = [i for f in m["folds"] for i in f["scored_images"]]
    assert sorted(scored) == sorted(a) and [f["run"] for f in m["folds"]] == ["r0", "r1", "r2"]
