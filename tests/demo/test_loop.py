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
