"""benchmarks/finding_power.py: AUROC, recall@K and the swap-pair check on hand-built inputs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

_spec = importlib.util.spec_from_file_location(
    "finding_power", Path(__file__).resolve().parents[2] / "benchmarks" / "finding_power.py")
fp = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fp)


def test_auroc_matches_sklearn_with_ties() -> None:
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    for _ in range(20):
        y = rng.random(40) < 0.3
        y[0], y[1] = True, False
        s = rng.integers(0, 6, size=40).astype(float)  # many ties
        assert fp.auroc(s, y) == pytest.approx(sk.roc_auc_score(y, s), abs=1e-12)
    assert fp.auroc([1.0, 2.0, 3.0], [False, True, True]) == 1.0
    assert fp.auroc([1.0, 1.0], [False, True]) == 0.5
    assert np.isnan(fp.auroc([1.0, 2.0], [True, True]))


def test_recall_and_pairs() -> None:
    assert fp.recall_at_k([4, 2, 7, 1, 9], {1, 2, 3}, 4) == pytest.approx(2 / 3)
    assert fp.recall_at_k([4, 2], {1}, 10) == 0.0
    findings = {"classes": [
        {"name": "lego", "causes": [{"cause": "boundary", "evidence": {}},
                                    {"cause": "confusion", "evidence": {"partner": "cube"}}]},
        {"name": "ball", "causes": [{"cause": "confusion", "evidence": {"partner": "mug"}}]},
    ]}
    got = fp.pairs_named(findings, [["cube", "lego"], ["ball", "soccer_ball"]])
    assert got["cube<->lego"]["named"] is True and got["cube<->lego"]["lego"] == ["cube"]
    assert got["ball<->soccer_ball"]["named"] is False
    assert fp.pairs_named(None, [["a", "b"]])["a<->b"]["named"] is False
