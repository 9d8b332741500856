"""compare_runs on constructed run directories with known deltas, cross-checked with numpy."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from tests.experiments.run_dirs import confmat_for, findings_doc, make_multirun, make_run

from segval.metrics.functional.semantic import semantic_metrics
from segval.experiments.compare import CompareError, compare_runs, delta_stat, stat
from segval.report.compare import write_compare
from segval.experiments.runs import discover_runs

BASE = [0.50, 0.52, 0.54]
CAND = [0.60, 0.62, 0.64]


def _runs(tmp_path, ious, version, **kw):
    return [make_run(tmp_path / f"{version}_{s}", confmat_for(iou), version=version, seed=s, **kw)
            for s, iou in enumerate(ious)]


@pytest.fixture
def three_seeds(tmp_path):
    return _runs(tmp_path, BASE, "1.0.0") + _runs(tmp_path, CAND, "1.1.0")


def test_known_deltas_and_noise(three_seeds):
    res = compare_runs(discover_runs(three_seeds))
    assert res["baseline"] == "1.0.0" and [g["label"] for g in res["groups"]] == ["1.0.0", "1.1.0"]
    g0, g1 = res["groups"]
    assert g0["seeds"] == [0, 1, 2] and g0["n_runs"] == 3
    mug_b, mug_c = g0["classes"]["mug"], g1["classes"]["mug"]
    assert mug_b["mean"] == pytest.approx(0.52, abs=1e-12) and mug_b["std"] == pytest.approx(0.02, abs=1e-12)
    assert mug_c["mean"] == pytest.approx(0.62, abs=1e-12)
    d = res["deltas"][0]["classes"]["mug"]
    se = math.sqrt(np.var(CAND, ddof=1) / 3 + np.var(BASE, ddof=1) / 3)
    assert d["delta"] == pytest.approx(0.10, abs=1e-12) and d["noise"] == pytest.approx(se, abs=1e-12)
    assert d["beyond_noise"] is True and d["status"] == "improvement"
    # cable: 0.8 in every run on both sides -> std 0, delta 0: within noise
    assert res["deltas"][0]["classes"]["cable"]["status"] == "within_noise"
    assert res["deltas"][0]["improvements"] == ["background", "mug"] and res["deltas"][0]["regressions"] == []
    # mIoU cross-checked against semantic_metrics of the same confusion matrices
    ref_b = [semantic_metrics(confmat_for(i))["mIoU"] for i in BASE]
    ref_c = [semantic_metrics(confmat_for(i))["mIoU"] for i in CAND]
    assert g0["metrics"]["mIoU"]["mean"] == pytest.approx(np.mean(ref_b), abs=1e-12)
    assert g0["metrics"]["mIoU"]["std"] == pytest.approx(np.std(ref_b, ddof=1), abs=1e-12)
    assert res["deltas"][0]["metrics"]["mIoU"]["delta"] == pytest.approx(np.mean(ref_c) - np.mean(ref_b), abs=1e-12)
    assert set(g0["metrics"]) == {"mIoU", "mAcc", "fwIoU", "aAcc"}


def test_k_decides_beyond_noise_and_reverse_baseline(three_seeds):
    runs = discover_runs(three_seeds)
    se = math.sqrt(2 * 0.02 ** 2 / 3)
    assert compare_runs(runs, k=0.1 / se - 0.01)["deltas"][0]["classes"]["mug"]["status"] == "improvement"
    assert compare_runs(runs, k=0.1 / se + 0.01)["deltas"][0]["classes"]["mug"]["status"] == "within_noise"
    rev = compare_runs(runs, baseline_version="1.1.0")
    assert rev["baseline"] == "1.1.0" and rev["deltas"][0]["group"] == "1.0.0"
    assert rev["deltas"][0]["classes"]["mug"]["status"] == "regression"
    assert rev["deltas"][0]["regressions"] == ["background", "mug"]


def test_one_seed_is_unknown(tmp_path):
    runs = _runs(tmp_path, [0.5], "1.0.0") + _runs(tmp_path, CAND, "1.1.0")
    res = compare_runs(discover_runs(runs))
    d = res["deltas"][0]["classes"]["mug"]
    assert d["delta"] == pytest.approx(0.12) and d["noise"] is None and d["beyond_noise"] is None
    assert d["status"] == "unknown" and "mug" in res["deltas"][0]["unknown"]
    assert res["groups"][0]["classes"]["mug"]["std"] is None
    assert any("1 run(s)" in n for n in res["notes"])


def test_stat_and_delta_helpers():
    s = stat([0.5, None, float("nan"), 0.7])
    assert s["n"] == 2 and s["mean"] == pytest.approx(0.6)
    assert stat([None])["mean"] is None
    assert delta_stat(stat([None]), stat([0.5]), 2)["status"] == "undefined"


def test_absent_class_left_out_of_its_mean(tmp_path):
    # seed 1 of 1.0.0 has no cable at all (no GT, no prediction): its cable IoU is undefined, not 0
    cm = confmat_for(0.5)
    cm[2, :] = 0
    runs = [make_run(tmp_path / "a", confmat_for(0.5, cable_ok=60), seed=0), make_run(tmp_path / "b", cm, seed=1)]
    res = compare_runs(discover_runs(runs))
    cable = res["groups"][0]["classes"]["cable"]
    assert cable["n"] == 1 and cable["mean"] == pytest.approx(0.6)


def test_instance_ap_and_semver_order(tmp_path):
    runs = [make_run(tmp_path / f"v{v}_{s}", confmat_for(0.5), version=v, seed=s,
                     instance={"AP": ap, "AP50": None, "AP75": 0.1, "per_class": {}})
            for v, s, ap in (("1.10.0", 0, 0.40), ("1.10.0", 1, 0.44), ("1.9.0", 0, 0.30), ("1.9.0", 1, 0.32))]
    res = compare_runs(discover_runs(runs))
    assert [g["label"] for g in res["groups"]] == ["1.9.0", "1.10.0"] and res["baseline"] == "1.9.0"
    assert res["groups"][1]["metrics"]["AP"]["mean"] == pytest.approx(0.42)
    assert res["groups"][1]["metrics"]["AP50"]["n"] == 0  # undefined everywhere
    assert res["deltas"][0]["metrics"]["AP"]["delta"] == pytest.approx(0.11)
    assert res["groups"][0]["tasks"] == ["instance"]


def test_group_by_split_is_a_domain_gap(tmp_path):
    runs = [make_run(tmp_path / "val", confmat_for(0.7), split="val"),
            make_run(tmp_path / "test", confmat_for(0.4), split="test")]
    res = compare_runs(discover_runs(runs), group_by="split")
    assert res["baseline"] == "val" and res["deltas"][0]["group"] == "test"
    assert res["deltas"][0]["classes"]["mug"]["delta"] == pytest.approx(-0.3)
    with pytest.raises(CompareError, match="mixes splits"):
        compare_runs(discover_runs(runs))  # by version, one group would mix val and test
    other = make_run(tmp_path / "other", confmat_for(0.3), name="real", version="1.0.0")
    res = compare_runs(discover_runs([runs[0], other]), group_by="dataset")
    assert [g["label"] for g in res["groups"]] == ["shapes 1.0.0", "real 1.0.0"]


def test_findings_appeared_and_disappeared(tmp_path):
    base = [make_run(tmp_path / f"b{s}", confmat_for(0.5), seed=s, findings=findings_doc(w))
            for s, w in enumerate([{"mug": ["confusion"]}, {"mug": ["confusion", "boundary"]}])]
    cand = [make_run(tmp_path / f"c{s}", confmat_for(0.5), version="1.1.0", seed=s, findings=findings_doc(w))
            for s, w in enumerate([{"cable": ["boundary"]}, {"mug": ["boundary"]}, {"cable": ["boundary"]}])]
    res = compare_runs(discover_runs(base + cand))
    b, c = res["groups"]
    assert b["findings"]["weak"] == ["mug"]  # weak in 2 of 2
    assert b["findings"]["causes"] == [{"class": "mug", "cause": "boundary"}, {"class": "mug", "cause": "confusion"}]
    assert c["findings"]["weak"] == ["cable"]  # cable 2 of 3; mug 1 of 3 is not a majority
    f = res["deltas"][0]["findings"]
    assert f["known"] and f["appeared"]["weak"] == ["cable"] and f["disappeared"]["weak"] == ["mug"]
    assert f["appeared"]["causes"] == [{"class": "cable", "cause": "boundary"}]
    assert {"class": "mug", "cause": "confusion"} in f["disappeared"]["causes"]


def test_crashed_run_is_reported_not_skipped(tmp_path):
    sweep = make_multirun(tmp_path / "sweep", [
        dict(confmat=confmat_for(0.5), version="1.0.0", seed=0),
        dict(confmat=confmat_for(0.6), version="1.1.0", seed=0),
        dict(confmat=confmat_for(0.6), version="1.1.0", seed=1, write_metrics=False),
    ], sweep_overrides=["data.version=1.0.0,1.1.0,1.1.0"])
    res = compare_runs(discover_runs([sweep]))
    assert [c["job"] for c in res["crashed"]] == ["2"] and res["crashed"][0]["status"] == "crashed"
    g = res["groups"][1]
    assert g["n_runs"] == 1 and [f["job"] for f in g["failed_runs"]] == ["2"]


def test_different_taxonomies_are_an_error(tmp_path):
    a = make_run(tmp_path / "a", confmat_for(0.5))
    b = make_run(tmp_path / "b", confmat_for(0.5), version="1.1.0", classes=["background", "mug", "cup"])
    with pytest.raises(CompareError, match=r"different taxonomies.*only .*a has \['cable'\].*only .*b has \['cup'\]"):
        compare_runs(discover_runs([a, b]))
    c = make_run(tmp_path / "c", confmat_for(0.5), version="1.1.0", ids=[0, 1, 7])
    with pytest.raises(CompareError, match="other ids"):
        compare_runs(discover_runs([a, c]))


def test_same_version_different_hash_is_an_error(tmp_path):
    a = make_run(tmp_path / "a", confmat_for(0.5), content_hash="sha256:aaa")
    b = make_run(tmp_path / "b", confmat_for(0.5), seed=1, content_hash="sha256:bbb")
    c = make_run(tmp_path / "c", confmat_for(0.5), seed=2, content_hash="sha256:aaa")
    with pytest.raises(CompareError, match=r"version 1\.0\.0 with different content hashes.*sha256:aaa.*sha256:bbb"):
        compare_runs(discover_runs([a, b]))
    res = compare_runs(discover_runs([a, c]))
    assert res["groups"][0]["dataset"]["content_hash"] == "sha256:aaa" and not any("hash" in n for n in res["notes"])


def test_other_errors(tmp_path):
    a = make_run(tmp_path / "a", confmat_for(0.5))
    with pytest.raises(CompareError, match="baseline '9.9.9'"):
        compare_runs(discover_runs([a]), baseline_version="9.9.9")
    with pytest.raises(CompareError, match="no run with a metrics.json"):
        compare_runs(discover_runs([make_run(tmp_path / "x", confmat_for(0.5), write_metrics=False)]))
    with pytest.raises(CompareError, match="group_by"):
        compare_runs(discover_runs([a]), group_by="colour")
    with pytest.raises(CompareError, match="noise_k"):
        compare_runs(discover_runs([a]), k=0)


def test_write_compare_outputs(three_seeds, tmp_path):
    res = compare_runs(discover_runs(three_seeds))
    out = write_compare(res, tmp_path / "out")
    assert json.loads(out["json"].read_text())["deltas"][0]["classes"]["mug"]["status"] == "improvement"
    md = out["markdown"].read_text()
    assert "## 1.1.0 vs 1.0.0" in md and "| mug | +10.00 (k·se 3.27) | improvement |" in md
    html = out["html"].read_text()
    assert html.count("data:image/png;base64,") == 3 and 'src="plots' not in html and "<script" not in html
    assert sorted(p.name for p in (tmp_path / "out" / "plots").iterdir()) == ["class_iou.png", "delta_0.png",
                                                                            "summary.png"]


def test_group_by_a_config_key(tmp_path):
    runs = [make_run(tmp_path / f"s{s}", confmat_for(iou), seed=s) for s, iou in ((1, 0.6), (0, 0.5))]
    res = compare_runs(discover_runs(runs), group_by="config:seed", baseline_version="seed=0")
    assert [g["label"] for g in res["groups"]] == ["seed=1", "seed=0"] and res["baseline"] == "seed=0"
    assert res["deltas"][0]["classes"]["mug"]["delta"] == pytest.approx(0.1)
