"""segval.qa.splitting: whole videos, ±5 % class shares on generated data, determinism, clear failures."""

from __future__ import annotations

import numpy as np
import pytest

from segval.demo.shapes import write_shapes_package
from segval.dataset.package import DatasetPackage
from segval.errors import ConfigError
from segval.qa.splitting import SplitInfeasibleError, check_fractions, explain_failure, group_images, plan_split

NAMES3 = ["train", "val", "test"]


@pytest.fixture(scope="module")
def shapes_groups(tmp_path_factory):
    """Per-video class pixel counts of a generated package (30 videos of 4 frames)."""
    root = write_shapes_package(tmp_path_factory.mktemp("split") / "pkg", images={"train": 120}, frames_per_video=4,
                                size=(48, 48), seed=3)
    split = DatasetPackage.open(root).split("train")
    k = split.taxonomy.num_classes
    keys, gidx = group_images([r.id for r in split.images], [r.video_id for r in split.images])
    counts = np.zeros((len(keys), k), np.int64)
    for rec, g in zip(split.images, gidx, strict=True):
        t = split.semantic_target(rec)
        counts[g] += np.bincount(t[t != 255].ravel(), minlength=k)[:k]
    return keys, gidx, counts, np.bincount(gidx), split.taxonomy.names


def test_group_images_videos_and_singletons():
    keys, idx = group_images([10, 11, 12, 13], [5, None, 5, None])
    assert keys == [("video", 5), ("image", 11), ("image", 13)]
    assert idx.tolist() == [0, 1, 0, 2]


@pytest.mark.parametrize("fractions", [[0.7, 0.15, 0.15], [0.8, 0.1, 0.1]])
def test_generated_data_never_leaks_a_video_and_meets_5_percent(shapes_groups, fractions):
    keys, gidx, counts, sizes, names = shapes_groups
    plan = plan_split(counts, sizes, fractions, NAMES3, class_names=names, group_keys=keys, seed=0)
    assert plan.ok, explain_failure(plan.report)
    # a group index has exactly one split, so each video's frames land together; check via the images too
    image_split = plan.assignment[gidx]
    for g in range(len(keys)):
        assert len(set(image_split[gidx == g].tolist())) == 1
    videos = [set(sp["videos"]) for sp in plan.report["splits"]]
    assert sum(len(v) for v in videos) == len(keys) and not (videos[0] & videos[1] or videos[0] & videos[2]
                                                            or videos[1] & videos[2])
    # recompute the shares independently: every class within ±5 % (relative) of its overall share
    total = counts.sum(0) / counts.sum()
    for s, sp in enumerate(plan.report["splits"]):
        pix = counts[plan.assignment == s].sum(0)
        share = pix / pix.sum()
        for c, name in enumerate(names):
            assert abs(share[c] - total[c]) <= 0.05 * max(total[c], 0.01) + 1e-12, (sp["name"], name)
            assert sp["classes"][name]["share"] == pytest.approx(share[c])
        assert abs(sp["fraction"] - fractions[s]) <= 0.05
    assert plan.report["worst"]["abs_relative_deviation"] <= 0.05


def test_same_seed_same_plan(shapes_groups):
    keys, _, counts, sizes, names = shapes_groups
    a = plan_split(counts, sizes, [0.7, 0.15, 0.15], NAMES3, class_names=names, seed=7)
    b = plan_split(counts, sizes, [0.7, 0.15, 0.15], NAMES3, class_names=names, seed=7)
    assert a.assignment.tolist() == b.assignment.tolist()


def test_too_few_videos_cannot_be_kept_whole():
    counts = np.array([[100, 10], [100, 10]])
    with pytest.raises(SplitInfeasibleError, match="cannot keep videos whole: 2 video"):
        plan_split(counts, np.array([5, 5]), [0.7, 0.15, 0.15], NAMES3, class_names=["bg", "a"])


def test_one_huge_video_misses_fractions_and_is_reported():
    counts = np.array([[1000, 100]] + [[100, 10]] * 3)
    plan = plan_split(counts, np.array([90, 4, 3, 3]), [0.7, 0.15, 0.15], NAMES3, class_names=["bg", "a"])
    assert not plan.ok
    msg = explain_failure(plan.report)
    assert "cannot keep videos whole" in msg and "'train'" in msg and "90.0%" in msg


def test_unbalanced_class_names_the_worst_class():
    # class "rare" only in one video: no split but one can have it
    counts = np.array([[1000, 0]] * 9 + [[1000, 500]])
    plan = plan_split(counts, np.ones(10, int), [0.8, 0.1, 0.1], NAMES3, class_names=["bg", "rare"])
    assert not plan.ok
    w = plan.report["worst"]
    assert w["class"] in ("rare", "bg") and not w["ok"]
    assert "class 'rare'" in explain_failure(plan.report) or "class 'bg'" in explain_failure(plan.report)
    assert all("relative_deviation" in d for sp in plan.report["splits"] for d in sp["classes"].values())


def test_tiny_classes_get_the_absolute_band():
    counts = np.array([[10000, 1]] * 20)
    plan = plan_split(counts, np.ones(20, int), [0.5, 0.5], ["a", "b"], class_names=["bg", "tiny"])
    d = plan.report["splits"][0]["classes"]["tiny"]
    assert d["mode"] == "absolute" and d["allowed"] == pytest.approx(0.05 * 0.01)
    assert plan.ok


@pytest.mark.parametrize("fr,names", [([0.7, 0.2], NAMES3), ([0.5, 0.6], ["a", "b"]), ([1.0, 0.0], ["a", "b"]),
                                      ([0.5, 0.5], ["a", "a"])])
def test_bad_fractions(fr, names):
    with pytest.raises(ConfigError):
        check_fractions(fr, names)
