"""Still-image evidence in the queue, on a hand-made package of stills: a shifted outline and a swapped class are
ranked first, their items say why, and look-alike annotations name the swapped pair."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from segval.dataset.package import DatasetPackage
from segval.dataset.writer import InstanceMask, PackageWriter
from segval.demo.shapes import SHAPES_TAXONOMY
from segval.errors import ConfigError
from segval.relabel.queue import build_queue
from segval.relabel.still import StillConfig, gather_still_evidence

H, W = 48, 64
SHIFTED, SWAPPED = 3, 5


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 stills, each a red disc (class 1) and a green square (class 2) on a noisy background; image 3's disc
    outline is shifted 4 px off the disc, image 5's square is labelled disc."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:H, 0:W]
    root = tmp_path_factory.mktemp("still") / "pkg"
    with PackageWriter(root, name="stills", version="1.0.0", taxonomy=SHAPES_TAXONOMY, splits=["train"]) as w:
        for i in range(10):
            img = rng.integers(100, 130, (H, W, 3), dtype=np.uint8)
            cy, cx = 16 + i % 3, 14 + i % 4
            disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= 49
            square = (abs(yy - 32) <= 6) & (abs(xx - 44 + i % 2) <= 6)
            img[disc], img[square] = (220, 40, 40), (40, 200, 40)
            label_disc = np.roll(disc, 4, axis=1) if i == SHIFTED else disc
            insts = [InstanceMask(1, label_disc), InstanceMask(1 if i == SWAPPED else 2, square)]
            w.add_image("train", img, f"img{i}.png", instances=insts)
    return root


def test_shifted_outline_and_swapped_class_are_queued_first(package: Path) -> None:
    pkg = DatasetPackage.open(package)
    sd = pkg.split("train")
    cfg = StillConfig.from_mapping({"enabled": "true"})
    ev = gather_still_evidence(sd, background_id=pkg.taxonomy.background_id, cfg=cfg)
    assert set(ev.rows) == {"edge_gain", "edge_off_edge", "appearance_colour", "appearance_margin"}
    assert ev.label_quality is None
    q = build_queue(pkg, split="train", budget=2, still=ev, still_cfg=cfg, geometry=False)
    assert {it["image_id"] for it in q["items"]} == {SHIFTED + 1, SWAPPED + 1}  # image ids start at 1
    by_image = {it["image_id"]: it for it in q["items"]}
    shifted = by_image[SHIFTED + 1]
    assert shifted["class"] == "disc" and "outline" in shifted["reason"] and shifted["evidence"]["model_evidence"] == "none"
    assert "look-alikes" in by_image[SWAPPED + 1]["reason"]
    assert q["inputs"]["still_evidence"]["kinds"] == sorted(ev.rows)


def test_still_config_errors_name_the_setting() -> None:
    with pytest.raises(ConfigError, match="unknown kind"):
        StillConfig.from_mapping({"weights": {"edges": 1.0}})
    with pytest.raises(ConfigError, match="enabled must be auto, true or false"):
        StillConfig.from_mapping({"enabled": "sometimes"})
    with pytest.raises(ConfigError, match="unknown key"):
        StillConfig.from_mapping({"video_weigth": 0.5})
    with pytest.raises(ConfigError, match="margin_k >= 1"):
        StillConfig.from_mapping({"margin_k": 0})


def test_appearance_margin_without_a_model_ranks_the_swapped_square_first(package: Path) -> None:
    """No model: colour and mask shape only. The square labelled disc is nearer the other squares than any disc."""
    pkg = DatasetPackage.open(package)
    sd = pkg.split("train")
    cfg = StillConfig.from_mapping({"enabled": "true", "weights": {"edge_gain": 0, "edge_off_edge": 0}})
    ev = gather_still_evidence(sd, background_id=pkg.taxonomy.background_id, cfg=cfg)
    rows = sorted(ev.rows["appearance_margin"], key=lambda r: -r.value)
    assert len(rows) == 20 and rows[0].image_id == SWAPPED + 1 and rows[0].category_id == 1 and rows[0].suggested == 2
    assert rows[0].value > 0 > rows[1].value
    q = build_queue(pkg, split="train", budget=1, still=ev, still_cfg=cfg, geometry=False)
    assert q["items"][0]["image_id"] == SWAPPED + 1
    assert "look-alikes in other images (by colour, shape) carry square" in q["items"][0]["reason"]


def test_missing_regions_score_how_much_they_look_like_annotated_objects() -> None:
    """Three images with one disc (class 1) and one square (class 2) each; the model claims two background regions
    of image 1: one that looks like the squares of the other images, one that looks like nothing annotated."""
    from segval.relabel.annotations import AnnotationScore
    from segval.relabel.appearance import nearest_annotations, stack_features
    from segval.relabel.still import _missing_lookalike

    rng = np.random.default_rng(1)
    keys = [(i, a) for i in (1, 2, 3) for a in (1, 2)]
    colour = {(i, a): np.array([1.0, 0.0, 0.1 * i] if a == 1 else [0.0, 1.0, 0.1 * i]) for i, a in keys}
    shape = {(i, a): np.array([1.0, 0.2 * i] if a == 1 else [0.0, 0.2 * i]) for i, a in keys}
    model = {q: rng.normal(size=4) + (5 if q[1] == 2 else 0) for q in colour}
    cats = {q: q[1] for q in colour}
    looks = [{"colour": np.array([0.0, 1.0, 0.1]), "shape": np.array([0.0, 0.2]), "model": model[(2, 2)] + 0.01},
             {"colour": np.array([0.5, 0.5, 3.0]), "shape": np.array([0.5, 5.0]), "model": np.full(4, -9.0)}]
    me = {"missing": [AnnotationScore(1, None, 2, 500.0, {"model_missing_pixels": 50}, 2),
                      AnnotationScore(1, None, 2, 900.0, {"model_missing_pixels": 90}, 2)],
          "missing_looks": looks, "features": model}
    _missing_lookalike(me, {"colour": colour, "shape": shape}, cats, k=2)
    square, nothing = me["missing"]
    assert square.info["missing_looks_like"] == 2 and square.value > nothing.value
    feats = stack_features({**colour, (1, -1): looks[0]["colour"], (1, -2): looks[1]["colour"]},
                           {**shape, (1, -1): looks[0]["shape"], (1, -2): looks[1]["shape"]},
                           {**model, (1, -1): looks[0]["model"], (1, -2): looks[1]["model"]})
    d = nearest_annotations(feats, [(1, -1)], cats, k=2)[(1, -1)][0]
    assert square.value == pytest.approx(-np.log(d + 1e-3)) and square.info["missing_lookalike_dist"] == round(d, 4)
