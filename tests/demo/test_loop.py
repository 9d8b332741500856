"""The end-of-demo summary (`segval.demo.loop.summarize`) on hand-built stage outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from segval.demo.loop import format_summary, summarize


def _metrics(miou: float, ious: dict[str, float | None]) -> dict:
    return {"dataset": {"name": "demo"}, "split": "val", "summary": {"mIoU": miou},
            "per_class": [{"name": n, "IoU": v} for n, v in ious.items()]}


def test_summary_counts_and_deltas(tmp_path: Path) -> None:
    items = [{"image_id": i, "kind": k} for i, k in [(3, "swap"), (5, "swap"), (8, "drop"), (9, "shift")]]
    (tmp_path / "errors.json").write_text(json.dumps(
        {"images": 20, "counts": {"swap": 2, "wrong_region": 0, "drop": 1, "shift": 1}, "items": items}))
    q = tmp_path / "queue"
    q.mkdir()
    # image 5 carries two items; 11 and 12 are clean images; 8 is ranked last
    ranked = [(1, 5), (2, 11), (3, 5), (4, 3), (5, 12), (6, 8)]
    (q / "queue.json").write_text(json.dumps({"items": [{"rank": r, "image_id": i} for r, i in ranked]}))
    for name, m in (("before", _metrics(0.5, {"a": 0.4, "b": 0.6, "c": None})),
                    ("after", _metrics(0.56, {"a": 0.5, "b": 0.62, "c": 0.1}))):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(json.dumps(m))
    (tmp_path / "gate").mkdir()
    (tmp_path / "gate" / "verdict.json").write_text(json.dumps({"status": "fail", "exit_code": 1, "failed": ["qa"]}))
    s = summarize({"manifest": tmp_path / "errors.json", "queue": q / "queue.json", "before": tmp_path / "before",
                   "after": tmp_path / "after", "gate": tmp_path / "gate"}, {"train": 60.0, "qa": 6.0})
    assert s["errors_injected"] == 4 and s["queue_images"] == 5
    assert s["errors_found_in_queue"] == 3 and s["recall_in_queue"] == 0.75
    assert s["found_by_kind"] == {"swap": [2, 2], "drop": [1, 1], "shift": [0, 1]}
    assert s["injected_by_kind"] == {"swap": 2, "drop": 1, "shift": 1}
    assert s["mIoU_gain"] == pytest.approx(0.06)
    assert [(r["name"], r["delta"]) for r in s["per_class"]] == [("a", pytest.approx(0.1)), ("b", pytest.approx(0.02)),
                                                                  ("c", None)]
    assert s["gate"]["verdict"] == "fail" and s["gate"]["failed"] == ["qa"]
    text = format_summary(s)
    assert "errors found in queue:  3 of 4 (75.0 %) in a queue of 5 images" in text
    assert "50.0 -> 56.0  (+6.0 mIoU)" in text and "gate verdict:           fail, failed rules: qa" in text
    assert "time: 1.1 min" in text


def test_summary_of_two_seeds_per_side_gives_means_and_the_noise_of_the_gain(tmp_path: Path) -> None:
    (tmp_path / "errors.json").write_text(json.dumps({"images": 10, "counts": {"swap": 1},
                                                      "items": [{"image_id": 1, "kind": "swap"}]}))
    runs = {("before", 0): _metrics(0.40, {"a": 0.3, "b": 0.5}), ("before", 1): _metrics(0.44, {"a": 0.5, "b": None}),
            ("after", 0): _metrics(0.50, {"a": 0.6, "b": 0.4}), ("after", 1): _metrics(0.52, {"a": 0.4, "b": 0.6})}
    for (side, seed), m in runs.items():
        (tmp_path / side / f"seed{seed}").mkdir(parents=True)
        (tmp_path / side / f"seed{seed}" / "metrics.json").write_text(json.dumps(m))
    s = summarize({"manifest": tmp_path / "errors.json", "before": tmp_path / "before", "after": tmp_path / "after"})
    assert s["mIoU_seeds"] == {"before": [0.40, 0.44], "after": [0.50, 0.52]}
    assert s["mIoU_before"] == pytest.approx(0.42) and s["mIoU_after"] == pytest.approx(0.51)
    assert s["mIoU_gain"] == pytest.approx(0.09)
    # sample variances 0.0008 and 0.0002, 2 seeds each: sqrt(0.0004 + 0.0001)
    assert s["mIoU_gain_noise"] == pytest.approx(0.0005 ** 0.5)
    # per-class means skip a seed without an IoU
    assert [(r["name"], r["before"], r["after"]) for r in s["per_class"]] == [
        ("a", pytest.approx(0.4), pytest.approx(0.5)), ("b", pytest.approx(0.5), pytest.approx(0.5))]
    text = format_summary(s)
    assert "42.0 -> 51.0  (+9.0 mIoU +- 2.2 seed noise (1 s.e.))" in text
    assert "mean of 2 / 2 seeds; per seed: 40.0, 44.0 -> 50.0, 52.0" in text


def test_one_seed_per_side_has_no_noise_figure(tmp_path: Path) -> None:
    (tmp_path / "errors.json").write_text(json.dumps({"images": 4, "counts": {}, "items": []}))
    for side, miou in (("before", 0.3), ("after", 0.35)):
        (tmp_path / side / "seed0").mkdir(parents=True)
        (tmp_path / side / "seed0" / "metrics.json").write_text(json.dumps(_metrics(miou, {"a": miou})))
    s = summarize({"manifest": tmp_path / "errors.json", "before": tmp_path / "before", "after": tmp_path / "after"})
    assert s["mIoU_gain"] == pytest.approx(0.05) and s["mIoU_gain_noise"] is None
    assert "(+5.0 mIoU)" in format_summary(s) and "per seed" not in format_summary(s)
