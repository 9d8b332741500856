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
