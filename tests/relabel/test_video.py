"""Video propagation plumbing with the tiny random-init Sam2VideoModel on a short synthetic sequence."""

from __future__ import annotations

import numpy as np
import pytest

from segval.dataset.package import DatasetPackage
from segval.dataset.writer import InstanceMask, PackageWriter
from segval.demo.shapes import SHAPES_TAXONOMY
from segval.errors import ConfigError
from segval.relabel.video import Sam2VideoBackend, propagation_items

H, W, T = 40, 56, 5


@pytest.fixture(scope="module")
def video_pkg(tmp_path_factory):
    """A disc moving right by 14 px per frame: it leaves the frame in the last one (not labelled there)."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:H, 0:W]
    root = tmp_path_factory.mktemp("v") / "vid"
    with PackageWriter(root, name="vid", version="1.0.0", taxonomy=SHAPES_TAXONOMY, splits=["train"]) as w:
        for t in range(T):
            img = rng.integers(90, 140, (H, W, 3), dtype=np.uint8)
            d = (yy - 20) ** 2 + (xx - (10 + 14 * t)) ** 2 <= 36
            sq = (abs(yy - 32) <= 4) & (abs(xx - 8) <= 4)
            img[d], img[sq] = (220, 40, 40), (40, 200, 40)
            inst = [InstanceMask(2, sq)] + ([InstanceMask(1, d)] if d.any() else [])
            w.add_image("train", img, f"v/{t:03d}.png", instances=inst, extra={"video_id": 0, "frame_index": t})
    return DatasetPackage.open(root)


@pytest.fixture(scope="module")
def vb():
    return Sam2VideoBackend.from_config({"name": "tiny_random", "architecture": "tiny", "device": "cpu"})


def test_propagate_shapes_frame_ids_and_leaving_object(video_pkg, vb):
    sd = video_pkg.split("train")
    recs = sorted(sd.images, key=lambda r: r.frame_index)
    frames = [sd.read_image(r) for r in recs]
    disc = next(i for i in sd.instances(recs[2]) if i.category_id == 1).mask
    out = vb.propagate(frames, 2, disc, [(r.id, r.frame_index) for r in recs])
    assert [(o.image_id, o.frame_index) for o in out] == [(r.id, r.frame_index) for r in recs]
    assert all(o.mask.shape == (H, W) and o.mask.dtype == bool for o in out)
    assert all(np.isfinite(o.object_score) for o in out)
    # the prompted frame returns the prompt (mask input is used as output)
    inter = (out[2].mask & disc).sum() / (out[2].mask | disc).sum()
    assert inter > 0.8
    # an object scored absent gives an empty mask
    assert all(not o.mask.any() for o in out if o.object_score <= 0)
    with pytest.raises(ValueError):
        vb.propagate(frames, 7, disc, [(r.id, r.frame_index) for r in recs])


def test_propagation_items_join_with_frame_ids(video_pkg, vb):
    sd = video_pkg.split("train")
    recs = sorted(sd.images, key=lambda r: r.frame_index)
    ann = next(i for i in sd.instances(recs[1]) if i.category_id == 1)
    queue = {"items": [
        {"item_id": f"{recs[1].id}:{ann.annotation_id}:0", "image_id": recs[1].id, "video_id": 0, "category_id": 1,
         "class": "disc", "annotation_ids": [ann.annotation_id], "score": 1.0, "evidence": {"kind": "annotation"}},
        {"item_id": "x", "image_id": recs[3].id, "video_id": 0, "category_id": 2, "class": "square",
         "annotation_ids": [], "score": 1.0, "evidence": {"kind": "annotation", "temporal_class": 1.0}},  # not propagated
    ]}
    new = propagation_items(queue, sd, vb, window=3, min_iou=0.5)
    assert new  # a random-init model disagrees with the labels somewhere
    frame_of = {r.id: r.frame_index for r in recs}
    for it in new:
        assert it["image_id"] != recs[1].id and it["evidence"]["kind"] == "propagation"
        assert it["frame_index"] == frame_of[it["image_id"]] and it["video_id"] == 0
        assert it["evidence"]["from_frame"] == 1 and it["evidence"]["temporal_iou"] < 0.5
        assert it["score"] == pytest.approx(1.0 - it["evidence"]["temporal_iou"], abs=1e-4)
    # with min_iou 0 nothing can disagree
    assert propagation_items(queue, sd, vb, window=3, min_iou=0.0) == []
    with pytest.raises(ConfigError):
        propagation_items(queue, sd, vb, window=0)
