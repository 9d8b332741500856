"""Pure ranking: percentile ranks, weights, image scores, the within-video bonus, the budget."""

from __future__ import annotations

import math

import pytest

from segval.errors import ConfigError
from segval.relabel.scoring import Candidate, RankingConfig, image_model_evidence, percentile_ranks, rank_candidates, shape_value


def test_percentile_ranks_ties_and_nan():
    r = percentile_ranks({1: 0.2, 2: 0.2, 3: 0.9, 4: float("nan")}, higher_is_worse=False)
    assert r == {1: 0.75, 2: 0.75, 3: 0.0, 4: 0.0}
    assert percentile_ranks({1: 3.0}, higher_is_worse=True) == {1: 0.5}


def test_shape_value_clips():
    assert shape_value(2.0, 0.5, 1.5) == 1.0
    assert shape_value(1.25, 0.5, 1.5) == pytest.approx(0.5)
    assert shape_value(float("nan"), 0.0, 1.0) == 0.0


def test_config_checks_names_and_values():
    with pytest.raises(ConfigError, match="unknown evidence"):
        RankingConfig.from_mapping({"weights": {"temporal_shap": 1.0}})
    with pytest.raises(ConfigError, match=">= 0"):
        RankingConfig.from_mapping({"weights": {"missing": -1}})
    with pytest.raises(ConfigError, match="unknown key"):
        RankingConfig.from_mapping({"budget": 3})
    cfg = RankingConfig.from_mapping({"weights": {"missing": 2.0}, "within_video": 0})
    assert cfg.weights["missing"] == 2.0 and cfg.weights["temporal_shape"] == 1.0


def _c(image, kind="annotation", video=None, **ev):
    return Candidate(image, kind, 1, [image * 10] if kind == "annotation" else [], None, ev, f"r{image}", 10.0, video)


def test_rank_candidates_exact_scores_and_order():
    cfg = RankingConfig.from_mapping({"within_video": 0.25})
    cands = [
        _c(1, video=7, temporal_shape=0.4),                  # 0.4
        _c(2, video=7, temporal_shape=0.6),                  # 0.6, x 1.25 as the best of video 7
        _c(3, temporal_class=1.0),                           # 1.0
        _c(4, "missing", missing=0.9),                       # 0.9
        _c(4, geometry=1 / 3),                               # 0.1 (second item of image 4)
    ]
    image_ev = {2: {"label_quality": 1.0, "weak_disagree": 0.0, "confusion": 1.0},  # +0.5 + 0.2
                5: {"label_quality": 0.5, "weak_disagree": 1.0, "confusion": 0.0}}  # model-only image: 0.25 + 0.3
    picked, scores = rank_candidates(cands, image_ev, cfg, budget=4, video_of={1: 7, 2: 7})
    assert scores[2] == pytest.approx((0.6 + 0.7) * 1.25)
    assert scores[1] == pytest.approx(0.4)
    assert scores[5] == pytest.approx(0.55)
    assert [p[0] for p in picked] == [2, 3, 4, 5]
    items4 = picked[2][2]
    assert [c.kind for c in items4] == ["missing", "annotation"]
    assert items4[1].score == pytest.approx(0.1)
    assert picked[3][2][0].kind == "image"
    assert rank_candidates(cands, {}, cfg, budget=0)[0] == []
    with pytest.raises(ConfigError):
        rank_candidates(cands, {}, cfg, budget=-1)


def test_image_model_evidence_from_rows_and_findings():
    rows = [
        {"image_id": 1, "pixels": 100, "label_quality": 0.9, "top_confused_gt": None, "top_confused_pred": None,
         "top_confused_pixels": 0, "disagree_disc": 0, "disagree_bar": 0},
        {"image_id": 2, "pixels": 100, "label_quality": 0.1, "top_confused_gt": "bar", "top_confused_pred": "disc",
         "top_confused_pixels": 30, "disagree_disc": 0, "disagree_bar": 30},
        {"image_id": 3, "pixels": 100, "label_quality": 0.5, "top_confused_gt": "disc", "top_confused_pred": "square",
         "top_confused_pixels": 5, "disagree_disc": 5, "disagree_bar": 10},
    ]
    ev = image_model_evidence(rows, weak_classes=["bar"], confusion_pairs=[("disc", "bar")],
                              class_ids={"disc": 1, "bar": 3})
    # percentile ranks 1, 0.5, 0 -> only the worse half counts: max(0, 2 r - 1)
    assert ev[2]["label_quality"] == 1.0 and ev[1]["label_quality"] == 0.0 and ev[3]["label_quality"] == 0.0
    assert ev[2]["weak_disagree"] == 1.0 and ev[3]["weak_disagree"] == 0.0 and ev[1]["weak_disagree"] == 0.0
    assert (ev[1]["confusion"], ev[2]["confusion"], ev[3]["confusion"]) == (0.0, 1.0, 0.0)
    assert ev[2]["_category_id"] == 3 and "disc" in ev[2]["_reason"]
    assert math.isclose(ev[2]["label_quality_raw"], 0.1)
