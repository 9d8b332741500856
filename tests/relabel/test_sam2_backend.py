"""SAM 2 backend on the tiny random-init config: pre-processing, prompts, proposals, the embedding cache."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from segval.dataset.package import DatasetPackage
from segval.demo.shapes import write_shapes_package
from segval.errors import ConfigError
from segval.relabel.embeddings import EmbeddingCache, compute_embeddings, embeddings_for
from segval.relabel.proposals import propose
from segval.relabel.sam2_backend import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Prompt,
    Sam2Backend,
    check_weights_dir,
    postprocess_masks,
    preprocess,
    prompts_for,
    scale_points,
)


@pytest.fixture(scope="module")
def backend():
    return Sam2Backend.from_config({"name": "tiny_random", "architecture": "tiny", "random_init": True,
                                    "device": "cpu"})


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return DatasetPackage.open(write_shapes_package(tmp_path_factory.mktemp("s") / "shapes",
                                                    images={"train": 4, "val": 1}, size=(48, 64)))


def test_preprocess_resizes_and_normalises():
    im = np.zeros((30, 50, 3), np.uint8)
    im[..., 0] = 255
    x = preprocess([im, im], 256)
    assert x.shape == (2, 3, 256, 256)
    assert x[0, 0, 5, 5].item() == pytest.approx((1.0 - IMAGENET_MEAN[0]) / IMAGENET_STD[0], abs=1e-5)
    assert x[0, 2, 5, 5].item() == pytest.approx(-IMAGENET_MEAN[2] / IMAGENET_STD[2], abs=1e-5)
    with pytest.raises(ValueError):
        preprocess([im.astype(np.float32)], 256)


def test_prompt_scaling_and_postprocess():
    assert scale_points(np.array([[0.0, 0.0], [64.0, 48.0]]), 48, 64, 256).tolist() == [[0, 0], [256, 256]]
    low = torch.full((2, 1, 8, 8), -1.0)
    low[0, 0, :4] = 5.0
    m = postprocess_masks(low, 16, 20)
    assert m.shape == (2, 1, 16, 20) and m[0, 0, :7].all() and not m[0, 0, 9:].any() and not m[1].any()


def test_prompts_from_an_item():
    yy, xx = np.mgrid[0:40, 0:40]
    t = (yy - 15) ** 2 + (xx - 15) ** 2 <= 100  # a disc: its box corners are not the object
    other = np.zeros_like(t)
    other[5:9, 18:35] = True  # in the box's top-right corner, outside the disc, and beyond the box
    other &= ~t
    p = prompts_for(t, [other], None)
    assert p.box == [5.0, 5.0, 26.0, 26.0]
    assert p.labels == [1, 0] and t[int(p.points[0][1]), int(p.points[0][0])]
    neg = p.points[1]
    assert other[int(neg[1]), int(neg[0])] and not t[int(neg[1]), int(neg[0])]
    q = prompts_for(None, [], [10, 20, 6, 4])
    assert q.box == [10.0, 20.0, 16.0, 24.0] and q.points == [[13.0, 22.0]] and q.labels == [1]
    assert prompts_for(None, [], None) is None


def test_predict_keeps_the_best_of_three(backend):
    assert backend.random_init and "RANDOM-INIT" in backend.label and backend.image_size == 256
    emb = backend.encode(preprocess([np.full((48, 64, 3), 100, np.uint8)], 256))
    assert [tuple(e.shape) for e in emb] == [(1, 16, 64, 64), (1, 32, 32, 32), (1, 128, 16, 16)]  # neck 128: C/8, C/4, C
    prop = backend.predict(emb, Prompt([5, 5, 30, 30], [[15, 15]], [1]), 48, 64)
    assert prop.mask.shape == (48, 64) and prop.mask.dtype == bool
    assert len(prop.all_scores) == 3 and prop.score == pytest.approx(max(prop.all_scores), abs=1e-4)


def test_cache_hit_skips_the_encoder(backend, shapes, tmp_path):
    sd = shapes.split("train")
    cache = EmbeddingCache(tmp_path / "cache", backend.model_id)
    recs = sd.images[:3]
    backend.encoder_calls = 0
    res = compute_embeddings(backend, sd, recs[:2], cache, batch_size=2, progress=False)  # Lightning predict
    assert res == {"requested": 2, "cached_before": 0, "computed": 2} and backend.encoder_calls == 2
    # resumable: only the missing image is computed
    res = compute_embeddings(backend, sd, recs, cache, batch_size=2, progress=False)
    assert res == {"requested": 3, "cached_before": 2, "computed": 1} and backend.encoder_calls == 3
    direct = backend.encode(preprocess([sd.read_image(recs[0])], 256))
    backend.encoder_calls = 0
    hit = embeddings_for(backend, sd, recs[0], cache)
    assert backend.encoder_calls == 0 and cache.hits == 1
    for a, b in zip(hit, direct):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    # another model id or another image under the same id is a miss
    assert not EmbeddingCache(tmp_path / "cache", "other").has(recs[0])
    moved = type(recs[0])(recs[0].id, "elsewhere.png", recs[0].width, recs[0].height)
    assert not cache.has(moved)
    # proposals through the cache: no encoder call for cached images
    q = {"items": [{"item_id": f"{r.id}:x:0", "image_id": r.id, "category_id": 1, "annotation_ids":
                    [sd.instances(r)[0].annotation_id], "region": None} for r in recs]}
    props = propose(q, sd, backend, tmp_path / "out", cache=cache)
    assert backend.encoder_calls == 0 and len(props) == 3
    saved = json.loads((tmp_path / "out" / "proposals.json").read_text())
    assert saved[0]["segmentation"]["size"] == [48, 64] and saved[0]["model"] == backend.model_id
    assert (tmp_path / "out" / q["items"][0]["proposal"]["file"]).is_file()


def test_weights_errors(tmp_path, monkeypatch):
    d = tmp_path / "segformer"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model_type": "segformer"}))
    (d / "model.safetensors").write_bytes(b"")
    with pytest.raises(ConfigError, match="not a SAM 2 model"):
        check_weights_dir(d)
    with pytest.raises(ConfigError, match="not a SAM 2 model"):
        Sam2Backend("x", pretrained=str(d))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(ConfigError, match="cache"):
        Sam2Backend.from_config({"name": "hiera_tiny", "pretrained": "facebook/sam2.1-hiera-tiny"})
    with pytest.raises(ConfigError, match="random_init=true"):
        Sam2Backend.from_config({"name": "t", "architecture": "tiny"})
    with pytest.raises(ConfigError, match="exactly one"):
        Sam2Backend("t")
